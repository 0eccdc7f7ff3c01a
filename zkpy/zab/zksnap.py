"""The tree a ZooKeeper leader streams to a learner it syncs by SNAP, both ways. No I/O.

After the SNAP QuorumPacket, ZooKeeper's LearnerHandler writes straight onto the socket, with
Jute's BinaryOutputArchive, ``ZKDatabase.serializeSnapshot`` and then a signature; a learner
(``Learner.syncWithLeader``) reads it back with ``ZKDatabase.deserializeSnapshot``. Checked
against ZooKeeper 3.8.0's classes (SerializeUtils, DataTree, DataNode, ReferenceCountedACLCache,
LearnerHandler, Learner, BinaryInputArchive). All integers big-endian; ustring and buffer are an
int length (-1: null) then the bytes::

    sessions        int count, then count x (long session id, int timeout ms)
    ACL cache       int count, then count x (long index, vector<ACL>)
                    (ACL: int perms, ustring scheme, ustring id)
    nodes           (ustring path, DataNode = buffer data, long acl index, StatPersisted) ...
                    parents before children (DataTree.serializeNode's depth-first walk); the
                    root's path is "", every other path absolute; acl index -1 means
                    world:anyone with all permissions (OPEN_ACL_UNSAFE)
    end of nodes    ustring "/"
    signature       ustring "BenWasHere"

It is the body of a snapshot file (``zkpy.tools.zkformat``) without the file header, the
Adler32 seals and the digest. StatPersisted's cversion counts child creations only, the same
convention as zkpy's ``Node.cversion`` (DataNode.copyStat reports ``2 * cversion -
numChildren`` to clients, as ``Node.stat`` does), so every Stat number passes through as is.

A Java learner reads lengths up to ``jute.maxbuffer + zookeeper.jute.maxbuffer.extrasize``
(the extra size defaults to jute.maxbuffer itself); ``SnapReceiver``'s default limit is that
sum for the default jute.maxbuffer.

The primitive encoders here (``encode_ustring``, ``encode_buffer``, ``encode_acl_list``,
``encode_node_record``) are shared with the snapshot file writer in ``zkpy.tools.zkformat``.
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator, Mapping

from jute import Perms
from jute import records as r
from jute.constants import MAX_BUFFER_BYTES_DEFAULT
from jute.errors import JuteDecodeError
from zkpy.tree.datatree import DataTree, Node

SIGNATURE = b"BenWasHere"
END_OF_NODES = "/"
OPEN_ACL_INDEX = -1
OPEN_ACL = (r.ACL(int(Perms.ALL), r.Id("world", "anyone")),)

# BinaryInputArchive.checkLength: a length above maxbuffer + extrasize is refused; the extra
# size defaults to jute.maxbuffer (at least 1024).
DEFAULT_MAX_LENGTH = MAX_BUFFER_BYTES_DEFAULT + max(MAX_BUFFER_BYTES_DEFAULT, 1024)
DEFAULT_MAX_COUNT = 1 << 24  # sessions; entries of the ACL cache
DEFAULT_MAX_NODES = 1 << 27
DEFAULT_CHUNK_BYTES = 1 << 20

INT = struct.Struct(">i")
LONG = struct.Struct(">q")
STAT_PERSISTED = struct.Struct(">qqqqiiiqq")
_SESSION = struct.Struct(">qi")
_ACL_HEAD = struct.Struct(">qi")  # index, vector count
_ACL_START = struct.Struct(">ii")  # perms, scheme length
_NODE_TAIL = struct.Struct(">q" + STAT_PERSISTED.format[1:])  # acl index, StatPersisted
_NULL = INT.pack(-1)


# -- Jute primitives (shared with zkpy.tools.zkformat) --------------------------------------


def encode_ustring(text: str | None) -> bytes:
    if text is None:
        return _NULL
    data = text.encode("utf-8")
    return INT.pack(len(data)) + data


def encode_buffer(data: bytes | None) -> bytes:
    if data is None:
        return _NULL
    return INT.pack(len(data)) + data


def encode_acl_list(acl) -> bytes:
    """A vector<ACL> as ReferenceCountedACLCache.serialize writes each entry's list."""
    parts = [INT.pack(len(acl))]
    for entry in acl:
        parts.append(INT.pack(entry.perms) + encode_ustring(entry.id.scheme)
                     + encode_ustring(entry.id.id))
    return b"".join(parts)


