"""Snapshot chunks, format 2: znodes stored as columns.

Format 1 stored one SnapshotNode record per znode, so encoding and loading a million znodes
cost a million record encodes/decodes, ACL lists included. Format 2 stores a chunk as columns
that the C parts of Python handle in bulk: the absolute paths of all the chunk's znodes in one
string, the Stat numbers in one int64 array, the data lengths in an int32 array beside one
blob, and per znode an index into the chunk's table of distinct ACL lists (most znodes share
one). Loading splits paths into parent and name in bulk and links each run of siblings to
its parent with one set update. Parents come before their children (a run whose parent is
missing is held back until the end, then is an error).

Chunk layout (integers little-endian):
    header: magic b"ZS2\0", then u32 node count, ACL-list count, then the byte length of
    each of the 6 sections, as u32;
    sections: 0 paths (UTF-8, joined by NUL), 1 Stat numbers (int64, 9 per node, in
    ``STAT_FIELDS`` order), 2 data lengths (int32, -1 for null data), 3 the data, back to
    back, 4 ACL-list index per node (int32), 5 the ACL lists (Jute vector<ACL>, back to back).
Paths cannot contain NUL: ZooKeeper paths never do (validated when a znode is created).
"""

from __future__ import annotations

import struct
import sys
from array import array
from itertools import accumulate, chain, groupby, repeat
from operator import attrgetter, itemgetter
from typing import Iterator, NamedTuple

from jute import records as wire
from zkpy.storage.records import SnapshotNode
from zkpy.tree.datatree import DataTree, Node
from zkpy.tree.txncodec import encode_acl_vector

FORMAT = 2
MAGIC = b"ZS2\0"
STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
               "ephemeral_owner", "pzxid")
_STAT_WIDTH = len(STAT_FIELDS)
_HEADER = struct.Struct("<4s2I6I")
_COUNT = struct.Struct(">i")
_NODE_OVERHEAD_BYTES = 100  # path, Stat, length and ACL index: what a chunk's size counts
_SWAP = sys.byteorder != "little"  # arrays are stored little-endian

_stat_of = attrgetter(*STAT_FIELDS)
_data_of = attrgetter("data")
_acl_of = attrgetter("acl")


class ChunkCorrupt(ValueError):
    """A format-2 chunk whose sections do not agree with each other."""


