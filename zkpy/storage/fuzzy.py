"""A fuzzy snapshot encoder: the tree is encoded a slice at a time while txns keep applying.

What it produces is a snapshot "as of" the zxid applied when it began: nodes encoded before a
later change show the old state, nodes encoded after show the new one. Recovery makes it
exact by replaying the log from that zxid with ``DataTree.apply_replayed``, which skips what
the snapshot already holds. Parents are always encoded before their children.
"""

from __future__ import annotations

from zkpy.storage.records import encode_node
from zkpy.tree.datatree import DataTree
from zkpy.tree.paths import join as join_path

CHUNK_BYTES = 1 << 20  # RocksDB value size of one snapshot chunk


class FuzzySnapshot:
    def __init__(self, tree: DataTree) -> None:
        self.tree = tree
        self.start_zxid = tree.last_zxid
        self.chunks: list[bytes] = []
        self.node_count = 0
        self._parts: list[bytes] = []
        self._size = 0
        self._stack = ["/"]

    @property
    def done(self) -> bool:
        return not self._stack

    def step(self, max_nodes: int) -> bool:
        """Encode up to ``max_nodes`` more nodes; True once the whole tree is encoded."""
        nodes = self.tree.nodes
        stack = self._stack
        parts = self._parts
        budget = max_nodes
        while stack and budget:
            path = stack.pop()
            node = nodes.get(path)
            if node is None:
                continue  # deleted since its parent was encoded: the log replays that
            item = encode_node(path, node)
            parts.append(item)
            self._size += len(item)
            self.node_count += 1
            budget -= 1
            if node.children:
                stack.extend(join_path(path, name) for name in list(node.children))
            if self._size >= CHUNK_BYTES:
                self._flush_chunk()
                parts = self._parts  # the chunk was handed over: keep filling the new list
        if not stack:
            self._flush_chunk()
        return not stack

    def _flush_chunk(self) -> None:
        if self._parts:
            self.chunks.append(b"".join(self._parts))
            self._parts, self._size = [], 0