def encode_node_record(path: str, data: bytes | None, acl_index: int, stat) -> bytes:
    """One node as DataTree.serializeNodeData writes it: path ("/" is written as the root's
    ""), then the DataNode record; ``stat`` is a StatPersisted or its nine numbers in order."""
    return (encode_ustring("" if path == "/" else path) + encode_buffer(data)
            + _NODE_TAIL.pack(acl_index, *stat))


# -- the leader's side ----------------------------------------------------------------------


def _session_pairs(sessions) -> list[tuple[int, int]]:
    if isinstance(sessions, Mapping):
        return list(sessions.items())
    return [(session_id, timeout_ms) for session_id, timeout_ms in sessions]


def acl_numbering(tree: DataTree) -> tuple[dict[tuple, int], dict[int, int]]:
    """The ACL cache the stream sends: every distinct ACL list of the tree, numbered from 1
    in the order first met (ReferenceCountedACLCache starts at 1 too), and the same numbers
    by the identity of the lists the nodes hold (most share one interned tuple).

    Every list gets a number, open ACLs included: -1 is what ZooKeeper gives its own
    system nodes, and any cached index means the same to a learner."""
    by_value: dict[tuple, int] = {}
    by_identity: dict[int, int] = {}
    for node in tree.nodes.values():
        acl = node.acl
        if id(acl) in by_identity:
            continue
        key = tuple(acl)
        index = by_value.get(key)
        if index is None:
            index = by_value[key] = len(by_value) + 1
        by_identity[id(acl)] = index
    return by_value, by_identity


