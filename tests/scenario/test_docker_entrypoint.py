"""The docker image's entrypoint and compose file (Docker itself cannot run here).

The entrypoint is run as the image runs it, with ZOO_* variables pointing into a temp dir, and
must write the zoo.cfg and myid the official zookeeper image's docker-entrypoint.sh writes;
the config it writes must start a zkpy server. The compose file is parsed with PyYAML.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support.servers import REPO_ROOT, four_letter_word, free_port
from zkpy.config import load

DOCKER_DIR = REPO_ROOT / "docker"
ENTRYPOINT = DOCKER_DIR / "entrypoint.py"
DEFAULT_LINES = [
    "tickTime=2000", "initLimit=5", "syncLimit=2", "autopurge.snapRetainCount=3",
    "autopurge.purgeInterval=0", "maxClientCnxns=60", "standaloneEnabled=true",
    "admin.enableServer=true", "server.1=localhost:2888:3888;2181",
]


def clean_env(tmp_path: Path, **variables: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ZOO_") and k not in ("JVMFLAGS", "SERVER_JVMFLAGS")}
    env.update(ZOO_CONF_DIR=str(tmp_path / "conf"), ZOO_DATA_DIR=str(tmp_path / "data"),
               ZOO_DATA_LOG_DIR=str(tmp_path / "datalog"), ZOO_LOG_DIR=str(tmp_path / "logs"))
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(variables)
    return env


def run_entrypoint(env: dict, *command: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ENTRYPOINT), *command], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def config_lines(tmp_path: Path) -> list[str]:
    return (tmp_path / "conf" / "zoo.cfg").read_text().splitlines()


def test_defaults_match_the_official_image(tmp_path):
    env = clean_env(tmp_path)
    run_entrypoint(env, "true")
    assert config_lines(tmp_path) == [f"dataDir={tmp_path / 'data'}",
                                      f"dataLogDir={tmp_path / 'datalog'}", *DEFAULT_LINES]
    assert (tmp_path / "data" / "myid").read_text() == "1\n"
    config = load(tmp_path / "conf" / "zoo.cfg")
    assert (config.tick_ms, config.init_limit, config.sync_limit, config.max_client_cnxns) == (2000, 5, 2, 60)
    assert (config.purge_interval_hours, config.snap_retain_count) == (0, 3)
    assert config.four_letter_words == frozenset({"srvr"})  # ZooKeeper's default whitelist
    assert config.data_dir == str(tmp_path / "data")
    assert config.data_log_dir == str(tmp_path / "datalog")


def test_every_variable_is_written_as_the_official_script_writes_it(tmp_path):
    env = clean_env(
        tmp_path, ZOO_MY_ID="3", ZOO_TICK_TIME="3000", ZOO_INIT_LIMIT="10", ZOO_SYNC_LIMIT="4",
        ZOO_MAX_CLIENT_CNXNS="0", ZOO_STANDALONE_ENABLED="false", ZOO_ADMINSERVER_ENABLED="false",
        ZOO_AUTOPURGE_PURGEINTERVAL="24", ZOO_AUTOPURGE_SNAPRETAINCOUNT="5",
        ZOO_4LW_COMMANDS_WHITELIST="srvr,ruok,mntr",
        ZOO_SERVERS="server.1=zoo1:2888:3888;2181\n  server.2=zoo2:2888:3888;2181 "
                    "server.3=zoo3:2888:3888:observer;2181",
        ZOO_CFG_EXTRA="snapCount=5000  minSessionTimeout=6000\tjute.maxbuffer=2097152",
    )
    run_entrypoint(env, "true")
    assert config_lines(tmp_path) == [
        f"dataDir={tmp_path / 'data'}", f"dataLogDir={tmp_path / 'datalog'}",
        "tickTime=3000", "initLimit=10", "syncLimit=4", "autopurge.snapRetainCount=5",
        "autopurge.purgeInterval=24", "maxClientCnxns=0", "standaloneEnabled=false",
        "admin.enableServer=false",
        "server.1=zoo1:2888:3888;2181", "server.2=zoo2:2888:3888;2181",
        "server.3=zoo3:2888:3888:observer;2181",
        "4lw.commands.whitelist=srvr,ruok,mntr",
        "snapCount=5000", "minSessionTimeout=6000", "jute.maxbuffer=2097152",
    ]
    assert (tmp_path / "data" / "myid").read_text() == "3\n"
    config = load(tmp_path / "conf" / "zoo.cfg")
    assert (config.tick_ms, config.snap_count, config.min_session_timeout, config.max_buffer_bytes) == (
        3000, 5000, 6000, 2097152)
    assert config.four_letter_words == frozenset({"srvr", "ruok", "mntr"})
    assert [(s.server_id, s.host, s.role) for s in config.servers] == [
        (1, "zoo1", "participant"), (2, "zoo2", "participant"), (3, "zoo3", "observer")]


def test_empty_variables_behave_as_in_the_shell_script(tmp_path):
    # [[ -z $ZOO_SERVERS ]] and ${ZOO_MY_ID:-1} treat empty as unset; other variables are
    # written as they are, empty included.
    env = clean_env(tmp_path, ZOO_SERVERS="  ", ZOO_MY_ID="", ZOO_4LW_COMMANDS_WHITELIST="",
                    ZOO_CFG_EXTRA="", ZOO_TICK_TIME="")
    run_entrypoint(env, "true")
    lines = config_lines(tmp_path)
    assert "server.1=localhost:2888:3888;2181" in lines and "tickTime=" in lines
    assert not any(line.startswith("4lw.") for line in lines)
    assert (tmp_path / "data" / "myid").read_text() == "1\n"


def test_existing_zoo_cfg_and_myid_are_left_alone(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "zoo.cfg").write_text("# mine\nclientPort=2999\n")
    env = clean_env(tmp_path, ZOO_MY_ID="7", ZOO_TICK_TIME="1000")
    run_entrypoint(env, "true")
    assert (tmp_path / "conf" / "zoo.cfg").read_text() == "# mine\nclientPort=2999\n"
    assert (tmp_path / "data" / "myid").read_text() == "7\n"
    env["ZOO_MY_ID"] = "8"
    (tmp_path / "conf" / "zoo.cfg").unlink()
    run_entrypoint(env, "true")
    assert (tmp_path / "data" / "myid").read_text() == "7\n"  # myid kept
    assert "tickTime=1000" in config_lines(tmp_path)  # zoo.cfg written again


def test_command_runs_with_the_environment_passed_through(tmp_path):
    env = clean_env(tmp_path, JVMFLAGS="-Xmx1g -Dzookeeper.snapCount=1234",
                    SERVER_JVMFLAGS="-Dzookeeper.4lw.commands.whitelist=*")
    result = run_entrypoint(env, "sh", "-c", 'printf "%s|%s|%s" "$JVMFLAGS" "$SERVER_JVMFLAGS" "$1"',
                            "sh", "arg one")
    assert result.stdout == "-Xmx1g -Dzookeeper.snapCount=1234|-Dzookeeper.4lw.commands.whitelist=*|arg one"
    generate_only = run_entrypoint(clean_env(tmp_path / "other"), "--generate-only")
    assert "zoo.cfg" in generate_only.stdout and (tmp_path / "other" / "conf" / "zoo.cfg").is_file()


def test_generated_config_starts_a_zkpy_server(tmp_path):
    port = free_port()
    env = clean_env(
        tmp_path, ZOO_ADMINSERVER_ENABLED="false",
        ZOO_SERVERS=f"server.1=127.0.0.1:{free_port()}:{free_port()};127.0.0.1:{port}",
        ZOO_CFG_EXTRA=f"clientPort={port} clientPortAddress=127.0.0.1",
        JVMFLAGS="-Xmx512m -Dzookeeper.4lw.commands.whitelist=*")
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen([sys.executable, str(ENTRYPOINT), sys.executable, "-m", "zkpy",
                                str(tmp_path / "conf" / "zoo.cfg")], env=env, cwd=tmp_path,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        reply = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                reply = four_letter_word(port, "srvr", timeout_s=1.0)
                if "Mode:" in reply:
                    break
            except OSError:
                time.sleep(0.1)
        assert "Mode:" in reply, (tmp_path / "server.log").read_text()
        # -D4lw whitelist from JVMFLAGS reached zkpy: a word outside the default answers.
        assert four_letter_word(port, "ruok") == "imok"
        assert list((tmp_path / "datalog").iterdir()) == [tmp_path / "datalog" / "zkpy-db"]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_zkserver_sh_maps_start_foreground_to_zkpy(tmp_path):
    shim = DOCKER_DIR / "zkServer.sh"
    env = dict(os.environ, ZOOCFGDIR=str(tmp_path))
    run = lambda *args: subprocess.run(["sh", str(shim), *args], env=env, capture_output=True,  # noqa: E731
                                       text=True, timeout=30)
    assert run("print-cmd").stdout.strip() == f'zkpy "{tmp_path}/zoo.cfg"'
    assert run("print-cmd", "other.cfg").stdout.strip() == f'zkpy "{tmp_path}/other.cfg"'
    assert run("print-cmd", "/etc/x/zoo.cfg").stdout.strip() == 'zkpy "/etc/x/zoo.cfg"'
    assert run("start").returncode == 1
    assert os.access(shim, os.X_OK) and os.access(ENTRYPOINT, os.X_OK)


def test_dockerfile(tmp_path):
    text = (DOCKER_DIR / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    instructions = [line.strip() for line in joined.splitlines()
                    if line.strip() and not line.strip().startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    expose = next(i for i in instructions if i.startswith("EXPOSE")).split()[1:]
    assert set(expose) == {"2181", "2888", "3888", "8080", "7000"}
    volume = next(i for i in instructions if i.startswith("VOLUME"))
    assert "/data" in volume and "/datalog" in volume
    user = [i.split()[1] for i in instructions if i.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["python", "/docker-entrypoint.py"]' in instructions
    assert 'CMD ["zkServer.sh", "start-foreground"]' in instructions
    env_block = next(i for i in instructions if i.startswith("ENV ZOO_CONF_DIR"))
    env_values = dict(pair.split("=", 1) for pair in env_block[4:].split())
    spec = importlib.util.spec_from_file_location("zkpy_docker_entrypoint", ENTRYPOINT)
    entrypoint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entrypoint)
    for name, value in entrypoint.DEFAULTS.items():
        assert env_values[name] == value, name
    for instruction in instructions:
        if instruction.startswith("COPY"):
            for source in instruction.split()[1:-1]:
                assert (REPO_ROOT / source).exists(), source
    assert "pip install /src" in joined


def test_compose_file_describes_a_three_server_ensemble(tmp_path):
    compose = yaml.safe_load((DOCKER_DIR / "docker-compose.yml").read_text())
    services = compose["services"]
    assert sorted(services) == ["zoo1", "zoo2", "zoo3"]
    expected_servers = [f"server.{i}=zoo{i}:2888:3888;2181" for i in (1, 2, 3)]
    for index in (1, 2, 3):
        service = services[f"zoo{index}"]
        assert service["hostname"] == f"zoo{index}"
        assert service["restart"] == "always"
        assert service["ports"] == [f"{2180 + index}:2181"]
        build = service["build"]
        assert (DOCKER_DIR / build["context"] / build["dockerfile"]).resolve() == DOCKER_DIR / "Dockerfile"
        env = service["environment"]
        assert int(env["ZOO_MY_ID"]) == index
        assert env["ZOO_SERVERS"].split() == expected_servers
        mounts = dict(reversed(volume.split(":", 1)) for volume in service["volumes"])
        assert set(mounts) == {"/data", "/datalog"}
        for name in mounts.values():
            assert name in compose["volumes"]
        assert "healthcheck" in service
        # The environment yields the config and myid of server ``index``.
        workdir = tmp_path / f"zoo{index}"
        run_entrypoint(clean_env(workdir, **{k: str(v) for k, v in env.items()}), "true")
        config = load(workdir / "conf" / "zoo.cfg")
        assert [(s.server_id, s.host, s.quorum_port, s.election_port, s.client_port)
                for s in config.servers] == [(i, f"zoo{i}", 2888, 3888, 2181) for i in (1, 2, 3)]
        assert (workdir / "data" / "myid").read_text() == f"{index}\n"
    all_volumes = [v.split(":")[0] for s in services.values() for v in s["volumes"]]
    assert len(set(all_volumes)) == 6  # no two servers share a volume
