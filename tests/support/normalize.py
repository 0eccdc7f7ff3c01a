"""Normalisation of server responses, so two servers' answers can be compared.

Two servers that behave the same still differ in what the protocol leaves to them: session ids
and passwords, absolute zxids (the reference spends one on every failed write), wall-clock
ctime/mtime, and the order of getChildren/getEphemerals lists (a hash set's order). The
``Normalizer`` removes exactly that:

* zxids become labels ``z1, z2, ...`` in order of first appearance (0 stays 0), so equal zxids
  stay equal and distinct ones stay distinct;
* session ids become ``s0, s1, ...`` by registration (``ephemeralOwner`` included);
* ctime/mtime are dropped (``check_times`` checks their plausibility separately);
* child and ephemeral lists are sorted.

Everything a client can rely on is kept: error codes, data, paths, versions, cversion,
aversion, numChildren, dataLength, per-op multi results and event (type, state, path).

``stat_problems`` checks the relations a single Stat must satisfy on its own.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from jute import records as r
from jute.constants import Err, EventType, OpCode
from jute.opcodes import MultiResult

STAT_ZXID_FIELDS = ("czxid", "mzxid", "pzxid")


def err_name(code: int) -> str:
    try:
        return Err(code).name
    except ValueError:
        return f"ERR{code}"


def event_name(event_type: int) -> str:
    try:
        return EventType(event_type).name
    except ValueError:
        return f"EVENT{event_type}"


class Normalizer:
    """Stateful normaliser for one server: keeps its zxid and session labels."""

    def __init__(self) -> None:
        self.zxid_labels: dict[int, str] = {0: "0", -1: "-1"}
        self.session_labels: dict[int, str] = {0: "0"}

    # --- labels --------------------------------------------------------------------------------

    def zxid(self, value: int) -> str:
        label = self.zxid_labels.get(value)
        if label is None:
            label = f"z{len(self.zxid_labels) - 1}"
            self.zxid_labels[value] = label
        return label

    def register_session(self, session_id: int, label: str | None = None) -> str:
        if session_id not in self.session_labels:
            self.session_labels[session_id] = label or f"s{len(self.session_labels) - 1}"
        return self.session_labels[session_id]

    def session(self, session_id: int) -> str:
        return self.session_labels.get(session_id, f"unknown-session:{session_id:#x}")

    # --- records -------------------------------------------------------------------------------

    def stat(self, stat: r.Stat | None) -> dict | None:
        if stat is None:
            return None
        return {
            "czxid": self.zxid(stat.czxid),
            "mzxid": self.zxid(stat.mzxid),
            "pzxid": self.zxid(stat.pzxid),
            "version": stat.version,
            "cversion": stat.cversion,
            "aversion": stat.aversion,
            "ephemeralOwner": self.session(stat.ephemeral_owner),
            "dataLength": stat.data_length,
            "numChildren": stat.num_children,
        }

    def value(self, value: Any) -> Any:
        """Normalise any decoded response value (records, lists, multi results)."""
        if value is None or isinstance(value, (int, str, bytes, bool, float)):
            return value
        if isinstance(value, r.Stat):
            return self.stat(value)
        if isinstance(value, MultiResult):
            kind = "error" if value.type == OpCode.error else _op_name(value.type)
            out = {"type": kind, "err": err_name(value.err)}
            if value.type != OpCode.error and value.response is not None:
                out["response"] = self.value(value.response)
            return out
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            out = {}
            for name in value._fields:
                field = getattr(value, name)
                if name in ("children", "ephemerals") and field is not None:
                    out[name] = sorted(field)
                elif name == "client_info" and field is not None:
                    out[name] = sorted((info.auth_scheme, info.user) for info in field)
                else:
                    out[name] = self.value(field)
            return out
        if isinstance(value, tuple):
            return tuple(self.value(item) for item in value)
        return repr(value)

    def reply(self, reply: Any) -> Any:
        """A Reply from the raw client (or "closed"/"timeout") as a comparable value."""
        if isinstance(reply, str):
            return reply
        out = {"err": err_name(reply.err)}
        if reply.response is not None:
            out["response"] = self.value(reply.response)
        return out

    @staticmethod
    def event(event) -> tuple:
        return (event_name(event.type), event.state, event.path)

    def events(self, events: Iterable, ordered: bool = True) -> list:
        items = [self.event(e) for e in events]
        return items if ordered else sorted(items)


def _op_name(op: int) -> str:
    try:
        return OpCode(op).name
    except ValueError:
        return f"op{op}"


# --- relations --------------------------------------------------------------------------------

def stat_problems(stat: r.Stat) -> list[str]:
    """Relations any Stat must satisfy on its own."""
    problems = []
    if stat.mzxid < stat.czxid:
        problems.append(f"mzxid {stat.mzxid} < czxid {stat.czxid}")
    if stat.pzxid < stat.czxid:
        problems.append(f"pzxid {stat.pzxid} < czxid {stat.czxid}")
    if stat.version < 0 or stat.aversion < 0:
        problems.append("negative version or aversion")
    if stat.num_children < 0 or stat.data_length < 0:
        problems.append("negative numChildren or dataLength")
    if stat.version == 0 and stat.mzxid != stat.czxid and stat.czxid != 0:
        problems.append("version 0 but mzxid != czxid")
    if stat.mtime < stat.ctime:
        problems.append(f"mtime {stat.mtime} < ctime {stat.ctime}")
    if stat.ephemeral_owner != 0 and stat.num_children != 0:
        problems.append("ephemeral node with children")
    return problems


def check_times(stat: r.Stat, not_before_ms: int, slack_ms: int = 60_000) -> None:
    """ctime/mtime are wall-clock milliseconds around now (not seconds, not nanoseconds)."""
    now_ms = int(time.time() * 1000)
    for name in ("ctime", "mtime"):
        value = getattr(stat, name)
        assert not_before_ms - slack_ms <= value <= now_ms + slack_ms, (
            f"{name}={value} is not wall-clock ms near [{not_before_ms}, {now_ms}]")
    assert stat.mtime >= stat.ctime


def first_difference(a: list, b: list) -> int | None:
    """Index of the first differing element (or the shorter length), None if equal."""
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return index
    if len(a) != len(b):
        return min(len(a), len(b))
    return None


def sequence_number(name: str) -> int:
    """The 10-digit suffix of a sequential node name."""
    suffix = name[-10:]
    assert len(suffix) == 10 and suffix.isdigit(), f"{name!r} has no 10-digit suffix"
    return int(suffix)


# --- lockstep comparison of two servers -------------------------------------------------------

class Mismatch(AssertionError):
    """Two servers answered the same step differently."""


class Lockstep:
    """Drive the same sessions on two servers step by step and compare every answer.

    ``clients`` are made by ``connect(server_index)`` (a callable returning a RawClient);
    session ``name`` exists on both servers and is labelled ``name`` in both normalisers.
    ``call(name, method, *args)`` invokes the RawClient helper ``method`` on both sides,
    normalises both replies and raises ``Mismatch`` (with ``context``, e.g. the seed, the step
    number, the operation, both answers and the recent history) when they differ.
    """

    def __init__(self, servers, labels=("reference", "peer"), context: str = "",
                 history: int = 25, client_kwargs: dict | None = None) -> None:
        from tests.support.rawclient import RawClient

        self._raw = RawClient
        self.servers = list(servers)
        self.labels = labels
        self.context = context
        self.normalizers = [Normalizer() for _ in self.servers]
        self.sessions: dict[str, list] = {}
        self.transcript: list[tuple] = []
        self.history = history
        self.step = 0
        self.where = ""  # set by drivers, e.g. "op 17": shown with a mismatch
        self.client_kwargs = dict(client_kwargs or {})
        self._last_zxid: dict[tuple[str, int], int] = {}

    # --- sessions ------------------------------------------------------------------------------

    def open(self, name: str, **kwargs) -> list:
        options = {**self.client_kwargs, **kwargs}
        clients = [self._raw("127.0.0.1", server.port, **options) for server in self.servers]
        for normalizer, client in zip(self.normalizers, clients):
            if client.session_id:
                normalizer.register_session(client.session_id, name)
        self.sessions[name] = clients
        self._record(name, "open", [c.negotiated_timeout_ms for c in clients], compare=True)
        return clients

    def close(self, name: str) -> None:
        self.call(name, "close_session")
        for client in self.sessions.pop(name):
            client.disconnect()

    def disconnect_all(self) -> None:
        for clients in self.sessions.values():
            for client in clients:
                client.disconnect()
        self.sessions.clear()

    # --- steps ---------------------------------------------------------------------------------

    def call(self, name: str, method: str, *args, **kwargs) -> list:
        """Run ``method`` on both sides of session ``name``; compare the normalised replies."""
        from tests.support.rawclient import ConnectionClosed

        clients = self.sessions[name]
        replies = []
        for client in clients:
            try:
                replies.append(getattr(client, method)(*args, **kwargs))
            except ConnectionClosed:
                replies.append("closed")
            except TimeoutError:
                replies.append("timeout")
        normalized = [n.reply(reply) for n, reply in zip(self.normalizers, replies)]
        for index, reply in enumerate(replies):
            if not isinstance(reply, str) and reply.zxid > 0:
                key = (name, index)
                previous = self._last_zxid.get(key, 0)
                if reply.zxid < previous:
                    self._fail(name, f"{method}{args!r}", [
                        f"reply zxid went backwards on {self.labels[index]}: "
                        f"{previous:#x} then {reply.zxid:#x}"] * 2)
                self._last_zxid[key] = reply.zxid
        self._record(name, f"{method}{_short(args)}{_short(kwargs) if kwargs else ''}",
                     normalized, compare=True)
        return replies

    def events(self, name: str, ordered: bool = True) -> list:
        """Barrier on both sides of ``name`` and compare the notifications that arrived."""
        from tests.support.rawclient import ConnectionClosed

        collected = []
        for normalizer, client in zip(self.normalizers, self.sessions[name]):
            if not client.closed:
                try:
                    client.barrier()
                except (ConnectionClosed, TimeoutError):
                    pass
            collected.append(normalizer.events(client.take_events(), ordered=ordered))
        self._record(name, "events", collected, compare=True)
        return collected[0]

    def all_events(self, ordered: bool = True) -> None:
        for name in list(self.sessions):
            self.events(name, ordered=ordered)

    def compare(self, what: str, values: list) -> None:
        """Compare any already-normalised values computed per server."""
        self._record("-", what, values, compare=True)

    # --- bookkeeping ---------------------------------------------------------------------------

    def _record(self, name: str, what: str, values: list, compare: bool) -> None:
        self.step += 1
        if compare and any(v != values[0] for v in values[1:]):
            self._fail(name, what, values)
        self.transcript.append((self.step, name, what, values[0]))

    def _fail(self, name: str, what: str, values: list) -> None:
        def render(entries):
            return "\n".join(f"  step {s} [{n}] {w} -> {v!r}" for s, n, w, v in entries)

        # Empty event checks are noise; the session's own history shows how it got there.
        informative = [e for e in self.transcript if not (e[2] == "events" and e[3] == [])]
        own = [e for e in informative if e[1] == name]
        answers = "\n".join(f"  {label}: {value!r}" for label, value in zip(self.labels, values))
        where = f" ({self.where})" if self.where else ""
        raise Mismatch(f"{self.context}first difference at step {self.step}{where} [{name}] "
                       f"{what}\n{answers}\n"
                       f"recent steps (reference answers):\n{render(informative[-self.history:])}\n"
                       f"recent steps of session {name}:\n{render(own[-self.history:])}")


def _short(value, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
