"""Start-up: load the newest snapshot, replay the log after it, report progress."""

from __future__ import annotations

from typing import Callable

import structlog

log = structlog.get_logger("zkpy.recovery")


def restore(core, txn_log, now_ms: int, progress: Callable[[str, int], None] | None = None) -> dict:
    """Rebuild ``core``'s tree and sessions from ``txn_log``; returns what was restored."""
    snapshots = txn_log.snapshots()
    snapshot_zxid = 0
    node_count = 0
    if snapshots:
        meta = snapshots[0]
        snapshot_zxid = meta["zxid"]
        node_count, sessions = txn_log.load_snapshot(
            meta, core.tree, progress and (lambda count: progress("snapshot", count)))
        for session in sessions:
            core.sessions.add(session.session_id, session.timeout_ms, now_ms)
        log.info("snapshot loaded", zxid=hex(snapshot_zxid), nodes=node_count,
                 sessions=len(sessions))
    replayed = 0
    replay = core.replay_encoded
    for encoded in txn_log.encoded_txns_after(snapshot_zxid):
        replay(encoded, now_ms)
        replayed += 1
        if progress and replayed % 100_000 == 0:
            progress("log", replayed)
    core.restored(now_ms)
    log.info("restored", zxid=hex(core.tree.last_zxid), snapshot_zxid=hex(snapshot_zxid),
             txns_replayed=replayed, sessions=len(core.sessions.sessions))
    return {"snapshot_zxid": snapshot_zxid, "nodes": node_count, "replayed": replayed}