class ChunkEncoder:
    """Collects znodes for one chunk; ``finish`` gives its bytes."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.stats = array("q")
        self.datas: list = []
        self.acls: list = []
        self.size_bytes = 0

    @property
    def node_count(self) -> int:
        return len(self.paths)

    def add(self, paths: list[str], nodes: list[Node]) -> None:
        """Znodes and their absolute paths, parents first."""
        datas = list(map(_data_of, nodes))
        self.paths.extend(paths)
        self.stats.extend(chain.from_iterable(map(_stat_of, nodes)))
        self.datas.extend(datas)
        self.acls.extend(map(_acl_of, nodes))
        self.size_bytes += _NODE_OVERHEAD_BYTES * len(nodes) + sum(map(len, filter(None, datas)))

    def finish(self) -> bytes:
        lengths, data_blob = _data_columns(self.datas)
        indices, acl_count, acl_table = _acl_columns(self.acls)
        stats = self.stats
        if _SWAP:
            stats = array("q", stats)
            for column in (stats, lengths, indices):
                column.byteswap()
        sections = (_joined(self.paths), stats.tobytes(), lengths.tobytes(), data_blob,
                    indices.tobytes(), acl_table)
        header = _HEADER.pack(MAGIC, len(self.paths), acl_count, *map(len, sections))
        return b"".join((header, *sections))


def encode_in_order(nodes: dict, chunk_bytes: int, piece_nodes: int = 4096) -> Iterator[bytes]:
    """Chunks of a tree that does not change while they are encoded (a forked child's copy),
    in the order of ``nodes``: a DataTree's dict holds every parent before its children (a
    node is inserted after its parent and a parent cannot be removed while it has children),
    so no walk, and no lookup per node, is needed."""
    paths = list(nodes)
    values = list(nodes.values())
    encoder = ChunkEncoder()
    for start in range(0, len(paths), piece_nodes):
        encoder.add(paths[start:start + piece_nodes], values[start:start + piece_nodes])
        if encoder.size_bytes >= chunk_bytes:
            yield encoder.finish()
            encoder = ChunkEncoder()
    if encoder.node_count:
        yield encoder.finish()


def full_paths(parent_path: str, names: list[str]) -> list[str]:
    """Absolute paths of ``names`` under ``parent_path`` ("": the names are absolute)."""
    if not parent_path:
        return names
    prefix = "/" if parent_path == "/" else parent_path + "/"
    return [prefix + name for name in names]


def _joined(strings: list[str]) -> bytes:
    text = "\0".join(strings)
    if text.count("\0") != max(len(strings) - 1, 0):
        raise ValueError("a znode name contains NUL")  # never: paths are validated at create
    return text.encode()


def _data_columns(datas: list) -> tuple[array, bytes]:
    try:
        lengths = array("i", map(len, datas))
    except TypeError:  # some null data: -1, as Jute writes a null buffer
        lengths = array("i", [-1 if data is None else len(data) for data in datas])
    return lengths, b"".join(filter(None, datas))


def _acl_columns(acls: list) -> tuple[array, int, bytes]:
    """Per node an index into the chunk's distinct ACL lists (told apart by identity: the
    tree interns them, so equal lists are nearly always one object)."""
    ids = list(map(id, acls))
    first_of = dict(zip(ids, acls))
    index_of = {key: index for index, key in enumerate(first_of)}
    indices = array("i", map(index_of.__getitem__, ids))
    table = b"".join(map(encode_acl_vector, first_of.values()))
    return indices, len(first_of), table


# -- reading -----------------------------------------------------------------------------------


class Chunk(NamedTuple):
    """A format-2 chunk's columns, checked against each other."""

    paths: list[str]
    stats: array
    datas: list
    acl_indices: array
    acl_lists: list[tuple]


def decode_chunk(buf: bytes) -> Chunk:
    if len(buf) < _HEADER.size:
        raise ChunkCorrupt("chunk shorter than its header")
    magic, node_count, acl_count, *sizes = _HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ChunkCorrupt(f"not a format-{FORMAT} snapshot chunk")
    if _HEADER.size + sum(sizes) != len(buf):
        raise ChunkCorrupt("section lengths do not add up to the chunk")
    sections = []
    offset = _HEADER.size
    for size in sizes:
        sections.append(buf[offset:offset + size])
        offset += size
    paths = _split(sections[0], node_count)
    stats = _int_array("q", sections[1], node_count * _STAT_WIDTH)
    lengths = _int_array("i", sections[2], node_count)
    indices = _int_array("i", sections[4], node_count)
    acl_lists = _decode_acl_lists(sections[5], acl_count)
    if node_count and (min(indices) < 0 or max(indices) >= acl_count):
        raise ChunkCorrupt("ACL index out of range")
    return Chunk(paths, stats, _split_data(lengths, sections[3]), indices, acl_lists)


def _split(blob: bytes, count: int) -> list[str]:
    try:
        items = blob.decode().split("\0") if count else []
    except UnicodeDecodeError as error:
        raise ChunkCorrupt("invalid UTF-8 in a path") from error
    if len(items) != count:
        raise ChunkCorrupt(f"{len(items)} paths where {count} were declared")
    return items


def _int_array(typecode: str, blob: bytes, count: int) -> array:
    values = array(typecode)
    if len(blob) != count * values.itemsize:
        raise ChunkCorrupt(f"column of {len(blob)} bytes for {count} values")
    values.frombytes(blob)
    if _SWAP:
        values.byteswap()
    return values


def _split_data(lengths: array, blob: bytes) -> list:
    if min(lengths, default=0) >= 0:
        ends = list(accumulate(lengths, initial=0))
        if ends[-1] != len(blob):
            raise ChunkCorrupt("data lengths do not add up to the data section")
        return list(map(blob.__getitem__, map(slice, ends, ends[1:])))
    datas = []
    offset = 0
    for length in lengths:
        if length < 0:
            datas.append(None)
            continue
        datas.append(blob[offset:offset + length])
        offset += length
    if offset != len(blob) or min(lengths) < -1:
        raise ChunkCorrupt("data lengths do not add up to the data section")
    return datas


