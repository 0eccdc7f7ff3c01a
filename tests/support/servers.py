"""Start and stop real servers for tests: the reference ZooKeeper (Debian's 3.8) and zkpy.

Each server gets a fresh data directory and free loopback ports, is started as a child process,
and is ready once it answers ``ruok`` with ``imok``. ``stop()`` sends SIGTERM and escalates to
SIGKILL, so no process outlives its test. Use the ``server_factory`` fixture (tests/conftest.py)
rather than these classes directly: it stops whatever a test started.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
JAVA_DIR = Path("/usr/share/java")
REFERENCE_CLASSPATH = ["/etc/zookeeper/conf", str(JAVA_DIR / "zookeeper.jar")]
# A logger binding, so a Java member's warnings (and, when a test asks, its INFO lines) reach
# its server.log: the mixed-ensemble tests read them.
JAVA_LOGGER_JARS = [str(JAVA_DIR / "slf4j-simple.jar")]
KINDS = ("zookeeper", "zkpy")
# Mixed ensembles of Java and zkpy members: "mixedjava" has a Java majority, "mixedzkpy" a
# zkpy one. The minority takes the highest ids, so that either kind can be brought to lead by
# killing leaders (with equal zxids the highest id wins an election).
MIXED_KINDS = ("mixedjava", "mixedzkpy")
ENSEMBLE_KINDS = KINDS + MIXED_KINDS


def member_kinds(kind, size: int) -> list[str]:
    """The kind of each member of an ensemble of ``kind`` (one kind, a mixed kind or a list)."""
    if not isinstance(kind, str):
        return list(kind)
    minority = size // 2
    if kind == "mixedjava":
        return ["zookeeper"] * (size - minority) + ["zkpy"] * minority
    if kind == "mixedzkpy":
        return ["zkpy"] * (size - minority) + ["zookeeper"] * minority
    return [kind] * size


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def distinct_free_ports(count: int) -> list[tuple[int, int, int]]:
    """``count`` triples of free loopback ports, all different: the sockets stay bound until
    every port is chosen, so the kernel cannot hand the same port out twice."""
    sockets = []
    try:
        for _ in range(count * 3):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        numbers = [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    return [tuple(numbers[i:i + 3]) for i in range(0, len(numbers), 3)]


def four_letter_word(port: int, word: str, timeout_s: float = 2.0, host: str = "127.0.0.1") -> str:
    """Send a four-letter word and return the whole reply ('' if the server closed at once)."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(word.encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def require_reference() -> None:
    """Fail (never skip) with an install hint when the reference ZooKeeper is absent."""
    missing = [p for p in REFERENCE_CLASSPATH[1:] if not Path(p).exists()]
    if missing or shutil.which("java") is None:
        raise RuntimeError(
            "the reference ZooKeeper is not installed: run `make reference` (apt-get install -y "
            "zookeeper zookeeper-bin libcurator-*-java) and make sure java is on PATH")


class ChildProcess:
    """A server started in its own process group (``process``), logging to ``log_path``:
    ``stop`` sends the group SIGTERM, then SIGKILL, so nothing it started outlives it."""

    process: subprocess.Popen | None = None
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class ServerProcess(ChildProcess):
    """One server process with its own data directory and client port."""

    def __init__(self, kind: str, workdir: Path, settings: dict[str, str] | None = None,
                 jvm_properties: dict[str, str] | None = None, myid: int | None = None,
                 port: int | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown server kind {kind!r}")
        self.kind = kind
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.myid = myid
        self.settings = dict(settings or {})
        self.jvm_properties = dict(jvm_properties or {})
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "server.log"

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def config_text(self) -> str:
        settings = {
            "tickTime": "2000",
            "dataDir": str(self.data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": "127.0.0.1",
            "maxClientCnxns": "0",
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
            "extendedTypesEnabled": "true",
            "znode.container.checkIntervalMs": "1000",
        }
        settings.update(self.settings)
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def command(self, config_path: Path) -> list[str]:
        if self.kind == "zkpy":
            # zkpy takes ZooKeeper's -D system properties the same way.
            properties = [f"-D{k}={v}" for k, v in self.jvm_properties.items()]
            return [sys.executable, "-m", "zkpy", *properties, str(config_path)]
        require_reference()
        properties = {
            "zookeeper.extendedTypesEnabled": "true",
            "znode.container.checkIntervalMs": "1000",
            "zookeeper.log.dir": str(self.workdir),
            "zookeeper.root.logger": "INFO,CONSOLE",
            "zookeeper.admin.enableServer": "false",
            "org.slf4j.simpleLogger.defaultLogLevel": "warn",
            "org.slf4j.simpleLogger.showDateTime": "true",
        }
        properties.update(self.jvm_properties)
        loggers = [jar for jar in JAVA_LOGGER_JARS if Path(jar).exists()]
        return ["java", "-Xmx512m", *[f"-D{k}={v}" for k, v in properties.items()],
                "-cp", ":".join(REFERENCE_CLASSPATH + loggers),
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(config_path)]

    def start(self, timeout_s: float = 30.0) -> "ServerProcess":
        self.launch()
        self.wait_ready(timeout_s)
        return self

    def launch(self) -> "ServerProcess":
        """Start the process without waiting for it to serve."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.myid is not None:
            (self.data_dir / "myid").write_text(f"{self.myid}\n")
        config_path = self.workdir / "zoo.cfg"
        config_path.write_text(self.config_text())
        log = open(self.log_path, "ab")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.process = subprocess.Popen(self.command(config_path), stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.workdir, env=env, start_new_session=True)
        log.close()
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}; log:\n"
                                   + self.log_tail())
            try:
                # ZooKeeper answers ruok before it serves; srvr shows Mode once it does.
                if (four_letter_word(self.port, "ruok", timeout_s=1.0) == "imok"
                        and "Mode:" in four_letter_word(self.port, "srvr", timeout_s=1.0)):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer ruok within {timeout_s}s; log:\n" + self.log_tail())


    def restart(self, timeout_s: float = 30.0) -> "ServerProcess":
        self.stop()
        return self.start(timeout_s)


def ensemble(kind, workdir: Path, size: int = 3, settings: dict | None = None,
             jvm_properties: dict | None = None, server_class=None) -> list[ServerProcess]:
    """``size`` unstarted members of one ensemble on loopback, each with its own ports and
    data directory; start them with ``start_all``. ``kind`` is one kind for every member, a
    mixed kind, or a list of kinds, one per member (see ``member_kinds``). ``server_class``
    (a ServerProcess subclass) builds the members instead."""
    server_class = server_class or ServerProcess
    kinds = member_kinds(kind, size)
    ports = distinct_free_ports(len(kinds))
    lines = {f"server.{i + 1}": f"127.0.0.1:{q}:{e};127.0.0.1:{c}" for i, (c, q, e) in enumerate(ports)}
    members = []
    for index, ((client_port, _, _), member_kind) in enumerate(zip(ports, kinds)):
        merged = {"initLimit": "10", "syncLimit": "5", "tickTime": "1000", **lines, **(settings or {})}
        members.append(server_class(member_kind, Path(workdir) / f"{member_kind}-{index + 1}",
                                    merged, jvm_properties, myid=index + 1, port=client_port))
    return members


def start_all(members: list[ServerProcess], timeout_s: float = 60.0) -> list[ServerProcess]:
    """Start every member, then wait until each one serves."""
    for member in members:
        member.launch()
    for member in members:
        member.wait_ready(timeout_s)
    return members


def connect_string(members: list[ServerProcess]) -> str:
    return ",".join(member.connect_string for member in members)
