"""Start and stop etcd API servers for tests: the reference etcd (Debian's 3.4) and zkpy with
its etcd listener (``etcd.clientPort``), each on free loopback ports with its own data
directory, and etcdctl against either.

Both are child processes in their own process group; ``stop()`` sends SIGTERM, then SIGKILL,
so none outlives its test. A server is ready once a gRPC Range answers.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.servers import REPO_ROOT, ChildProcess, distinct_free_ports, free_port

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
ETCD_KINDS = ("etcd", "zkpy")
# Both servers tell idle progress-notify watches the revision this often (etcd's default is
# 10 minutes, too long for a test).
PROGRESS_NOTIFY_INTERVAL_MS = 1000


def require_etcd() -> None:
    """Fail (never skip) with an install hint when the reference etcd is absent."""
    if not (Path(ETCD).exists() and Path(ETCDCTL).exists()):
        raise RuntimeError("the reference etcd is not installed: run `make reference` "
                           "(apt-get install -y etcd-server etcd-client)")


class EtcdServer(ChildProcess):
    """One etcd API server: ``kind`` "etcd" (the reference) or "zkpy"."""

    def __init__(self, kind: str, workdir: Path, settings: dict | None = None,
                 client_port: int | None = None, name: str = "default",
                 peer_port: int | None = None, initial_cluster: str | None = None) -> None:
        self.kind = kind
        self.workdir = Path(workdir)
        self.client_port = client_port or free_port()
        self.zk_port = free_port()
        self.settings = dict(settings or {})
        self.name = name
        self.peer_port = peer_port or free_port()
        self.initial_cluster = initial_cluster
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "server.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def command(self) -> list[str]:
        data_dir = self.workdir / "data"
        if self.kind == "etcd":
            require_etcd()
            peer = f"http://127.0.0.1:{self.peer_port}"
            client = f"http://{self.endpoint}"
            return [ETCD, "--name", self.name, "--data-dir", str(data_dir),
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", self.initial_cluster or f"{self.name}={peer}",
                    "--log-level", "warn", "--logger", "zap",
                    "--experimental-watch-progress-notify-interval",
                    f"{PROGRESS_NOTIFY_INTERVAL_MS}ms"]
        settings = {"tickTime": "2000", "dataDir": str(data_dir), "clientPort": str(self.zk_port),
                    "clientPortAddress": "127.0.0.1", "admin.enableServer": "false",
                    "4lw.commands.whitelist": "*", "etcd.clientPort": str(self.client_port),
                    "etcd.clientPortAddress": "127.0.0.1",
                    "etcd.watchProgressNotifyIntervalMs": str(PROGRESS_NOTIFY_INTERVAL_MS),
                    **self.settings}
        config = self.workdir / "zoo.cfg"
        config.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return [sys.executable, "-m", "zkpy", str(config)]

    def start(self, timeout_s: float = 30.0) -> "EtcdServer":
        self.launch()
        self.wait_ready(timeout_s)
        return self

    def launch(self) -> "EtcdServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.workdir, env=env, start_new_session=True)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}:\n"
                                   + self.log_tail())
            result = etcdctl(self.endpoint, "get", "readiness", timeout_s=3,
                             check=False)
            if result.returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.kind} did not serve within {timeout_s}s:\n" + self.log_tail())


def etcd_cluster(workdir: Path, size: int = 3) -> list[EtcdServer]:
    """``size`` reference etcd members of one cluster on loopback (unstarted: ``launch`` them
    all, then ``wait_ready`` each, since a member serves only once a quorum is up)."""
    ports = distinct_free_ports(size)
    initial = ",".join(f"m{i + 1}=http://127.0.0.1:{peer}" for i, (_, peer, _) in enumerate(ports))
    return [EtcdServer("etcd", Path(workdir) / f"etcd-{i + 1}", client_port=client,
                       name=f"m{i + 1}", peer_port=peer, initial_cluster=initial)
            for i, (client, peer, _) in enumerate(ports)]


def etcdctl(endpoints: str, *args: str, stdin: str | None = None, timeout_s: float = 20,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run etcdctl (API v3) against ``endpoints``; stdout and stderr as text."""
    env = dict(os.environ, ETCDCTL_API="3")
    result = subprocess.run([ETCDCTL, f"--endpoints={endpoints}", *args], input=stdin or "",
                            capture_output=True, text=True, timeout=timeout_s, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}{result.stderr}")
    return result


def start_etcdctl(endpoints: str, *args: str) -> subprocess.Popen:
    """etcdctl in the background (watch, lock, elect); stop it with ``stop_process``."""
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.Popen([ETCDCTL, f"--endpoints={endpoints}", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)


def stop_process(process: subprocess.Popen, timeout_s: float = 5) -> str:
    """Interrupt a background etcdctl as a user's Ctrl-C would; its output."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
    return out


_WARN_LINE = re.compile(r'^\{"level":"warn".*$\n?', re.M)


def without_client_warnings(text: str) -> str:
    """etcdctl's JSON-formatted retry warnings (timestamps, random target names) go."""
    return _WARN_LINE.sub("", text)


class Renamer:
    """Replaces ids that legitimately differ between servers (lease ids, member ids,
    revisions) with names in order of first appearance, so transcripts compare."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        if value not in self.names:
            self.names[value] = f"<{self.prefix}{len(self.names) + 1}>"
        return self.names[value]


def etcd_available() -> bool:
    return shutil.which("etcd") is not None or Path(ETCD).exists()


__all__ = ["ETCD_KINDS", "EtcdServer", "Renamer", "distinct_free_ports", "etcd_cluster", "etcdctl",
           "start_etcdctl", "stop_process", "without_client_warnings"]
