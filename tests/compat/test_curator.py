"""Apache Curator 5.4 recipes against the reference ZooKeeper and zkpy.

tests/compat/java/CuratorScenarios.java is compiled once with javac against Debian's Curator jars
(cached under build/java by source hash, see tests/support/javatools.py) and run as
``java CuratorScenarios <connectString> <scenario>`` against a fresh server per test. The Java
side checks what each recipe promises and prints one JSON line; a failure names what broke.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

import pytest

from tests.support import javatools

JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "CuratorScenarios.java"
MAIN_CLASS = "CuratorScenarios"
# Quick JVM start-up; these programs are short-lived.
JVM_OPTIONS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]
SCENARIOS = (
    "mutex",
    "leader_latch",
    "leader_selector",
    "curator_cache",
    "persistent_node",
    "service_discovery",
    "atomic_long",
    "shared_count",
    "transactions",
)

pytestmark = pytest.mark.compat


@functools.lru_cache(maxsize=1)
def scenario_classpath() -> tuple[str, ...]:
    """Compile CuratorScenarios (cached by hash) and return the classpath that runs it."""
    jars = javatools.curator_classpath()
    classes = javatools.compile_java([JAVA_SOURCE], jars)
    return (str(classes), *jars)


def run_scenarios(connect_string: str, scenarios: list[str], timeout_s: float = 150.0):
    command = javatools.java_command(MAIN_CLASS, list(scenario_classpath()),
                                     [connect_string, *scenarios], JVM_OPTIONS)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as timeout:
        def text(data):
            return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")
        raise AssertionError(f"CuratorScenarios {scenarios} did not exit within {timeout_s}s\n"
                             f"stdout:\n{text(timeout.stdout)}\nstderr:\n{text(timeout.stderr)[-5000:]}")
    lines = {}
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            record = json.loads(line)
            lines[record["scenario"]] = record
    return result, lines


def test_scenario_list_matches_the_java_program():
    source = JAVA_SOURCE.read_text()
    for name in SCENARIOS:
        assert f'SCENARIOS.put("{name}"' in source, name
    assert source.count("SCENARIOS.put(") == len(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_curator_scenario(server_kind, scenario, server_factory):
    classpath = scenario_classpath()  # compile before the server starts: a javac error fails here
    assert classpath
    server = server_factory(server_kind)
    result, records = run_scenarios(server.connect_string, [scenario])
    record = records.get(scenario)
    stderr_tail = "\n".join(result.stderr.splitlines()[-60:])
    context = (f"\n--- java exit {result.returncode}; stdout:\n{result.stdout}\n--- stderr (tail):\n"
               f"{stderr_tail}\n--- {server.kind} log (tail):\n{server.log_tail()}")
    assert record is not None, f"CuratorScenarios printed no result for {scenario}" + context
    assert record["ok"], f"{scenario} against {server.kind}: {record.get('error')}" + context
    assert result.returncode == 0, context