def _decode_acl_lists(blob: bytes, count: int) -> list[tuple]:
    lists = []
    offset = 0
    for _ in range(count):
        if offset + _COUNT.size > len(blob):
            raise ChunkCorrupt("ACL table cut short")
        (size,) = _COUNT.unpack_from(blob, offset)
        offset += _COUNT.size
        if size < 0 or size > len(blob) - offset:
            raise ChunkCorrupt("bad ACL list length")
        acl = []
        for _ in range(size):
            entry, offset = wire.ACL.decode_from(blob, offset)
            acl.append(entry)
        lists.append(tuple(acl))
    if offset != len(blob):
        raise ChunkCorrupt("bytes after the ACL table")
    return lists


def _columns(stats: array) -> list[array]:
    return [stats[index::_STAT_WIDTH] for index in range(_STAT_WIDTH)]


def chunk_nodes(chunk: Chunk, intern_acl=tuple) -> list[Node]:
    """The chunk's znodes, in order, as tree nodes (no children yet)."""
    acls = [intern_acl(acl) for acl in chunk.acl_lists]
    return list(map(Node, chunk.datas, map(acls.__getitem__, chunk.acl_indices),
                    *_columns(chunk.stats)))


_parent_key = itemgetter(0)
_name_of = itemgetter(2)


class TreeLoader:
    """Adds format-2 chunks to a tree (cleared by the caller). Siblings are linked to their
    parent a run at a time; a run whose parent has not come yet waits for ``finish``."""

    def __init__(self, tree: DataTree) -> None:
        self.tree = tree
        self.node_count = 0
        self._waiting: list[tuple[str, list[str]]] = []

    def load_chunk(self, buf: bytes) -> int:
        chunk = decode_chunk(buf)
        nodes = chunk_nodes(chunk, self.tree.intern_acl)
        paths = chunk.paths
        self.tree.nodes.update(zip(paths, nodes))
        self._link(paths)
        if any(chunk.stats[7::_STAT_WIDTH]):
            self._index_owners(paths, nodes)
        self.node_count += len(nodes)
        return len(nodes)

    def _link(self, paths: list[str]) -> None:
        tree_nodes = self.tree.nodes
        for parent_key, run in groupby(map(str.rpartition, paths, repeat("/")), _parent_key):
            names = list(map(_name_of, run))
            parent_path = parent_key or "/"
            if not parent_key and "" in names:
                names.remove("")  # the root itself, which has no parent
                if not names:
                    continue
            parent = tree_nodes.get(parent_path)
            if parent is None:
                self._waiting.append((parent_path, names))
            elif parent.children is None:
                parent.children = set(names)
            else:
                parent.children.update(names)

    def _index_owners(self, paths: list[str], nodes: list[Node]) -> None:
        for path, node in zip(paths, nodes):
            if node.ephemeral_owner:
                self.tree.index_owner(path, node.ephemeral_owner)

    def finish(self) -> None:
        """Link the runs that came before their parent; a parent still missing means the
        snapshot is corrupt."""
        tree_nodes = self.tree.nodes
        for parent_path, names in self._waiting:
            parent = tree_nodes.get(parent_path)
            if parent is None:
                raise ChunkCorrupt(f"snapshot holds children of {parent_path!r} but not it")
            if parent.children is None:
                parent.children = set()
            parent.children.update(names)
        self._waiting.clear()


def iter_records(buf: bytes) -> Iterator:
    """A format-2 chunk as SnapshotNode records (for the dump tools)."""

    chunk = decode_chunk(buf)
    acl_lists = [list(acl) for acl in chunk.acl_lists]
    stats = _columns(chunk.stats)
    for index, path in enumerate(chunk.paths):
        stat = wire.StatPersisted(*(column[index] for column in stats))
        yield SnapshotNode(path, chunk.datas[index], acl_lists[chunk.acl_indices[index]], stat)
