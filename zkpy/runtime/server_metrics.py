"""The server's measurements of its own work: the status model mntr and /metrics render.

``Server.metrics`` is a ``ServerMetrics``, a plain object of summaries that the runtime updates
where the work is done:

* ``fsync_time_ms``: one observation per batch of txns written and synced to the log (the group
  commit's write and fdatasync, standalone and ensemble alike), reported by ``TxnLog.append``
  through its ``on_synced`` callback; ZooKeeper's ``fsynctime``, which FileTxnLog.commit adds
  once per flushed batch;
* ``log_batch_size``: the txns in that batch; ZooKeeper's ``sync_processor_batch_size``;
* ``snapshot_time_ms``: one per snapshot the server takes and commits (``Server._snapshot``,
  from its start to the commit of its file, forked or fuzzy); ZooKeeper's ``snapshottime``.

The four-letter word mntr (``zkpy.runtime.fourletter``), the AdminServer's monitor command and
the Prometheus endpoint (``zkpy.runtime.metrics``) all read these objects; none of them parses
another's text.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import NamedTuple

RECENT_WINDOW = 1024  # observations kept for quantiles (Prometheus's {quantile="0.5"})


class SummaryValues(NamedTuple):
    """A consistent reading of a ``Summary``."""
    count: int
    total: float
    minimum: float
    maximum: float
    recent: tuple

    def average(self) -> float:
        return self.total / self.count if self.count else 0.0

    def quantile(self, fraction: float) -> float:
        """The ``fraction`` quantile of the recent observations (0 before the first)."""
        if not self.recent:
            return 0.0
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Summary:
    """Count, sum, minimum and maximum of every observation (ZooKeeper's AvgMinMaxCounter, what
    mntr prints) and the last ``RECENT_WINDOW`` observations (for quantiles). Observations come
    from worker threads and readings from the event loop, so both hold a lock: a reading never
    sees a count without its sum."""

    def __init__(self, window: int = RECENT_WINDOW) -> None:
        self._lock = threading.Lock()
        self._recent: deque[float] = deque(maxlen=window)
        self._count = 0
        self._total = 0.0
        self._minimum = 0.0
        self._maximum = 0.0

    def observe(self, value: float) -> None:
        with self._lock:
            if self._count == 0 or value < self._minimum:
                self._minimum = value
            if self._count == 0 or value > self._maximum:
                self._maximum = value
            self._count += 1
            self._total += value
            self._recent.append(value)

    def reset(self) -> None:
        with self._lock:
            self._recent.clear()
            self._count = 0
            self._total = self._minimum = self._maximum = 0.0

    def read(self) -> SummaryValues:
        with self._lock:
            return SummaryValues(self._count, self._total, self._minimum, self._maximum,
                                 tuple(self._recent))


class ServerMetrics:
    """The summaries of one server's work (see the module docstring)."""

    def __init__(self) -> None:
        self.fsync_time_ms = Summary()
        self.log_batch_size = Summary()
        self.snapshot_time_ms = Summary()

    def log_synced(self, elapsed_ms: float, txn_count: int) -> None:
        """One batch of ``txn_count`` txns written and synced in ``elapsed_ms`` (any thread)."""
        self.fsync_time_ms.observe(elapsed_ms)
        self.log_batch_size.observe(txn_count)

    def reset(self) -> None:
        """Forget every observation, as ZooKeeper's srst resets all its metrics."""
        for _, summary in self.summaries():
            summary.reset()

    def summaries(self) -> list[tuple[str, Summary]]:
        """Each summary under ZooKeeper's metric name, in the order ZooKeeper 3.8's mntr prints
        them (it lists its metrics in a fixed hash order, which the compatibility suite checks)."""
        return [("fsynctime", self.fsync_time_ms),
                ("snapshottime", self.snapshot_time_ms),
                ("sync_processor_batch_size", self.log_batch_size)]
