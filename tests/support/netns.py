"""Real network partitions: ensemble members in their own network namespaces.

``NetnsNetwork(size)`` creates ``size`` namespaces (``zkpy-<suffix>-1..N``, the suffix random)
and two bridges in the root namespace, each on a /24 of 10.231.0.0/16 that the machine does not
use yet:

* the *peer* network (bridge ``zkp<suffix>``, 10.231.<p>.254/24): member i is 10.231.<p>.i on
  the veth ``peer0`` in its namespace, whose other end (``zkp<suffix>h<i>``) is a bridge port.
  The ``server.N`` lines (quorum and election ports) use these addresses, so every byte of
  replication and election traffic crosses this bridge.
* the *client* network (bridge ``zkc<suffix>``, 10.231.<c>.254/24): member i is 10.231.<c>.i on
  ``cli0``. Client ports (``clientPortAddress`` and the ``;host:port`` of the server lines) are
  bound here; the test process (kazoo clients, four-letter words) stays in the root namespace
  and reaches every member through this bridge. Its ports are isolated (``bridge_slave
  isolated on``): members cannot reach one another over it, only the root namespace.

``partition(i)`` sets member i's bridge-side peer veth down: its namespace end loses carrier,
so the member can neither send to nor hear from any other member (packets are dropped, no
reset: what a cut cable or a dead switch port does), while the test can still talk to it as a
client does, which is how a partitioned member is seen refusing service. ``heal(i)`` brings
the port back. The namespaces have no default route, so nothing leaks between the networks
through the root namespace.

Cleanup (``cleanup()``, the context manager's exit, and an ``atexit`` hook) kills whatever
still runs in the namespaces (only processes this module's networks started can be there),
deletes the veths, bridges and namespaces, and checks that none is left. Every network also
records itself in ``/run/zkpy-netns/<suffix>.json`` with its owner's pid, so a later run
removes what a SIGKILLed run left behind.

``NetnsServerProcess`` is a ``ServerProcess`` whose command is prefixed with
``ip netns exec NAME``; ``ip netns exec`` execs, so the child's pid (and process group, the
server runs in its own session) is the server's and ``stop``/``kill`` reach it.
``netns_ensemble(kind, workdir, network, ...)`` makes the members of one ensemble on a network.

Creating namespaces needs CAP_NET_ADMIN (and CAP_SYS_ADMIN for ``ip netns``): without it the
network raises ``NetnsUnavailable`` with the command's error, it never skips.
"""

from __future__ import annotations

import atexit
import fcntl
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.servers import ServerProcess, four_letter_word, member_kinds

REGISTRY = Path("/run/zkpy-netns")
SUPERNET = ipaddress.ip_network("10.231.0.0/16")
CLIENT_PORT, QUORUM_PORT, ELECTION_PORT = 2181, 2888, 3888
NOT_SERVING = "This ZooKeeper instance is not currently serving requests"

_live: set["NetnsNetwork"] = set()


class NetnsUnavailable(RuntimeError):
    """Network namespaces, veths or bridges cannot be created here."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    ip = shutil.which("ip")
    if ip is None:
        raise NetnsUnavailable("the `ip` command (iproute2) is not installed")
    result = subprocess.run([ip, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NetnsUnavailable(f"`ip {' '.join(args)}` failed ({result.returncode}): "
                               f"{result.stderr.strip() or result.stdout.strip()}")
    return result


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the root namespace has an address or a route in."""
    used = []
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        fields = line.split()
        if "inet" in fields:
            used.append(ipaddress.ip_interface(fields[fields.index("inet") + 1]).network)
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        fields = line.split()
        if not fields:
            continue
        target = fields[1] if fields[0] in ("local", "broadcast", "unicast", "blackhole",
                                             "unreachable", "prohibit") else fields[0]
        if target == "default":
            continue
        try:
            used.append(ipaddress.ip_network(target, strict=False))
        except ValueError:
            pass
    return used


