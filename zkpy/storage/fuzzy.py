"""A fuzzy snapshot encoder: the tree is encoded a slice at a time while txns keep applying.

What it produces is a snapshot "as of" the zxid applied when it began: nodes encoded before a
later change show the old state, nodes encoded after show the new one. Recovery makes it
exact by replaying the log from that zxid with ``DataTree.apply_replayed``, which skips what
the snapshot already holds. Parents are always encoded before their children.

Chunks are in format 2 (``zkpy.storage.snapcodec``): the walk takes a parent off its stack
and encodes its children together (in pieces of at most ``GROUP_PIECE_NODES``, so a step keeps
to its budget and a chunk to about ``CHUNK_BYTES``); children that have children of their own
go on the stack. A child deleted since its parent's names were taken is left out (the log
replays that).
"""

from __future__ import annotations

from itertools import compress
from operator import attrgetter

from zkpy.storage.snapcodec import ChunkEncoder, full_paths
from zkpy.tree.datatree import DataTree

CHUNK_BYTES = 1 << 20  # RocksDB value size of one snapshot chunk (about)
GROUP_PIECE_NODES = 4096  # siblings encoded in one go

_children_of = attrgetter("children")


class FuzzySnapshot:
    def __init__(self, tree: DataTree) -> None:
        self.tree = tree
        self.start_zxid = tree.last_zxid
        self.chunks: list[bytes] = []
        self.node_count = 0
        self._encoder = ChunkEncoder()
        self._stack: list[str] = []
        self._root_pending = True
        self._parent = ""  # the parent whose children are being encoded
        self._names: list[str] = []  # its children's names, taken when it came off the stack
        self._next = 0  # how many of them are encoded

    @property
    def done(self) -> bool:
        return not (self._root_pending or self._stack or self._next < len(self._names))

    def step(self, max_nodes: int) -> bool:
        """Encode up to about ``max_nodes`` more nodes; True once the whole tree is encoded."""
        budget = max_nodes
        if self._root_pending:
            self._root_pending = False
            self._encode_group("", ["/"])  # "" : the names are absolute paths
            budget -= 1
        while budget > 0 and (self._next < len(self._names) or self._take_parent()):
            piece = self._names[self._next:self._next + min(budget, GROUP_PIECE_NODES)]
            self._next += len(piece)
            budget -= len(piece)
            self._encode_group(self._parent, piece)
        if self.done:
            self._flush_chunk()
        return self.done

    def _take_parent(self) -> bool:
        """Pop the next parent that still has children; False when the stack is empty."""
        nodes = self.tree.nodes
        while self._stack:
            path = self._stack.pop()
            node = nodes.get(path)
            if node is not None and node.children:  # else deleted since: the log replays that
                self._parent, self._names, self._next = path, list(node.children), 0
                return True
        return False

    def _encode_group(self, parent_path: str, names: list[str]) -> None:
        paths = full_paths(parent_path, names)
        children = list(map(self.tree.nodes.get, paths))
        if None in children:  # deleted since the names were taken
            kept = [index for index, node in enumerate(children) if node is not None]
            paths = [paths[index] for index in kept]
            children = [children[index] for index in kept]
        if not children:
            return
        self._encoder.add(paths, children)
        self.node_count += len(children)
        self._stack.extend(compress(paths, map(_children_of, children)))
        if self._encoder.size_bytes >= CHUNK_BYTES:
            self._flush_chunk()

    def _flush_chunk(self) -> None:
        if self._encoder.node_count:
            self.chunks.append(self._encoder.finish())
            self._encoder = ChunkEncoder()