def snap_chunks(tree: DataTree, sessions: Mapping[int, int] | Iterable[tuple[int, int]],
                chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
    """The bytes a ZooKeeper leader writes after a SNAP packet, in chunks: the sessions, the
    ACL cache, every node (the root as "", then /zookeeper, /zookeeper/quota,
    /zookeeper/config and the rest, parents before children, depth first as
    DataTree.serializeNode walks), the "/" that ends the nodes, then the signature.

    ``sessions`` is a mapping of session id to timeout ms, or (id, timeout ms) pairs; they
    are taken (copied) when the first chunk is asked for. Every chunk but the last is exactly
    ``chunk_bytes`` long; no more than one chunk plus one node record is held at a time, never
    the whole serialisation.

    The tree must not change from the first chunk asked for until the generator is
    exhausted (or dropped): the ACL cache is numbered from a first pass over the nodes (a
    quick one: no path is built, nothing is encoded) and the nodes are encoded in a second
    pass, so the runtime pulls the chunks while nothing applies txns (between event-loop turns,
    or in a worker thread while the loop holds back applying), and a learner then gets the
    txns after the SNAP's zxid as usual. ZooKeeper itself sends a fuzzy tree here and relies
    on replay being idempotent; zkpy sends an exact one.
    """
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be positive, not {chunk_bytes}")
    pairs = _session_pairs(sessions)
    out = bytearray(INT.pack(len(pairs)))
    pack_session = _SESSION.pack
    for session_id, timeout_ms in pairs:
        out += pack_session(session_id, timeout_ms)
        if len(out) >= chunk_bytes:
            while len(out) >= chunk_bytes:
                yield bytes(out[:chunk_bytes])
                del out[:chunk_bytes]
    del pairs
    by_value, by_identity = acl_numbering(tree)
    out += INT.pack(len(by_value))
    for acl, index in by_value.items():
        out += LONG.pack(index)
        out += encode_acl_list(acl)
        while len(out) >= chunk_bytes:
            yield bytes(out[:chunk_bytes])
            del out[:chunk_bytes]
    del by_value
    pack_int = INT.pack
    pack_tail = _NODE_TAIL.pack
    for path, node in tree.iter_nodes():
        raw = b"" if path == "/" else path.encode("utf-8")
        out += pack_int(len(raw))
        out += raw
        data = node.data
        if data is None:
            out += _NULL
        else:
            out += pack_int(len(data))
            out += data
        out += pack_tail(by_identity[id(node.acl)], node.czxid, node.mzxid, node.ctime,
                         node.mtime, node.version, node.cversion, node.aversion,
                         node.ephemeral_owner, node.pzxid)
        if len(out) >= chunk_bytes:
            while len(out) >= chunk_bytes:
                yield bytes(out[:chunk_bytes])
                del out[:chunk_bytes]
    out += encode_ustring(END_OF_NODES)
    out += encode_buffer(SIGNATURE)
    while len(out) > chunk_bytes:
        yield bytes(out[:chunk_bytes])
        del out[:chunk_bytes]
    if out:
        yield bytes(out)


# -- the learner's side ---------------------------------------------------------------------


class SnapReceiver:
    """Parses the SNAP stream incrementally and builds zkpy's DataTree from it.

    ``feed(data)`` takes bytes as they come off the socket and returns how many it used:
    all of them until the signature has been read, then only those up to its end (``done``
    turns true); what was not used belongs to the next QuorumPacket. Of what was fed, only
    the bytes of the one record a chunk cuts are kept (a count, a session, an ACL entry's
    index or one of its ACLs, a node record, the signature), never the stream; every length
    is checked before its bytes are waited for. ``result()`` gives (the tree, [(session id, timeout
    ms)]) once done; the tree's ``last_zxid`` is ``zxid``, the SNAP packet's.

    The tree is built as zkpy loads a snapshot (``DataTree.load_node``): children sets,
    ephemerals by owner, containers and TTL nodes, every StatPersisted number as sent (pzxid
    and cversion included), ACL lists interned.

    Anything a ZooKeeper leader cannot have sent raises ``JuteDecodeError`` as soon as the
    bytes showing it arrive: a length below -1, or above ``max_length`` (strings, node data,
    the signature; an entry's whole ACL list too); a null path, ACL list, scheme or id; a
    session or ACL cache count below 0 or above ``max_count``; more than ``max_nodes``
    nodes; a repeated ACL index or one no entry defines; a first node other than the root, a
    path repeated, not absolute, ending in "/", or whose parent has not come before it;
    invalid UTF-8; no root before the end of the nodes; a signature other than "BenWasHere".
    A receiver that raised raises the same error on every later ``feed``.
    """

    def __init__(self, zxid: int, max_length: int = DEFAULT_MAX_LENGTH,
                 max_count: int = DEFAULT_MAX_COUNT, max_nodes: int = DEFAULT_MAX_NODES) -> None:
        self.zxid = zxid
        self.max_length = max_length
        self.max_count = max_count
        self.max_nodes = max_nodes
        self.bytes_used = 0
        self.node_count = 0
        self._tree = DataTree()
        self._tree.clear()
        self._nodes = self._tree.nodes
        self._sessions: list[tuple[int, int]] = []
        self._acls: dict[int, tuple] = {}
        self._pending = bytearray()  # the start of a field group a chunk cut
        self._need = 0  # bytes the pending field group needs, at least
        self._step = self._session_count
        self._remaining = 0  # sessions or ACL cache entries still to come
        self._acl_index = 0
        self._acl_items: list = []
        self._acl_left = 0  # ACLs still to come in the current entry's list
        self._acl_bytes = 0
        self._open_acl = self._tree.intern_acl(OPEN_ACL)
        self._done = False
        self._error: JuteDecodeError | None = None

    @property
    def done(self) -> bool:
        """True once the signature has been read (and checked)."""
        return self._done

    def result(self) -> tuple[DataTree, list[tuple[int, int]]]:
        """(tree, sessions); raises JuteDecodeError if the stream is not complete (the caller's
        connection ended inside it)."""
        if self._error is not None:
            raise self._error
        if not self._done:
            raise JuteDecodeError(f"snapshot stream incomplete: {self.bytes_used} bytes, "
                                  f"{self.node_count} nodes read, still in {self._where()}")
        return self._tree, self._sessions

    def feed(self, data) -> int:
        """Parse what ``data`` holds of the stream; returns the number of bytes used."""
        if self._error is not None:
            raise self._error
        if self._done or not data:
            return 0
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        try:
            used = self._feed(view)
        except JuteDecodeError as error:
            self._error = JuteDecodeError(f"SNAP stream, {self._where()}: {error}")
            self._pending = bytearray()
            raise self._error from None
        self.bytes_used += used
        return used

    # -- the parse loop -------------------------------------------------------------------

    def _feed(self, view: memoryview) -> int:
        total = len(view)
        used = 0
        pending = self._pending
        while pending:
            # Complete the field group a chunk cut, taking no more than it needs so far, so
            # that nothing after the signature is ever taken.
            take = min(self._need - len(pending), total - used)
            pending += view[used:used + take]
            used += take
            if len(pending) < self._need:
                return used
            stop = self._run(pending, 0, len(pending))
            if stop == len(pending) or self._done:
                pending.clear()
            elif stop != 0:  # pragma: no cover - a step consumed part of what it asked for
                raise AssertionError("SNAP receiver: a field group ended inside its need")
        stop = self._run(view, used, total)
        if not self._done and stop < total:
            pending += view[stop:total]
            stop = total
        return stop

    def _run(self, buf, off: int, end: int) -> int:
        """Parse field groups from ``buf[off:end]``; returns where parsing stopped: the end
        of the signature, or the start of a group ``end`` cuts (``_need`` set)."""
        while not self._done:
            new = self._step(buf, off, end)
            if new < 0:
                return off
            off = new
        return off

    def _where(self) -> str:
        step = self._step
        if step == self._session_count or step == self._session:
            return "the sessions"
        if step == self._acl_count or step == self._acl_head or step == self._acl_item:
            return "the ACL cache"
        if step == self._node_records:
            return f"the nodes (after {self.node_count})"
        return "the signature"

    def _length(self, length: int, what: str) -> None:
        if length < 0:
            raise JuteDecodeError(f"{what}: negative length {length}" if length < -1
                                  else f"{what}: null")
        if length > self.max_length:
            raise JuteDecodeError(f"{what}: length {length} is over the limit of "
                                  f"{self.max_length} bytes")

    def _count(self, count: int, what: str) -> None:
        if count < 0:
            raise JuteDecodeError(f"negative {what} count {count}")
        if count > self.max_count:
            raise JuteDecodeError(f"{what} count {count} is over the limit of {self.max_count}")

    @staticmethod
    def _text(buf, start: int, stop: int, what: str) -> str:
        try:
            return str(buf[start:stop], "utf-8")
        except UnicodeDecodeError as error:
            raise JuteDecodeError(f"{what}: invalid UTF-8 ({error.reason} at byte "
                                  f"{error.start})") from None

    # -- one field group each: return the offset after it, or -1 with _need set ------------

    def _session_count(self, buf, off: int, end: int) -> int:
        if end - off < 4:
            self._need = 4
            return -1
        count = INT.unpack_from(buf, off)[0]
        self._count(count, "session")
        self._remaining = count
        self._step = self._session if count else self._acl_count
        return off + 4

    def _session(self, buf, off: int, end: int) -> int:
        count = min(self._remaining, (end - off) // _SESSION.size)
        if not count:
            self._need = _SESSION.size
            return -1
        stop = off + count * _SESSION.size
        self._sessions.extend(_SESSION.iter_unpack(buf[off:stop]))
        self._remaining -= count
        if not self._remaining:
            self._step = self._acl_count
        return stop

    def _acl_count(self, buf, off: int, end: int) -> int:
        if end - off < 4:
            self._need = 4
            return -1
        count = INT.unpack_from(buf, off)[0]
        self._count(count, "ACL cache entry")
        self._remaining = count
        self._step = self._acl_head if count else self._node_records
        return off + 4

    def _acl_head(self, buf, off: int, end: int) -> int:
        if end - off < _ACL_HEAD.size:
            self._need = _ACL_HEAD.size
            return -1
        index, count = _ACL_HEAD.unpack_from(buf, off)
        if count == -1:
            raise JuteDecodeError(f"ACL cache entry {index}: null ACL list (missing acls)")
        if count < 0:
            raise JuteDecodeError(f"ACL cache entry {index}: negative ACL count {count}")
        if count > self.max_length // 12:  # an ACL takes 12 bytes at least
            raise JuteDecodeError(f"ACL cache entry {index}: {count} ACLs cannot fit in the "
                                  f"limit of {self.max_length} bytes")
        if index in self._acls or index == OPEN_ACL_INDEX:
            raise JuteDecodeError(f"ACL cache index {index} "
                                  + ("repeated" if index in self._acls else "is reserved"))
        self._acl_index = index
        self._acl_items = []
        self._acl_left = count
        self._acl_bytes = 4
        if count:
            self._step = self._acl_item
        else:
            self._end_acl_entry()
        return off + _ACL_HEAD.size

    def _acl_item(self, buf, off: int, end: int) -> int:
        if end - off < 8:
            self._need = 8
            return -1
        perms, scheme_len = _ACL_START.unpack_from(buf, off)
        index = self._acl_index
        self._length(scheme_len, f"ACL cache entry {index}: scheme")
        at = off + 8 + scheme_len
        if end - at < 4:
            self._need = at + 4 - off
            return -1
        id_len = INT.unpack_from(buf, at)[0]
        self._length(id_len, f"ACL cache entry {index}: id")
        stop = at + 4 + id_len
        if self._acl_bytes + (stop - off) > self.max_length:
            raise JuteDecodeError(f"ACL cache entry {index}: the ACL list is over the limit "
                                  f"of {self.max_length} bytes")
        if end < stop:
            self._need = stop - off
            return -1
        self._acl_bytes += stop - off
        scheme = self._text(buf, off + 8, at, f"ACL cache entry {index}: scheme")
        ident = self._text(buf, at + 4, stop, f"ACL cache entry {index}: id")
        self._acl_items.append(r.ACL(perms, r.Id(scheme, ident)))
        self._acl_left -= 1
        if not self._acl_left:
            self._end_acl_entry()
        return stop

    def _end_acl_entry(self) -> None:
        self._acls[self._acl_index] = self._tree.intern_acl(tuple(self._acl_items))
        self._acl_items = []
        self._remaining -= 1
        self._step = self._acl_head if self._remaining else self._node_records

    def _node_records(self, buf, off: int, end: int) -> int:
        """Node records (path, data, ACL index, StatPersisted) in a loop, as many as ``buf``
        holds whole, each inserted as ``DataTree.load_node`` inserts a snapshot's node (its
        work is done inline: the parent and the name are known here already, and the ACL
        lists were interned when the cache was read). A path "/" ends the nodes."""
        unpack_int = INT.unpack_from
        unpack_tail = _NODE_TAIL.unpack_from
        tail_size = _NODE_TAIL.size
        max_length = self.max_length
        nodes = self._nodes
        acls = self._acls
        tree = self._tree
        start = off
        while True:
            if end - off < 4:
                self._need = 4
                break
            length = unpack_int(buf, off)[0]
            if length < 0 or length > max_length:
                self._length(length, f"path after {self.node_count} nodes")
            at = off + 4 + length
            if end < at:
                self._need = at - off
                break
            try:
                path = str(buf[off + 4:at], "utf-8")
            except UnicodeDecodeError:
                path = self._text(buf, off + 4, at, f"path after {self.node_count} nodes")
            if path == END_OF_NODES:
                if "/" not in nodes:
                    raise JuteDecodeError("the nodes ended before the root came")
                self._step = self._signature
                return at
            if end - at < 4:
                self._need = at + 4 - off
                break
            data_length = unpack_int(buf, at)[0]
            if data_length != -1 and (data_length < 0 or data_length > max_length):
                self._length(data_length, f"data of {path!r}")
            data_at = at + 4
            tail_at = data_at + data_length if data_length > 0 else data_at
            if end - tail_at < tail_size:
                self._need = tail_at + tail_size - off
                break
            if path and path[0] == "/" and path[-1] != "/" and path not in nodes:
                cut = path.rfind("/")
                parent = nodes.get(path[:cut] if cut else "/")
                if parent is None:
                    raise JuteDecodeError(
                        f"the parent {path[:cut] or '/'!r} of {path!r} has not come before it"
                        + ("" if nodes else " (the root must come first)"))
            elif not path:
                if nodes:
                    raise JuteDecodeError("a second root node")
                path, parent, cut = "/", None, 0
            else:
                raise JuteDecodeError(f"path {path!r} repeated" if path in nodes
                                      else f"bad path {path!r}")
            if self.node_count >= self.max_nodes:
                raise JuteDecodeError(f"more than {self.max_nodes} nodes")
            (acl_index, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner,
             pzxid) = unpack_tail(buf, tail_at)
            acl = acls.get(acl_index)
            if acl is None:
                if acl_index != OPEN_ACL_INDEX:
                    raise JuteDecodeError(f"{path!r}: ACL index {acl_index} is not in the "
                                          "ACL cache")
                acl = self._open_acl
            node = Node(None if data_length == -1 else bytes(buf[data_at:tail_at]), acl,
                        czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid)
            nodes[path] = node
            if parent is not None:
                children = parent.children
                if children is None:
                    parent.children = {path[cut + 1:]}
                else:
                    children.add(path[cut + 1:])
            if owner:
                tree.index_owner(path, owner)
            self.node_count += 1
            off = tail_at + tail_size
        return off if off > start else -1

    def _signature(self, buf, off: int, end: int) -> int:
        if end - off < 4:
            self._need = 4
            return -1
        length = INT.unpack_from(buf, off)[0]
        if length != len(SIGNATURE):
            raise JuteDecodeError(f"missing signature: a string of length {length} where "
                                  f"{SIGNATURE.decode()!r} belongs")
        stop = off + 4 + length
        if end < stop:
            self._need = stop - off
            return -1
        got = bytes(buf[off + 4:stop])
        if got != SIGNATURE:
            raise JuteDecodeError(f"missing signature: got {got!r}, not {SIGNATURE!r}")
        self._tree.last_zxid = self.zxid
        self._done = True
        return stop
