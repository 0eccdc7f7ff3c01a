"""How the server tunes the interpreter: the cyclic garbage collector and thread switching.

Thread switching: the event loop thread does nearly all the work; a worker thread writes and
fsyncs the log. When that fsync returns, the worker needs the GIL for a moment to hand the
batch back, and with CPython's default switch interval it waits up to 5 ms for a busy loop
thread to let go, which delays every reply of the batch. A 0.5 ms interval lets the durable
batch through at once (measured with the fsync outside the GIL, TxnLog.write_synced: setData
32x16 61k ops/s with the default interval, 91k with 0.5 ms; at 1x1 3.1k and 4.2k).

The garbage collector:

Reference counting frees almost everything the server drops: znodes, requests and replies hold
no reference cycles. The cyclic collector is still needed for the few cycles asyncio and
exceptions make, but its default policy costs a server with a large tree dearly: a full
collection walks every tracked object, and with CPython's defaults one runs each time the heap
has grown by a quarter, so a tree that grows under a write load is walked again and again (in
a create benchmark, 24 full collections took 1.6 s of 8 s). The policy here:

* the young generation is collected every 50,000 allocations instead of 700, so a burst of
  requests is not interrupted by collections of objects that die a moment later anyway;
* the tree loaded at start-up, and everything alive after each snapshot, is moved out of the
  collector's sight (``gc.freeze``): those objects are still freed by reference counting when
  they go, the collector just never walks them again. The cycles that do occur are short-lived
  and found by the young collections long before a freeze.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from typing import Iterator

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100
SWITCH_INTERVAL_S = 0.0005


def configure() -> None:
    """The server's settings; called once before anything is loaded."""
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No collection while a tree is built in bulk (restore): the millions of new objects
    would otherwise trigger collections that find nothing to free."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def settle() -> None:
    """Collect what is garbage now, then freeze what survives (after a restore, a snapshot or
    an installed SNAP), so later collections walk only what is newer."""
    gc.collect()
    gc.freeze()
