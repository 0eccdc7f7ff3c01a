"""zkpy's configuration and process life cycle: zoo.cfg keys, -D system properties (on the
command line and in JVMFLAGS), invalid values, SIGTERM and restart, JSON logs, and the session
timeout bounds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from jute.constants import Err
from tests.support.rawclient import RawClient
from tests.support.servers import REPO_ROOT, ServerProcess, four_letter_word, free_port

OK = Err.OK


class CustomZkpy(ServerProcess):
    """zkpy with a command line or zoo.cfg the shared launcher does not vary: some of its
    default keys dropped, arguments before and after the zoo.cfg path."""

    def __init__(self, workdir, settings=None, drop=(), before=(), after=()):
        super().__init__("zkpy", workdir, settings)
        self.drop = set(drop)
        self.before = list(before)
        self.after = list(after)

    def config_text(self) -> str:
        lines = super().config_text().splitlines(keepends=True)
        return "".join(line for line in lines if line.split("=", 1)[0] not in self.drop)

    def command(self, config_path) -> list[str]:
        return [sys.executable, "-m", "zkpy", *self.before, str(config_path), *self.after]


@pytest.fixture
def custom_zkpy(tmp_path):
    """``custom_zkpy(**kwargs)`` starts a CustomZkpy; every one is stopped at the end."""
    started: list[CustomZkpy] = []

    def start(**kwargs) -> CustomZkpy:
        server = CustomZkpy(tmp_path / f"custom-{len(started)}", **kwargs)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def raw():
    opened: list[RawClient] = []

    def make(server, **kwargs) -> RawClient:
        client = RawClient("127.0.0.1", server.port, **kwargs)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.disconnect()


def log_text(server) -> str:
    return server.log_path.read_text(errors="replace")


def wait_for_log(server, pattern: str, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        text = log_text(server)
        match = re.search(pattern, text)
        if match:
            return match.group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matching {pattern!r}; log:\n{server.log_tail()}")
        time.sleep(0.05)


# --- keys and values ----------------------------------------------------------------------------

def test_unknown_keys_are_logged_not_fatal(server_factory, raw):
    server = server_factory("zkpy", settings={"noSuchSetting": "1", "my.custom.key": "x y",
                                              "preAllocSize": "65536"})
    for key in ("noSuchSetting", "my.custom.key", "preAllocSize"):
        wait_for_log(server, rf"config key.*key={re.escape(key)}\b")
    assert raw(server).create("/works").err == OK


def test_keys_taken_as_system_properties_are_logged(server_factory, raw):
    server = server_factory("zkpy", settings={"snapCount": "1000", "enforceQuota": "true"})
    wait_for_log(server, r"config key taken as a system property.*key=snapCount\b")
    wait_for_log(server, r"config key not used by zkpy.*key=enforceQuota\b")
    assert raw(server).create("/works").err == OK


def _run_cli(tmp_path, settings: dict[str, str], extra_args=(), timeout_s: float = 30.0):
    """Run ``python -m zkpy zoo.cfg`` expecting it to refuse the configuration."""
    config = {"tickTime": "2000", "dataDir": str(tmp_path / "data"), "clientPort": str(free_port()),
              "clientPortAddress": "127.0.0.1", "admin.enableServer": "false"}
    config.update(settings)
    path = tmp_path / "zoo.cfg"
    path.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    process = subprocess.Popen([sys.executable, "-m", "zkpy", *extra_args, str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                               cwd=tmp_path, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"zkpy did not exit on an invalid configuration:\n{output.decode()}")
    return process.returncode, output.decode(errors="replace")


INVALID = {
    "tickTime not a number": ({"tickTime": "abc"}, ["tickTime"]),
    "clientPort out of range": ({"clientPort": "70000"}, ["clientPort"]),
    "maxSessionTimeout below minSessionTimeout": (
        {"minSessionTimeout": "10000", "maxSessionTimeout": "5000"},
        ["minSessionTimeout", "maxSessionTimeout"]),
    "unknown four-letter word": ({"4lw.commands.whitelist": "srvr, bogus"},
                                 ["4lw.commands.whitelist", "bogus"]),
    "maxClientCnxns negative": ({"maxClientCnxns": "-1"}, ["maxClientCnxns"]),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_values_are_refused(tmp_path, case):
    settings, names = INVALID[case]
    returncode, output = _run_cli(tmp_path, settings)
    assert returncode != 0, output
    for name in names:
        assert name in output, f"the error does not name {name}:\n{output}"
    assert "Traceback" not in output, output
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir()), \
        "nothing is written before the configuration is valid"


def test_invalid_system_property_is_refused(tmp_path):
    returncode, output = _run_cli(tmp_path, {}, ["-Dzookeeper.extendedTypesEnabled=maybe"])
    assert returncode != 0 and "extendedTypesEnabled" in output, output


# --- -D system properties -----------------------------------------------------------------------

def _ttl_create(server, raw) -> int:
    return raw(server).create_ttl("/ttl", ttl_ms=60_000).err


def test_extended_types_off_without_the_property(custom_zkpy, raw):
    server = custom_zkpy(drop={"extendedTypesEnabled"})
    assert _ttl_create(server, raw) == Err.UNIMPLEMENTED


def test_extended_types_property_before_the_config_path(custom_zkpy, raw):
    server = custom_zkpy(drop={"extendedTypesEnabled"},
                         before=["-Dzookeeper.extendedTypesEnabled=true", "-Xmx512m"])
    assert _ttl_create(server, raw) == OK
    wait_for_log(server, r"JVM flag ignored.*-Xmx512m")


@pytest.mark.parametrize("variable", ["JVMFLAGS", "SERVER_JVMFLAGS"])
def test_extended_types_property_in_jvmflags(custom_zkpy, raw, monkeypatch, variable):
    monkeypatch.setenv(variable, "-Xmx256m -Dzookeeper.extendedTypesEnabled=true -server")
    server = custom_zkpy(drop={"extendedTypesEnabled"})
    assert _ttl_create(server, raw) == OK


def test_config_file_wins_over_the_property(custom_zkpy, raw):
    """As in ZooKeeper, a zoo.cfg key overrides the -D property of the same setting."""
    server = custom_zkpy(settings={"extendedTypesEnabled": "false"},
                         before=["-Dzookeeper.extendedTypesEnabled=true"])
    assert _ttl_create(server, raw) == Err.UNIMPLEMENTED


# --- life cycle ---------------------------------------------------------------------------------

def test_sigterm_stops_cleanly_and_a_restart_carries_on(server_factory, raw):
    server = server_factory("zkpy")
    owner = raw(server, timeout_ms=30_000)
    owner.create("/durable", b"kept")
    owner.create("/owned", b"", flags=1)  # ephemeral of a session that outlives the restart
    for i in range(20):
        owner.create(f"/durable/n{i}", str(i).encode())
    zxid_before = owner.set_data("/durable", b"kept-2").zxid
    session_id, passwd = owner.session_id, owner.passwd
    process = server.process
    os.kill(process.pid, signal.SIGTERM)
    try:
        returncode = process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"zkpy ignored SIGTERM for 10 s; log:\n{server.log_tail()}") from None
    assert returncode == 0, server.log_tail()
    wait_for_log(server, r"stopped")
    owner.disconnect()

    server.start()  # same data directory, same port
    client = raw(server)
    assert client.get_data("/durable").response.data == b"kept-2"
    assert len(client.get_children("/durable").response.children) == 20
    assert client.exists("/owned").err == OK, "the ephemeral's session is still alive"
    created = client.create("/after-restart")
    assert created.err == OK and created.zxid > zxid_before
    resumed = raw(server, session_id=session_id, passwd=passwd)
    assert resumed.connect_response.session_id == session_id, "the session survived the restart"
    resumed.close_session()
    assert client.exists("/owned").err == Err.NONODE


def test_log_json(custom_zkpy, raw):
    server = custom_zkpy(after=["--log-json"])
    client = raw(server)
    client.create("/j")
    client.send_raw(b"\xff\xff\xff\xff")  # a protocol error, logged as a warning
    wait_for_log(server, r"Len error -1")
    lines = [line for line in log_text(server).splitlines() if line.strip()]
    assert lines
    events = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
        assert {"event", "level", "timestamp"} <= set(record), record
        events.append(record)
    assert any(e["event"] == "serving" for e in events)
    warning = next(e for e in events if "Len error -1" in str(e.get("reason")))
    assert warning["level"] == "warning" and warning["session"].startswith("0x")


# --- session timeout bounds ---------------------------------------------------------------------

def _cons_timeouts(server) -> dict[str, int]:
    text = four_letter_word(server.port, "cons")
    return {m[1]: int(m[2]) for m in re.finditer(r"sid=(0x[0-9a-f]+),.*?,to=(\d+)", text)}


def test_session_timeout_is_clamped(server_factory, raw):
    from kazoo.client import KazooClient

    server = server_factory("zkpy", settings={"minSessionTimeout": "5000",
                                              "maxSessionTimeout": "8000"})
    for requested, negotiated in ((1, 5000), (1000, 5000), (6500, 6500), (8000, 8000),
                                  (100_000, 8000)):
        client = raw(server, timeout_ms=requested)
        assert client.connect_response.timeout_ms == negotiated, requested
    conf = four_letter_word(server.port, "conf")
    assert "minSessionTimeout=5000\n" in conf and "maxSessionTimeout=8000\n" in conf
    kazoo_clients = []
    try:
        for timeout_s, negotiated in ((1.0, 5000), (30.0, 8000)):
            client = KazooClient(hosts=server.connect_string, timeout=timeout_s)
            kazoo_clients.append(client)
            client.start(timeout=15)
            client.ensure_path("/k")
            sid = f"0x{client.client_id[0] & 0xFFFFFFFFFFFFFFFF:x}"
            assert _cons_timeouts(server)[sid] == negotiated, (timeout_s, _cons_timeouts(server))
    finally:
        for client in kazoo_clients:
            client.stop()
            client.close()


def test_session_timeout_defaults_follow_tick_time(server_factory, raw):
    server = server_factory("zkpy", settings={"tickTime": "100"})
    assert raw(server, timeout_ms=1).connect_response.timeout_ms == 200
    assert raw(server, timeout_ms=60_000).connect_response.timeout_ms == 2000
