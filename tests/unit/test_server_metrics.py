"""The status model mntr and /metrics render (zkpy.runtime.server_metrics), without a server
process: summaries, the log's report of each synced batch, and mntr's flattening of the
summaries."""

from __future__ import annotations

from zkpy.runtime import fourletter
from zkpy.runtime.server_metrics import ServerMetrics, Summary


def test_a_summary_counts_sums_and_bounds_what_it_observes():
    summary = Summary(window=3)
    assert summary.read().average() == 0.0 and summary.read().quantile(0.5) == 0.0
    for value in (4.0, 1.0, 7.0, 2.0):
        summary.observe(value)
    values = summary.read()
    assert (values.count, values.total, values.minimum, values.maximum) == (4, 14.0, 1.0, 7.0)
    assert values.average() == 3.5
    assert values.recent == (1.0, 7.0, 2.0)  # the window keeps the last three
    assert values.quantile(0.5) == 2.0
    summary.reset()
    assert summary.read() == (0, 0.0, 0.0, 0.0, ())


def test_the_log_reports_each_synced_batch(tmp_path):
    from jute import records as r
    from zkpy.storage.txnlog import TxnLog

    metrics = ServerMetrics()
    txn_log = TxnLog(tmp_path / "db")
    txn_log.on_synced = metrics.log_synced
    create = r.CreateTxn("/a", b"", [], False, 1)
    txn_log.append([(r.TxnHeader(1, 1, zxid, 0, 1), create) for zxid in (1, 2)])
    txn_log.append([(r.TxnHeader(1, 2, 3, 0, 1), create)])
    assert metrics.fsync_time_ms.read().count == 2
    assert metrics.fsync_time_ms.read().minimum > 0.0
    assert metrics.log_batch_size.read()[:4] == (2, 3.0, 1.0, 2.0)
    txn_log.close()


def test_mntr_flattens_each_summary_as_zookeeper_does():
    metrics = ServerMetrics()
    for value in (0.4, 2.6, 1.0):
        metrics.fsync_time_ms.observe(value)
    metrics.snapshot_time_ms.observe(12.25)
    metrics.log_batch_size.observe(3)
    rows = dict(fourletter.summary_values(metrics))
    assert [name for name, _ in fourletter.summary_values(metrics)][:5] == [
        "avg_fsynctime", "min_fsynctime", "max_fsynctime", "cnt_fsynctime", "sum_fsynctime"]
    # avg is a double to four places; min, max and sum are whole milliseconds, cnt a count.
    assert rows["avg_fsynctime"] == 1.3333
    assert (rows["min_fsynctime"], rows["max_fsynctime"], rows["cnt_fsynctime"],
            rows["sum_fsynctime"]) == (0, 3, 3, 4)
    assert (rows["cnt_snapshottime"], rows["sum_snapshottime"]) == (1, 12)
    assert (rows["avg_sync_processor_batch_size"], rows["sum_sync_processor_batch_size"]) == (3.0, 3)
    # In ZooKeeper 3.8's mntr order: fsynctime, snapshottime, sync_processor_batch_size.
    names = [name for name, _ in metrics.summaries()]
    assert names == ["fsynctime", "snapshottime", "sync_processor_batch_size"]
