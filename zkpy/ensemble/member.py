"""Opening an ensemble member on its storage: the same steps for the runtime and the simulator.

The caller has restored the replica core from the same storage (``zkpy.storage.recovery``);
the peer then starts from what that storage holds durably: its epochs, the newest snapshot's
zxid (the floor below which it cannot send a DIFF) and the zxids logged after it.
"""

from __future__ import annotations

from zkpy.ensemble.node import EnsembleNode
from zkpy.ensemble.storage import Storage
from zkpy.replica.core import ReplicaCore
from zkpy.zab.peer import PeerSettings, ZabPeer


def open_member(settings: PeerSettings, core: ReplicaCore, storage: Storage, now_ms: int,
                **node_options) -> EnsembleNode:
    """The member of ``settings.my_id`` over a restored ``core`` and its ``storage``.
    ``node_options`` go to EnsembleNode (read-only mode, membership, its callback)."""
    accepted_epoch, current_epoch = storage.epochs()
    floor = storage.floor_zxid()
    peer = ZabPeer(settings, accepted_epoch, current_epoch, storage.logged_zxids(floor), floor,
                   core.tree.last_zxid, now_ms)
    return EnsembleNode(peer, core, storage, **node_options)