def _process_alive(pid: int, start_time: str | None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return start_time is None or stat.rsplit(")", 1)[1].split()[19] == start_time


def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def _kill_namespace_processes(namespace: str) -> None:
    """SIGKILL what runs in ``namespace`` (only servers this module launched run there)."""
    for _ in range(50):
        result = _ip("netns", "pids", namespace, check=False)
        pids = [int(p) for p in result.stdout.split()] if result.returncode == 0 else []
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _remove(namespaces: list[str], links: list[str]) -> list[str]:
    """Remove what a network made; return what could not be removed."""
    existing = set(_ip("netns", "list", check=False).stdout.split())
    for namespace in namespaces:
        if namespace in existing:
            _kill_namespace_processes(namespace)
    for link in links:  # host-side veths first (their peers go with them), then the bridges
        if _ip("link", "show", "dev", link, check=False).returncode == 0:
            _ip("link", "del", "dev", link, check=False)
    for namespace in namespaces:
        if namespace in existing:
            _ip("netns", "del", namespace, check=False)
    left = set(_ip("netns", "list", check=False).stdout.split())
    leftovers = [n for n in namespaces if n in left]
    leftovers += [l for l in links if _ip("link", "show", "dev", l, check=False).returncode == 0]
    return leftovers


def cleanup_stale() -> list[str]:
    """Remove networks whose owner process is gone (a run killed before its cleanup)."""
    removed = []
    if not REGISTRY.is_dir():
        return removed
    for record_path in REGISTRY.glob("*.json"):
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            continue
        if _process_alive(record["pid"], record.get("start_time")):
            continue
        if not _remove(record["namespaces"], record["links"]):
            record_path.unlink(missing_ok=True)
            removed.extend(record["namespaces"])
    return removed


class _RegistryLock:
    def __enter__(self):
        REGISTRY.mkdir(parents=True, exist_ok=True)
        self.file = open(REGISTRY / ".lock", "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


class NetnsNetwork:
    """``size`` network namespaces on a peer bridge and a client bridge (see the module doc)."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.suffix = "%06x" % random.getrandbits(24)
        self.namespaces = [f"zkpy-{self.suffix}-{i}" for i in range(1, size + 1)]
        self.peer_bridge = f"zkp{self.suffix}"
        self.client_bridge = f"zkc{self.suffix}"
        self.peer_ports = [f"zkp{self.suffix}h{i}" for i in range(1, size + 1)]
        self.client_ports = [f"zkc{self.suffix}h{i}" for i in range(1, size + 1)]
        self.peer_net: ipaddress.IPv4Network | None = None
        self.client_net: ipaddress.IPv4Network | None = None
        self.partitioned: set[int] = set()
        self.created = False

    # -- addresses ------------------------------------------------------------------------------

    def namespace(self, index: int) -> str:
        return self.namespaces[index - 1]

    def peer_address(self, index: int) -> str:
        return str(self.peer_net[index])

    def client_address(self, index: int) -> str:
        return str(self.client_net[index])

    @property
    def links(self) -> list[str]:
        return [*self.peer_ports, *self.client_ports, self.peer_bridge, self.client_bridge]

    # -- lifecycle ------------------------------------------------------------------------------

    def create(self) -> "NetnsNetwork":
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root (CAP_NET_ADMIN and CAP_SYS_ADMIN); "
                                   f"running as uid {os.geteuid()}")
        _live.add(self)
        try:
            with _RegistryLock():
                cleanup_stale()
                self._pick_subnets()
                self._register()
                self.created = True
                self._build()
        except BaseException:
            self.cleanup()
            raise
        return self

    def _pick_subnets(self) -> None:
        used = _used_networks()
        candidates = [n for n in SUPERNET.subnets(new_prefix=24)
                      if n.network_address.packed[2] not in (0, 255)
                      and not any(n.overlaps(u) for u in used)]
        if len(candidates) < 2:
            raise NetnsUnavailable(f"no two free /24 networks left in {SUPERNET}")
        self.peer_net, self.client_net = random.sample(candidates, 2)

    def _register(self) -> None:
        record = {"pid": os.getpid(), "start_time": _start_time(os.getpid()),
                  "namespaces": self.namespaces, "links": self.links,
                  "peer_net": str(self.peer_net), "client_net": str(self.client_net)}
        (REGISTRY / f"{self.suffix}.json").write_text(json.dumps(record))

    def _build(self) -> None:
        for bridge, net in ((self.peer_bridge, self.peer_net), (self.client_bridge, self.client_net)):
            _ip("link", "add", "name", bridge, "type", "bridge", "stp_state", "0")
            # If br_netfilter is loaded, keep bridged frames out of the host's iptables.
            _ip("link", "set", "dev", bridge, "type", "bridge", "nf_call_iptables", "0",
                "nf_call_ip6tables", "0", "nf_call_arptables", "0", check=False)
            _ip("addr", "add", f"{net[254]}/24", "dev", bridge)
            _ip("link", "set", "dev", bridge, "up")
        for index, namespace in enumerate(self.namespaces, start=1):
            _ip("netns", "add", namespace)
            _ip("-n", namespace, "link", "set", "dev", "lo", "up")
            for host_end, inner, bridge, net in (
                    (self.peer_ports[index - 1], "peer0", self.peer_bridge, self.peer_net),
                    (self.client_ports[index - 1], "cli0", self.client_bridge, self.client_net)):
                _ip("link", "add", "name", host_end, "type", "veth", "peer", "name", inner,
                    "netns", namespace)
                _ip("link", "set", "dev", host_end, "master", bridge)
                if bridge == self.client_bridge:
                    # Client ports talk to the root namespace only, never to each other.
                    _ip("link", "set", "dev", host_end, "type", "bridge_slave", "isolated", "on")
                _ip("link", "set", "dev", host_end, "up")
                _ip("-n", namespace, "addr", "add", f"{net[index]}/24", "dev", inner)
                _ip("-n", namespace, "link", "set", "dev", inner, "up")

    def cleanup(self) -> None:
        """Remove everything (idempotent); raise if something could not be removed."""
        _live.discard(self)
        if not self.created:
            return
        with _RegistryLock():
            leftovers = _remove(self.namespaces, self.links)
            if not leftovers:
                (REGISTRY / f"{self.suffix}.json").unlink(missing_ok=True)
                self.created = False
        if leftovers:
            raise RuntimeError(f"could not remove {leftovers}")

    def __enter__(self) -> "NetnsNetwork":
        return self.create() if not self.created else self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # -- running things inside ------------------------------------------------------------------

    def exec_prefix(self, index: int) -> list[str]:
        return [shutil.which("ip") or "ip", "netns", "exec", self.namespace(index)]

    def run(self, index: int, *command: str, check: bool = True,
            timeout_s: float = 30.0) -> subprocess.CompletedProcess:
        """Run ``command`` inside member ``index``'s namespace and wait for it."""
        result = subprocess.run([*self.exec_prefix(index), *command], capture_output=True,
                                text=True, timeout=timeout_s)
        if check and result.returncode != 0:
            raise RuntimeError(f"{command} in {self.namespace(index)} failed ({result.returncode}): "
                               f"{result.stderr.strip()}")
        return result

    def can_reach(self, index: int, host: str, port: int, timeout_s: float = 1.0) -> bool:
        """Whether a TCP connection from member ``index``'s namespace to host:port opens."""
        probe = ("import socket, sys\n"
                 "try:\n"
                 f"    socket.create_connection(({host!r}, {port}), timeout={timeout_s}).close()\n"
                 "except OSError:\n"
                 "    sys.exit(1)\n")
        return self.run(index, sys.executable, "-c", probe, check=False).returncode == 0

    # -- partitions -----------------------------------------------------------------------------

    def partition(self, index: int) -> None:
        """Cut member ``index`` off the peer network (its client network stays up)."""
        _ip("link", "set", "dev", self.peer_ports[index - 1], "down")
        self.partitioned.add(index)

    def heal(self, index: int | None = None) -> None:
        """Reconnect member ``index`` (every partitioned member when None)."""
        for i in ([index] if index is not None else sorted(self.partitioned)):
            _ip("link", "set", "dev", self.peer_ports[i - 1], "up")
            self.partitioned.discard(i)

    def describe(self) -> str:
        return (f"namespaces {', '.join(self.namespaces)}; peer network {self.peer_net} on "
                f"{self.peer_bridge}, client network {self.client_net} on {self.client_bridge}")


@atexit.register
def _cleanup_live() -> None:
    for network in list(_live):
        try:
            network.cleanup()
        except Exception as error:  # noqa: BLE001 - report, keep cleaning the others
            print(f"netns cleanup: {error}", file=sys.stderr)


class NetnsServerProcess(ServerProcess):
    """A member running in ``network``'s namespace ``index``, clients on its client address."""

    def __init__(self, kind: str, workdir: Path, network: NetnsNetwork, index: int,
                 settings: dict | None = None, jvm_properties: dict | None = None) -> None:
        settings = {"clientPortAddress": network.client_address(index), **(settings or {})}
        super().__init__(kind, workdir, settings, jvm_properties, myid=index, port=CLIENT_PORT)
        self.network = network
        self.index = index
        self.host = network.client_address(index)
        self.peer_host = network.peer_address(index)

    @property
    def connect_string(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self, config_path: Path) -> list[str]:
        return [*self.network.exec_prefix(self.index), *super().command(config_path)]

    def four_letter_word(self, word: str, timeout_s: float = 2.0) -> str:
        return four_letter_word(self.port, word, timeout_s=timeout_s, host=self.host)

    def srvr(self) -> dict[str, str]:
        """srvr's 'Key: value' lines ({} when it does not serve; raises OSError when down)."""
        text = self.four_letter_word("srvr")
        return {k.strip(): v.strip() for k, _, v in
                (line.partition(":") for line in text.splitlines() if ":" in line)}

    def mode(self) -> str:
        """'leader', 'follower', 'not-serving', 'down' (no process or no answer) or 'unknown'."""
        if self.process is None or self.process.poll() is not None:
            return "down"
        try:
            text = self.four_letter_word("srvr")
        except OSError:
            return "down"
        for line in text.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return "not-serving" if NOT_SERVING in text else "unknown"

    def zxid(self) -> int | None:
        try:
            value = self.srvr().get("Zxid")
        except OSError:
            return None
        return int(value, 16) if value else None

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} member {self.myid} in {self.network.namespace(self.index)} "
                                   f"exited with {self.process.returncode}; log:\n" + self.log_tail())
            try:
                if (self.four_letter_word("ruok", timeout_s=1.0) == "imok"
                        and "Mode:" in self.four_letter_word("srvr", timeout_s=1.0)):
                    self._check_exec()
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"{self.kind} member {self.myid} did not serve on {self.connect_string} "
                           f"within {timeout_s}s; log:\n" + self.log_tail())

    def _check_exec(self) -> None:
        """The pid we signal must be the server's, not a lingering `ip netns exec`."""
        argv0 = Path(f"/proc/{self.process.pid}/cmdline").read_bytes().split(b"\0")[0]
        if os.path.basename(argv0.decode()) == "ip":
            raise RuntimeError(f"pid {self.process.pid} is still `ip netns exec`, not the server")


def netns_ensemble(kind, workdir: Path, network: NetnsNetwork, settings: dict | None = None,
                   jvm_properties: dict | None = None) -> list[NetnsServerProcess]:
    """One unstarted member per namespace of ``network``; start them with ``start_all``.
    ``kind`` is one kind for every member, a mixed kind or a list (see ``member_kinds``)."""
    lines = {f"server.{i}": (f"{network.peer_address(i)}:{QUORUM_PORT}:{ELECTION_PORT}"
                             f";{network.client_address(i)}:{CLIENT_PORT}")
             for i in range(1, network.size + 1)}
    members = []
    for index, member_kind in enumerate(member_kinds(kind, network.size), start=1):
        merged = {"initLimit": "10", "syncLimit": "5", "tickTime": "1000", **lines, **(settings or {})}
        members.append(NetnsServerProcess(member_kind, Path(workdir) / f"{member_kind}-{index}",
                                          network, index, merged, jvm_properties))
    return members
