"""zkpy against the reference ZooKeeper, side by side: ``make bench``.

1. The codec micro-benchmark (``benchmarks.codec``).
2. For each workload (get, set, create ephemeral+sequential, mix 90% get / 10% set) and each
   shape (1 session x depth 1, 32 sessions x depth 16), ``BENCH_REPEATS`` runs on each server.
   Every run gets a freshly started standalone server with its own data directory and the
   default settings (fsync on), and only that server runs; the two servers alternate run by
   run (ZooKeeper first on even repeats, zkpy first on odd ones, so a drift of the machine
   affects both alike).
3. The same workloads on 3-node ensembles (``tests.support.servers.ensemble``: loopback, each
   member its own data directory, default sync settings), 32 sessions x depth 16 spread
   round-robin over the three members (``--hosts a,b,c`` of the load generator): a fresh
   ensemble per run, the kinds alternating run by run. Server CPU is the members' sum. Beside
   the pure ensembles run the mixed ones (issue 15: a zkpy member in a ZooKeeper 3.8
   ensemble): ``mixedjava`` is two Java members and one zkpy, ``mixedzkpy`` one Java and two
   zkpy; the leader is whichever the election picks, and the table says which kind it was.
4. Leader failover (``benchmarks.failover``): on a fresh ensemble, writers write continuously
   through the connect string of all three members; the leader is SIGKILLed, and the time from
   the kill to a new leader, to the first successful write of the existing sessions (one that
   was on the leader, one that was on a follower) and to the first successful write on a new
   session is measured. Kinds alternate trial by trial.
5. Scaling (``benchmarks.scaling``; ``BENCH_SCALING=0`` skips it): 1000 sessions x depth 1;
   10 to 10,000 idle sessions pinging (server CPU and RSS); a million znodes (RSS, snapshot
   time, gets during the snapshot, restart times); 100,000 watches fired by one multi; curves
   over the znode, session and watch counts (``scaling_*.png``). Its own variables are
   ``BENCH_SCALING_*`` (see that module; ``BENCH_SCALING_MAX_ZNODES`` caps the znode count).
6. The etcd API against the reference etcd 3.4 (``benchmarks.etcd``; ``BENCH_ETCD=0`` skips
   it): put, range and watch fan-out, one member and three, ``etcd_ops_per_s.png``.
7. Tables of medians (ops/s, p50, p99 and the zkpy/ZooKeeper ratios, with a topology column;
   failover seconds; the scaling tables), written with every run's details to
   ``bench-results/results.json``, ``results.md``, ``ops_per_s.png`` and ``scaling_*.png``.

Environment: ``BENCH_REPEATS`` (default 3), ``BENCH_DURATION_S`` (measured seconds per run,
default 5), ``BENCH_WARMUP_S`` (default 2), ``BENCH_WORKLOADS`` (e.g. ``get,mix``),
``BENCH_SHAPES`` (e.g. ``1x1,32x16``), ``BENCH_KINDS`` (``zookeeper,zkpy``),
``BENCH_VALUE_BYTES`` (default 100), ``BENCH_OUT`` (default ``bench-results``),
``BENCH_TMPDIR`` (where the servers' data directories go), ``BENCH_SKIP_CODEC=1``.
``BENCH_TOPOLOGIES`` (``standalone,3-node``; default both) picks the parts (failover is part of
``3-node``).
The ensemble part: ``BENCH_ENSEMBLE_REPEATS`` (default min(2, BENCH_REPEATS)),
``BENCH_ENSEMBLE_DURATION_S`` (default min(4, BENCH_DURATION_S)), ``BENCH_ENSEMBLE_WARMUP_S``
(default BENCH_WARMUP_S), ``BENCH_ENSEMBLE_WORKLOADS`` (default BENCH_WORKLOADS),
``BENCH_ENSEMBLE_SHAPE`` (default ``32x16``), ``BENCH_ENSEMBLE_KINDS`` (default
BENCH_KINDS, plus ``mixedjava,mixedzkpy`` when BENCH_KINDS holds both servers). Failover: ``BENCH_FAILOVER_REPEATS`` (default
BENCH_REPEATS; 0 skips it), ``BENCH_FAILOVER_WARMUP_S`` (writing before the kill, default 1),
``BENCH_FAILOVER_REQUEST_TIMEOUT_S`` (a write unanswered this long makes a writer move to the
next member, default 2), ``BENCH_FAILOVER_DEADLINE_S`` (default 30).

The defaults take about 17-20 minutes on a 2-core machine (about 7 for the standalone part,
3 for the ensemble part, 1 for failover, 6-8 for scaling).

A zkpy server that does not start, or a run that cannot happen, is recorded as a failure and
the benchmark goes on (after two start failures in a row zkpy's remaining runs are skipped);
for an ensemble the failure keeps the last lines of every member's log.
The load generator is Python on the same 2-core machine as the server: ``client_cpu_util`` in
the results says how close it came to being the bottleneck.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.servers import (ENSEMBLE_KINDS, KINDS, MIXED_KINDS, ServerProcess,
                                    connect_string, ensemble, start_all)

from benchmarks import codec, etcd, failover, loadgen, scaling
from benchmarks.report import (
    PLOT_COLORS, PLOT_LABELS, SHORT_NAMES, fmt, median, pyplot, ratio, render_table,
    short_error,
)
from benchmarks.servers import (find_leader, log_excerpt, member_modes, server_version,
                                stop_all)
from benchmarks.settings import env_float, env_list, parse_shape, shape_label

WORKLOADS = ("get", "set", "create", "mix")
WORKLOAD_LABELS = {"get": "get", "set": "set", "create": "create eph+seq",
                   "mix": "mix 90% get/10% set"}
SHAPES = ((1, 1), (32, 16))
STANDALONE, ENSEMBLE = "standalone", "3-node"
TOPOLOGIES = (STANDALONE, ENSEMBLE)
ENSEMBLE_SHAPE = (32, 16)
FAILOVER_METRICS = (
    ("new_leader_s", "new leader (srvr says Mode: leader)"),
    ("old_session_on_leader_s", "first write, old session that was on the leader"),
    ("old_session_on_follower_s", "first write, old session that was on a follower"),
    ("new_session_s", "first write on a NEW session"),
)
START_FAILURES_BEFORE_SKIP = 2
STALL_NOTE_S = 0.5  # a run in which no reply came for this long gets a note
REPO_ROOT = Path(__file__).resolve().parents[1]


class Progress:
    def __init__(self, total_runs: int, planned_s: float = 0.0) -> None:
        self.started = time.monotonic()
        self.total = total_runs
        self.done = 0
        self.runs_started: float | None = None
        self.planned_s = planned_s  # estimated seconds of all the runs
        self.planned_done_s = 0.0  # estimated seconds of the runs done

    def line(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[bench {elapsed:6.1f}s] {message}", flush=True)

    def finished(self, planned_s: float) -> None:
        self.done += 1
        self.planned_done_s += planned_s

    def eta(self) -> str:
        if not self.done or self.runs_started is None:
            return ""
        elapsed = time.monotonic() - self.runs_started
        if self.planned_s and self.planned_done_s:
            remaining = elapsed / self.planned_done_s * (self.planned_s - self.planned_done_s)
        else:
            remaining = elapsed / self.done * (self.total - self.done)
        return f", ~{remaining:.0f}s left"


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_one(kind: str, workload: str, shape: tuple[int, int], repeat: int, settings: dict,
            tmp_root: Path, versions: dict[str, str | None]) -> dict[str, Any]:
    """Start a fresh server, run the load generator once, stop the server."""
    sessions, depth = shape
    record: dict[str, Any] = {"kind": kind, "topology": STANDALONE, "workload": workload,
                              "shape": shape_label(shape), "repeat": repeat,
                              "loadavg_before": os.getloadavg()}
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-{workload}-{shape_label(shape)}-r{repeat}-",
                                    dir=tmp_root))
    server = ServerProcess(kind, workdir)
    try:
        started = time.monotonic()
        try:
            server.start(timeout_s=30.0 if kind == "zookeeper" else 20.0)
        except Exception as exc:  # noqa: BLE001 - a server that cannot start is a result
            record.update(status="start_failed", error=f"{type(exc).__name__}: {exc}"[:4000])
            return record
        record["start_s"] = time.monotonic() - started
        if versions.get(kind) is None:
            versions[kind] = server_version(server.port)
        try:
            result = loadgen.run(
                server.connect_string, sessions=sessions, depth=depth, workload=workload,
                value_bytes=settings["value_bytes"], duration_s=settings["duration_s"],
                warmup_s=settings["warmup_s"], server_pid=server.process.pid,
                connect_timeout_s=5.0, setup_timeout_s=20.0, drain_timeout_s=10.0,
                timeout_s=settings["warmup_s"] + settings["duration_s"] + 90.0)
        except loadgen.BenchError as exc:
            alive = server.process is not None and server.process.poll() is None
            record.update(status="run_failed", error=str(exc),
                          server_log_tail=None if alive else server.log_tail(20))
            return record
        record.update(status="ok" if result["valid"] else "invalid", result=result)
        if server.process is not None and server.process.poll() is not None:
            record["status"] = "invalid"
            result["invalid_reasons"].append(
                f"server exited with {server.process.returncode} during the run")
        return record
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        record["loadavg_after"] = os.getloadavg()


def run_one_ensemble(kind: str, workload: str, shape: tuple[int, int], repeat: int,
                     settings: dict, tmp_root: Path, versions: dict[str, str | None]
                     ) -> dict[str, Any]:
    """Start a fresh 3-node ensemble, run the load generator once with the sessions spread
    over its members, stop the ensemble."""
    sessions, depth = shape
    record: dict[str, Any] = {"kind": kind, "topology": ENSEMBLE, "workload": workload,
                              "shape": shape_label(shape), "repeat": repeat,
                              "loadavg_before": os.getloadavg()}
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-ens-{workload}-r{repeat}-", dir=tmp_root))
    members = ensemble(kind, workdir)
    try:
        started = time.monotonic()
        try:
            start_all(members, timeout_s=60.0)
            leader = find_leader(members, timeout_s=30.0)
        except Exception as exc:  # noqa: BLE001 - an ensemble that cannot start is a result
            record.update(status="start_failed", error=f"{type(exc).__name__}: {exc}"[:4000],
                          logs=log_excerpt(members))
            return record
        record["start_s"] = time.monotonic() - started
        record["modes_before"] = modes_before = member_modes(members)
        record["leader_myid"] = leader.myid
        record["leader_kind"] = leader.kind
        if kind in versions and versions[kind] is None:
            versions[kind] = server_version(leader.port)
        try:
            result = loadgen.run(
                connect_string(members), sessions=sessions, depth=depth, workload=workload,
                value_bytes=settings["value_bytes"], duration_s=settings["duration_s"],
                warmup_s=settings["warmup_s"],
                server_pids=[m.process.pid for m in members],
                connect_timeout_s=10.0, setup_timeout_s=20.0, drain_timeout_s=10.0,
                timeout_s=settings["warmup_s"] + settings["duration_s"] + 90.0)
        except loadgen.BenchError as exc:
            record.update(status="run_failed", error=str(exc), modes_after=member_modes(members),
                          logs=log_excerpt(members))
            return record
        record.update(status="ok" if result["valid"] else "invalid", result=result)
        record["modes_after"] = modes_after = member_modes(members)
        if modes_after != modes_before:
            record["status"] = "invalid"
            result["valid"] = False
            result["invalid_reasons"].append(
                f"member modes changed during the run: {modes_before} -> {modes_after}")
        if record["status"] != "ok":
            record["logs"] = log_excerpt(members)
        return record
    finally:
        stop_all(members)
        shutil.rmtree(workdir, ignore_errors=True)
        record["loadavg_after"] = os.getloadavg()


def run_failover_trial(kind: str, repeat: int, settings: dict, tmp_root: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-failover-r{repeat}-", dir=tmp_root))
    try:
        record = failover.trial(kind, workdir, warmup_s=settings["warmup_s"],
                                deadline_s=settings["deadline_s"],
                                request_timeout_s=settings["request_timeout_s"],
                                retry_pause_s=settings["retry_pause_s"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    record["repeat"] = repeat
    return record


def summarize(runs: list[dict[str, Any]], cells: list[tuple[str, str, str]],
              kinds_by_topology: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One row per (topology, workload, shape): medians per kind (the kinds that topology ran)
    over the valid runs, and ratios."""
    rows = []
    for topology, workload, shape in cells:
        row: dict[str, Any] = {"topology": topology, "workload": workload, "shape": shape}
        for kind in kinds_by_topology[topology]:
            mine = [r for r in runs if r["kind"] == kind and r["workload"] == workload
                    and r["shape"] == shape
                    and r.get("topology", STANDALONE) == topology]
            valid = [r["result"] for r in mine if r["status"] == "ok"]
            statuses = sorted({r["status"] for r in mine if r["status"] != "ok"})
            row[kind] = {
                "runs": len(mine),
                "valid_runs": len(valid),
                "problems": statuses,
                "ops_per_s": median([v["ops_per_s"] for v in valid]),
                "ops_per_s_all": [v["ops_per_s"] for v in valid],
                "p50_ms": median([v["latency_ms"]["p50"] for v in valid]),
                "p99_ms": median([v["latency_ms"]["p99"] for v in valid]),
                "p999_ms": median([v["latency_ms"]["p999"] for v in valid]),
                "client_cpu_util": median([v["client_cpu_util"] for v in valid]),
                "server_cpu_util": median([v["server_cpu_util"] for v in valid
                                            if v["server_cpu_util"] is not None]),
                "leader_kinds": sorted({r["leader_kind"] for r in mine if r.get("leader_kind")}),
                "longest_stall_s": max([r["result"].get("longest_stall_s") or 0.0
                                        for r in mine if "result" in r], default=None),
                "first_error": next((short_error(r.get("error") or "; ".join(
                    r.get("result", {}).get("invalid_reasons", [])))
                    for r in mine if r["status"] not in ("ok", "skipped")), None),
            }
        zk, zp = row.get("zookeeper"), row.get("zkpy")
        if zk and zp:
            row["ratio"] = {key: ratio(zp[key], zk[key])
                            for key in ("ops_per_s", "p50_ms", "p99_ms")}
        rows.append(row)
    return rows


def summarize_failover(trials: list[dict[str, Any]], kinds: list[str]) -> dict[str, Any]:
    """Medians per kind of each failover timing, over the trials that reached it."""
    summary: dict[str, Any] = {}
    for kind in kinds:
        mine = [t for t in trials if t["kind"] == kind]
        results = [t["result"] for t in mine if "result" in t]
        cell: dict[str, Any] = {
            "trials": len(mine),
            "valid_trials": sum(1 for t in mine if t["status"] == "ok"),
            "problems": sorted({t["status"] for t in mine if t["status"] != "ok"}),
            "first_error": next((short_error(t.get("error") or "; ".join(
                t.get("result", {}).get("invalid_reasons", [])))
                for t in mine if t["status"] not in ("ok", "skipped")), None),
        }
        for key, _ in FAILOVER_METRICS:
            values = [r[key] for r in results if r.get(key) is not None]
            cell[key] = median(values)
            cell[key + "_all"] = values
            cell[key + "_missed"] = len(mine) - len(values)
        summary[kind] = cell
    if "zookeeper" in summary and "zkpy" in summary:
        zk, zp = summary["zookeeper"], summary["zkpy"]
        summary["ratio"] = {key: ratio(zp[key], zk[key]) for key, _ in FAILOVER_METRICS}
    return summary


def failover_table_lines(summary: dict[str, Any], kinds: list[str], markdown: bool
                         ) -> list[str]:
    headers = ["failover (3-node, SIGKILL of the leader), s from the kill"]
    for kind in kinds:
        headers.append(SHORT_NAMES[kind])
    both = "ratio" in summary
    if both:
        headers.append("zkpy/ZK")
    headers.append("notes")
    body = []
    for key, label in FAILOVER_METRICS:
        cells = [label]
        notes = []
        for kind in kinds:
            cell = summary[kind]
            values = cell[key + "_all"]
            cells.append(fmt(cell[key], ".3f", "FAILED" if cell["trials"] else "-"))
            if values and len(values) > 1:
                notes.append(f"{SHORT_NAMES.get(kind, kind)} "
                             f"{min(values):.3f}-{max(values):.3f}")
            if cell[key + "_missed"]:
                notes.append(f"{kind}: not reached in {cell[key + '_missed']}/{cell['trials']}")
        if both:
            cells.append(fmt(summary["ratio"][key], ".2f"))
        cells.append("; ".join(notes))
        body.append(cells)
    return render_table(headers, body, markdown)


def _cell_status(cell: dict[str, Any]) -> str:
    if cell["valid_runs"] == 0:
        if not cell["runs"]:
            return "not run"
        return "FAILED: " + (", ".join(cell["problems"]) or "?")
    if cell["valid_runs"] < cell["runs"]:
        return f"{cell['valid_runs']}/{cell['runs']} valid"
    return ""


def table_lines(rows: list[dict[str, Any]], kinds: list[str], markdown: bool) -> list[str]:
    headers = ["topology", "workload", "shape"]
    for kind in kinds:
        short = SHORT_NAMES[kind]
        headers += [f"{short} ops/s", f"{short} p50 ms", f"{short} p99 ms"]
    both = "zookeeper" in kinds and "zkpy" in kinds
    if both:
        headers += ["zkpy/ZK ops/s", "zkpy/ZK p50", "zkpy/ZK p99"]
    headers.append("notes")
    body = []
    for row in rows:
        cells = [row["topology"], WORKLOAD_LABELS.get(row["workload"], row["workload"]),
                 row["shape"]]
        notes = []
        for kind in kinds:
            cell = row[kind]
            failed = cell["valid_runs"] == 0
            cells += [fmt(cell["ops_per_s"], ",.0f", "FAILED" if failed else "-"),
                      fmt(cell["p50_ms"], ".3f"), fmt(cell["p99_ms"], ".3f")]
            status = _cell_status(cell)
            if status:
                notes.append(f"{kind}: {status}")
            if kind in MIXED_KINDS and cell["leader_kinds"]:
                notes.append(f"{kind} led by {'/'.join(cell['leader_kinds'])}")
            if (cell.get("longest_stall_s") or 0) >= STALL_NOTE_S:
                notes.append(f"{kind}: a stall of {cell['longest_stall_s']:.1f} s with no reply")
        if both:
            ratio = row["ratio"]
            cells += [fmt(ratio["ops_per_s"], ".2f"), fmt(ratio["p50_ms"], ".2f"),
                      fmt(ratio["p99_ms"], ".2f")]
        cells.append("; ".join(notes))
        body.append(cells)
    return render_table(headers, body, markdown, left=(0, 1, 2, -1))


def codec_lines(codec_result: dict[str, Any] | None) -> list[str]:
    if not codec_result:
        return ["(codec benchmark skipped)"]
    return codec.format_text(codec_result).splitlines()


def plot(rows: list[dict[str, Any]], kinds: list[str], path: Path,
         failover_summary: dict[str, Any] | None = None) -> str | None:
    """Bar charts of median ops/s (min-max whiskers), one panel per topology and shape, and one
    of the failover timings; returns None or why it was skipped."""
    try:
        plt = pyplot()
    except ImportError as exc:
        return f"matplotlib is not installed ({exc}); skipping the plot"
    panels: list[tuple[str, str]] = []
    for row in rows:
        if (row["topology"], row["shape"]) not in panels:
            panels.append((row["topology"], row["shape"]))
    with_failover = bool(failover_summary) and any(
        failover_summary.get(kind, {}).get("trials") for kind in kinds)
    count = len(panels) + (1 if with_failover else 0)
    if not count:
        return "nothing to plot"
    ncols = min(2, count)
    nrows = (count + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.5 * nrows), squeeze=False)
    flat = [ax for line in axes for ax in line]

    def bars(panel_kinds: list[str]) -> tuple[float, Any]:
        width = 0.8 / max(1, len(panel_kinds))
        return width, lambda k: (k - (len(panel_kinds) - 1) / 2) * width

    for ax, (topology, shape) in zip(flat, panels):
        panel_rows = [row for row in rows if row["topology"] == topology and row["shape"] == shape]
        labels = [WORKLOAD_LABELS.get(row["workload"], row["workload"]) for row in panel_rows]
        panel_kinds = [kind for kind in kinds if kind in panel_rows[0]]
        width, offset = bars(panel_kinds)
        for k, kind in enumerate(panel_kinds):
            xs, heights, low, high = [], [], [], []
            for i, row in enumerate(panel_rows):
                cell = row[kind]
                x = i + offset(k)
                median = cell["ops_per_s"] or 0.0
                values = cell["ops_per_s_all"] or [0.0]
                xs.append(x)
                heights.append(median)
                low.append(median - min(values))
                high.append(max(values) - median)
                if cell["valid_runs"] == 0:
                    ax.text(x, 0, "failed" if cell["runs"] else "not run", rotation=90,
                            ha="center", va="bottom", fontsize=8,
                            color=PLOT_COLORS.get(kind, "black"))
            ax.bar(xs, heights, width, yerr=[low, high], capsize=3,
                   label=PLOT_LABELS.get(kind, kind), color=PLOT_COLORS.get(kind))
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=15, fontsize=8)
        ax.set_ylabel("ops/s (median, min-max)")
        where = "standalone" if topology == STANDALONE else "3-node ensemble, sessions on all members"
        ax.set_title(f"{where}: {shape} (sessions x depth)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.2)
        ax.legend(fontsize=8, loc="upper right")
    if with_failover:
        ax = flat[len(panels)]
        labels = ["new leader", "old session\n(was on leader)", "old session\n(was on follower)",
                  "new session"]
        failover_kinds = [kind for kind in kinds if failover_summary.get(kind)]
        width, offset = bars(failover_kinds)
        for k, kind in enumerate(failover_kinds):
            cell = failover_summary[kind]
            xs, heights, low, high = [], [], [], []
            for i, (key, _) in enumerate(FAILOVER_METRICS):
                median = cell[key] or 0.0
                values = cell[key + "_all"] or [0.0]
                xs.append(i + offset(k))
                heights.append(median)
                low.append(median - min(values))
                high.append(max(values) - median)
                if cell[key] is None and cell["trials"]:
                    ax.text(i + offset(k), 0, "not reached", rotation=90, ha="center",
                            va="bottom", fontsize=8, color=PLOT_COLORS.get(kind, "black"))
            ax.bar(xs, heights, width, yerr=[low, high], capsize=3,
                   label=PLOT_LABELS.get(kind, kind), color=PLOT_COLORS.get(kind))
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("seconds from SIGKILL of the leader\n(median, min-max)")
        ax.set_title("3-node ensemble: leader failover (lower is better)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.2)
        ax.legend(fontsize=8, loc="upper right")
    for ax in flat[count:]:
        ax.axis("off")
    fig.suptitle("zkpy vs ZooKeeper: throughput and failover (mixed: Java and zkpy members "
                 "in one ensemble)" if any(kind in MIXED_KINDS for kind in kinds)
                 else "zkpy vs ZooKeeper: throughput and failover")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write_markdown(path: Path, report: dict[str, Any], rows, kinds, ens_kinds) -> None:
    meta = report["meta"]
    ens = meta.get("ensemble") or {}
    fo = meta.get("failover") or {}
    lines = [
        "# zkpy vs ZooKeeper benchmark",
        "",
        f"- date: {meta['date']}; zkpy commit: {meta['git_commit']}",
        f"- machine: {meta['cpu_count']} CPUs, {meta['platform']}, Python {meta['python']}",
        "- servers: " + ", ".join(f"{k} {v or '(did not start)'}"
                                  for k, v in meta["server_versions"].items()),
        f"- load average before: {meta['loadavg_before']}, after: {meta['loadavg_after']} "
        f"(median 1-min load average at the start of a run: {meta.get('run_loadavg_median')})",
        f"- standalone: {meta['repeats']} runs per cell and server, {meta['warmup_s']:g} s "
        f"warm-up + {meta['duration_s']:g} s measured, values of {meta['value_bytes']} B; a "
        "fresh server (own data dir, default settings, fsync on) per run, servers alternating "
        "run by run; medians over valid runs",
    ]
    if ens.get("repeats"):
        lines.append(
            f"- 3-node: {ens['repeats']} runs per cell and server, {ens['warmup_s']:g} s warm-up "
            f"+ {ens['duration_s']:g} s measured; a fresh ensemble per run (loopback, each member "
            "its own data dir, default sync settings), sessions round-robin over the three "
            "members (so two thirds of them on followers); kinds alternating run by run; server "
            "CPU is the sum over the members"
            + ("; the mixed ensembles hold Java and zkpy members in one ensemble over "
               "ZooKeeper's own peer protocol (2J+1z: two Java members and a zkpy one; 1J+2z: "
               "one Java and two zkpy), the notes name the kind of member that led"
               if any(kind in MIXED_KINDS for kind in ens_kinds) else ""))
    by_topology = [(topology, topology_kinds, [row for row in rows if row["topology"] == topology])
                   for topology, topology_kinds in ((STANDALONE, kinds), (ENSEMBLE, ens_kinds))]
    load_tables = []
    for _, topology_kinds, topology_rows in by_topology:
        if topology_rows:
            load_tables += [*table_lines(topology_rows, topology_kinds, markdown=True), ""]
    lines += [f"- total time: {meta['elapsed_s']:.0f} s", "",
              "## Load (raw ZooKeeper protocol, benchmarks.loadgen)", "",
              *load_tables,
              "Ratios are zkpy / ZooKeeper: above 1 is better for ops/s, below 1 is better for "
              "latency.", ""]
    if fo.get("repeats"):
        lines += [
            "## Leader failover (3-node, benchmarks.failover)", "",
            *failover_table_lines(report["failover_summary"], kinds, markdown=True), "",
            f"Medians over {fo['repeats']} trials per server, each on a fresh ensemble: two "
            "writers write continuously (setData, one at a time) through the connect string of "
            f"all three members for {fo['warmup_s']:g} s, one session on the leader and one on a "
            "follower, then the leader's process is SIGKILLed. A writer whose connection fails "
            "(closed, refused, or a write unanswered for "
            f"{fo['request_timeout_s']:g} s) re-attaches its session on the next member "
            f"(session id, password, last zxid), pausing {fo['retry_pause_s'] * 1000:g} ms "
            "between attempts; a prober opens new sessions from the kill on. Times count only "
            "writes sent after the kill, measured at their reply. Each trial also checks that no "
            "acknowledged write was lost (version after the failover above the last one "
            "acknowledged before the kill).", ""]
    lines += ["Median CPU use over the measured window (share of one core; the machine has "
              f"{meta['cpu_count']}):"]
    for _, topology_kinds, topology_rows in by_topology:
        if topology_rows:
            lines += ["", *cpu_table_lines(topology_rows, topology_kinds)]
    failures = [r for r in report["runs"] if r["status"] != "ok"]
    failed_trials = [t for t in report.get("failover_trials", []) if t["status"] != "ok"]
    if failures or failed_trials:
        lines += ["", "## Failed or invalid runs", ""]
        for run in failures:
            reason = run.get("error") or "; ".join(run.get("result", {}).get(
                "invalid_reasons", []))
            lines.append(f"- {run['kind']} {run.get('topology', STANDALONE)} {run['workload']} "
                         f"{run['shape']} run {run['repeat'] + 1}: {run['status']}: "
                         f"{short_error(reason)}")
            lines += _log_block(run.get("logs"))
        for trial in failed_trials:
            reason = trial.get("error") or "; ".join(trial.get("result", {}).get(
                "invalid_reasons", []))
            lines.append(f"- {trial['kind']} failover trial {trial['repeat'] + 1}: "
                         f"{trial['status']}: {short_error(reason, 600)}")
            lines += _log_block(trial.get("logs"))
    if report.get("scaling"):
        lines += ["", *scaling.markdown_lines(report["scaling"])]
    if report.get("etcd") and report["etcd"].get("rows"):
        lines += ["", *etcd.markdown_lines(report["etcd"])]
    lines += ["", "## Codec", "", "```", *codec_lines(report.get("codec")), "```", ""]
    if report.get("plot"):
        lines += [f"![ops/s]({report['plot']})", ""]
    path.write_text("\n".join(lines))


def cpu_table_lines(rows: list[dict[str, Any]], kinds: list[str]) -> list[str]:
    lines = ["| topology | workload | shape | " + " | ".join(
                 f"{SHORT_NAMES[k]} server | {SHORT_NAMES[k]} generator" for k in kinds) + " |",
             "|---|---|---|" + "---:|---:|" * len(kinds)]
    for row in rows:
        cells = []
        for kind in kinds:
            for key in ("server_cpu_util", "client_cpu_util"):
                value = row[kind][key]
                cells.append("-" if value is None else f"{value * 100:.0f}%")
        lines.append(f"| {row['topology']} | {row['workload']} | {row['shape']} | "
                     + " | ".join(cells) + " |")
    return lines


def _log_block(logs: dict[str, str] | None) -> list[str]:
    if not logs:
        return []
    lines = ["", "  ```"]
    for member, text in logs.items():
        lines.append(f"  == {member}")
        lines += [f"  {line}" for line in text.splitlines()]
    return lines + ["  ```", ""]


def _print_logs(progress: Progress, logs: dict[str, str] | None, lines: int = 6) -> None:
    for member, text in (logs or {}).items():
        for line in text.splitlines()[-lines:]:
            progress.line(f"    {member}: {line[:220]}")


def _report_run(progress: Progress, label: str, record: dict[str, Any]) -> None:
    status = record["status"]
    if status == "start_failed":
        progress.line(f"{label}: SERVER DID NOT START: {short_error(record['error'])}")
        _print_logs(progress, record.get("logs"))
        return
    if status == "run_failed":
        progress.line(f"{label}: RUN FAILED: {short_error(record['error'])}")
        _print_logs(progress, record.get("logs"))
        return
    result = record["result"]
    lat = result["latency_ms"]
    flag = "" if status == "ok" else (
        "  INVALID: " + "; ".join(result["invalid_reasons"])[:300])
    server_cpu = result.get("server_cpu_util")
    progress.line(
        f"{label}: {result['ops_per_s']:>9,.0f} ops/s  p50 "
        f"{fmt(lat['p50'], '.3f')} ms  p99 {fmt(lat['p99'], '.3f')} ms  "
        f"(gen CPU {result['client_cpu_util'] * 100:.0f}%"
        + (f", server CPU {server_cpu * 100:.0f}%" if server_cpu is not None else "")
        + (f", STALL {result['longest_stall_s']:.1f}s"
           if (result.get("longest_stall_s") or 0) >= STALL_NOTE_S else "")
        + f", load {record['loadavg_before'][0]:.1f}{progress.eta()}){flag}")
    if status != "ok":
        _print_logs(progress, record.get("logs"))


def main(argv: list[str] | None = None) -> int:
    if argv:
        print(__doc__)
        return 0 if argv[0] in ("-h", "--help") else 2
    repeats = int(env_float("BENCH_REPEATS", 3))
    settings = {
        "duration_s": env_float("BENCH_DURATION_S", 5.0),
        "warmup_s": env_float("BENCH_WARMUP_S", 2.0),
        "value_bytes": int(env_float("BENCH_VALUE_BYTES", 100)),
    }
    workloads = env_list("BENCH_WORKLOADS", WORKLOADS)
    shapes = [parse_shape(s) for s in env_list("BENCH_SHAPES", tuple(
        shape_label(s) for s in SHAPES))]
    kinds = env_list("BENCH_KINDS", KINDS)
    ens_kinds = env_list("BENCH_ENSEMBLE_KINDS", tuple(kinds) + (
        MIXED_KINDS if set(KINDS) <= set(kinds) else ()))
    topologies = env_list("BENCH_TOPOLOGIES", TOPOLOGIES)
    ens_repeats = int(env_float("BENCH_ENSEMBLE_REPEATS", min(2, repeats)))
    ens_settings = {
        "duration_s": env_float("BENCH_ENSEMBLE_DURATION_S", min(4.0, settings["duration_s"])),
        "warmup_s": env_float("BENCH_ENSEMBLE_WARMUP_S", settings["warmup_s"]),
        "value_bytes": settings["value_bytes"],
    }
    ens_workloads = env_list("BENCH_ENSEMBLE_WORKLOADS", tuple(workloads))
    ens_shape = parse_shape(os.environ.get("BENCH_ENSEMBLE_SHAPE") or
                             shape_label(ENSEMBLE_SHAPE))
    fo_repeats = int(env_float("BENCH_FAILOVER_REPEATS", repeats))
    fo_settings = {
        "warmup_s": env_float("BENCH_FAILOVER_WARMUP_S", 1.0),
        "request_timeout_s": env_float("BENCH_FAILOVER_REQUEST_TIMEOUT_S", 2.0),
        "deadline_s": env_float("BENCH_FAILOVER_DEADLINE_S", 30.0),
        "retry_pause_s": 0.02,
    }
    for name in set(workloads) | set(ens_workloads):
        if name not in WORKLOADS:
            raise SystemExit(f"unknown workload {name!r} in BENCH_WORKLOADS")
    for kind in kinds:
        if kind not in KINDS:
            raise SystemExit(f"unknown server kind {kind!r} in BENCH_KINDS")
    for kind in ens_kinds:
        if kind not in ENSEMBLE_KINDS:
            raise SystemExit(f"unknown ensemble kind {kind!r} in BENCH_ENSEMBLE_KINDS "
                             f"(use {','.join(ENSEMBLE_KINDS)})")
    for topology in topologies:
        if topology not in TOPOLOGIES:
            raise SystemExit(f"unknown topology {topology!r} in BENCH_TOPOLOGIES "
                             f"(use {','.join(TOPOLOGIES)})")
    if STANDALONE not in topologies:
        workloads, shapes = [], []
    if ENSEMBLE not in topologies:
        ens_repeats = fo_repeats = 0
    with_scaling = os.environ.get("BENCH_SCALING", "1") != "0"
    with_etcd = os.environ.get("BENCH_ETCD", "1") != "0"
    etcd_state: dict[str, Any] = {}
    out = Path(os.environ.get("BENCH_OUT", "bench-results"))
    out.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix="zkpy-bench-", dir=os.environ.get("BENCH_TMPDIR")))

    # The plan: (topology, workload, shape, repeat, kind), standalone first; then failover.
    standalone_runs = len(workloads) * len(shapes) * repeats * len(kinds)
    ensemble_runs = len(ens_workloads) * ens_repeats * len(ens_kinds)
    failover_runs = fo_repeats * len(kinds)
    total_runs = standalone_runs + ensemble_runs + failover_runs
    # Rough seconds per run (start, setup, close and stop included), for the ETA.
    cost = {STANDALONE: settings["warmup_s"] + settings["duration_s"] + 1.5,
            ENSEMBLE: ens_settings["warmup_s"] + ens_settings["duration_s"] + 4.0,
            "failover": fo_settings["warmup_s"] + 6.0}
    planned = (standalone_runs * cost[STANDALONE] + ensemble_runs * cost[ENSEMBLE]
               + failover_runs * cost["failover"])
    progress = Progress(total_runs, planned)
    loadavg_before = os.getloadavg()
    progress.line(f"load average {loadavg_before[0]:.2f} {loadavg_before[1]:.2f} "
                  f"{loadavg_before[2]:.2f}; {standalone_runs} standalone runs of "
                  f"{settings['warmup_s']:g}+{settings['duration_s']:g} s, {ensemble_runs} "
                  f"3-node runs of {ens_settings['warmup_s']:g}+{ens_settings['duration_s']:g} s, "
                  f"{failover_runs} failover trials planned (~{planned / 60:.0f} min)"
                  + ("; then the scaling experiments (~6-8 min; BENCH_SCALING=0 skips them)"
                     if with_scaling else ""))

    codec_result = None
    if os.environ.get("BENCH_SKIP_CODEC") != "1":
        progress.line("codec benchmark")
        codec_result = codec.run()
        for line in codec_lines(codec_result):
            print("    " + line, flush=True)

    runs: list[dict[str, Any]] = []
    trials: list[dict[str, Any]] = []
    scaling_state: dict[str, Any] = {}
    progress.runs_started = time.monotonic()
    versions: dict[str, str | None] = {kind: None for kind in kinds}
    all_kinds = list(dict.fromkeys([*kinds, *ens_kinds]))
    start_failures = {(kind, topology): 0 for kind in all_kinds for topology in TOPOLOGIES}

    def skip_reason(kind: str, topology: str) -> str | None:
        if start_failures[(kind, topology)] >= START_FAILURES_BEFORE_SKIP:
            return (f"{topology} {kind} failed to start "
                    f"{start_failures[(kind, topology)]} times in a row")
        return None

    try:
        # 1. Standalone.
        for workload in workloads:
            for shape in shapes:
                cell_failed: set[str] = set()
                for repeat in range(repeats):
                    order = kinds if repeat % 2 == 0 else list(reversed(kinds))
                    for kind in order:
                        label = (f"[{progress.done + 1}/{total_runs}] {kind:9} standalone "
                                 f"{workload:6} {shape_label(shape):5} run {repeat + 1}/{repeats}")
                        why = skip_reason(kind, STANDALONE) or (
                            "an earlier run of this cell could not happen"
                            if kind in cell_failed else None)
                        if why:
                            runs.append({"kind": kind, "topology": STANDALONE,
                                         "workload": workload, "shape": shape_label(shape),
                                         "repeat": repeat, "status": "skipped", "error": why})
                            progress.finished(cost[STANDALONE])
                            progress.line(f"{label}: skipped ({why})")
                            continue
                        record = run_one(kind, workload, shape, repeat, settings, tmp_root,
                                         versions)
                        runs.append(record)
                        progress.finished(cost[STANDALONE])
                        if record["status"] == "start_failed":
                            start_failures[(kind, STANDALONE)] += 1
                            cell_failed.add(kind)
                        else:
                            start_failures[(kind, STANDALONE)] = 0
                            if record["status"] == "run_failed":
                                cell_failed.add(kind)
                        _report_run(progress, label, record)

        # 2. 3-node ensembles: a fresh ensemble per run, kinds alternating run by run.
        for workload in ens_workloads:
            for repeat in range(ens_repeats):
                order = ens_kinds if repeat % 2 == 0 else list(reversed(ens_kinds))
                for kind in order:
                    label = (f"[{progress.done + 1}/{total_runs}] {kind:9} 3-node     "
                             f"{workload:6} {shape_label(ens_shape):5} run "
                             f"{repeat + 1}/{ens_repeats}")
                    why = skip_reason(kind, ENSEMBLE)
                    if why:
                        runs.append({"kind": kind, "topology": ENSEMBLE, "workload": workload,
                                     "shape": shape_label(ens_shape), "repeat": repeat,
                                     "status": "skipped", "error": why})
                        progress.finished(cost[ENSEMBLE])
                        progress.line(f"{label}: skipped ({why})")
                        continue
                    record = run_one_ensemble(kind, workload, ens_shape, repeat, ens_settings,
                                              tmp_root, versions)
                    runs.append(record)
                    progress.finished(cost[ENSEMBLE])
                    if record["status"] == "start_failed":
                        start_failures[(kind, ENSEMBLE)] += 1
                    else:
                        start_failures[(kind, ENSEMBLE)] = 0
                    _report_run(progress, label, record)

        # 3. Leader failover.
        for repeat in range(fo_repeats):
            order = kinds if repeat % 2 == 0 else list(reversed(kinds))
            for kind in order:
                label = (f"[{progress.done + 1}/{total_runs}] {kind:9} 3-node     failover "
                         f"trial {repeat + 1}/{fo_repeats}")
                why = skip_reason(kind, ENSEMBLE)
                if why:
                    trials.append({"kind": kind, "repeat": repeat, "status": "skipped",
                                   "error": why})
                    progress.finished(cost["failover"])
                    progress.line(f"{label}: skipped ({why})")
                    continue
                record = run_failover_trial(kind, repeat, fo_settings, tmp_root)
                trials.append(record)
                progress.finished(cost["failover"])
                if record["status"] == "start_failed":
                    start_failures[(kind, ENSEMBLE)] += 1
                else:
                    start_failures[(kind, ENSEMBLE)] = 0
                progress.line(f"{label}: {failover.format_trial(record)} "
                              f"(load {record['loadavg_before'][0]:.1f}{progress.eta()})")
                if record["status"] != "ok":
                    _print_logs(progress, record.get("logs"))

        # 4. Scaling: many, idle and watching sessions; a million znodes.
        if with_scaling:
            progress.line("scaling experiments (benchmarks.scaling)")
            try:
                scaling.run(out, kinds, say=progress.line, state=scaling_state,
                            tmp_dir=str(tmp_root))
            except Exception as exc:  # noqa: BLE001 - keep what the other parts measured
                progress.line(f"scaling part failed: {type(exc).__name__}: {exc}")
                scaling_state.setdefault("error", f"{type(exc).__name__}: {exc}")
        # 5. The etcd API against the reference etcd (benchmarks.etcd).
        if with_etcd:
            progress.line("etcd API against etcd 3.4 (benchmarks.etcd)")
            try:
                etcd_state.update(etcd.run(out, progress.line, str(tmp_root)))
            except Exception as exc:  # noqa: BLE001 - keep what the other parts measured
                progress.line(f"etcd part failed: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        progress.line("interrupted: writing the results gathered so far")
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    if scaling_state and "summary" not in scaling_state:
        scaling.finish(scaling_state, out)  # an interrupted scaling part: what it measured

    loadavg_after = os.getloadavg()
    cells = [(STANDALONE, w, shape_label(s)) for w in workloads for s in shapes]
    if ens_repeats:
        cells += [(ENSEMBLE, w, shape_label(ens_shape)) for w in ens_workloads]
    rows = summarize(runs, cells, {STANDALONE: kinds, ENSEMBLE: ens_kinds})
    failover_summary = summarize_failover(trials, kinds) if fo_repeats else None
    run_loads = [r["loadavg_before"][0] for r in runs + trials if "loadavg_before" in r]
    report: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "git_commit": _git_commit(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "server_versions": versions,
            "loadavg_before": [round(v, 2) for v in loadavg_before],
            "loadavg_after": [round(v, 2) for v in loadavg_after],
            "run_loadavg_median": round(median(run_loads), 2) if run_loads else None,
            "repeats": repeats, **settings,
            "workloads": workloads, "shapes": [shape_label(s) for s in shapes], "kinds": kinds,
            "ensemble": {"repeats": ens_repeats, **ens_settings, "workloads": ens_workloads,
                         "kinds": ens_kinds,
                         "shape": shape_label(ens_shape), "members": 3},
            "failover": {"repeats": fo_repeats, **fo_settings},
            "elapsed_s": time.monotonic() - progress.started,
        },
        "codec": codec_result,
        "summary": rows,
        "failover_summary": failover_summary,
        "runs": runs,
        "failover_trials": trials,
        "scaling": scaling_state or None,
        "etcd": etcd_state or None,
        "plot": None,
    }
    plot_path = out / "ops_per_s.png"
    skipped = plot(rows, all_kinds, plot_path, failover_summary)
    if skipped:
        print(f"NOTE: {skipped}", flush=True)
    else:
        report["plot"] = plot_path.name
    (out / "results.json").write_text(json.dumps(report, indent=2, default=str))
    write_markdown(out / "results.md", report, rows, kinds, ens_kinds)

    print()
    print(f"medians over {repeats} standalone runs ({settings['warmup_s']:g} s warm-up + "
          f"{settings['duration_s']:g} s each)"
          + (f" and {ens_repeats} 3-node runs ({ens_settings['warmup_s']:g} + "
             f"{ens_settings['duration_s']:g} s)" if ens_repeats else "")
          + "; ratios are zkpy/ZooKeeper")
    for topology, topology_kinds in ((STANDALONE, kinds), (ENSEMBLE, ens_kinds)):
        topology_rows = [row for row in rows if row["topology"] == topology]
        if topology_rows:
            for line in table_lines(topology_rows, topology_kinds, markdown=False):
                print(line)
    if failover_summary:
        print()
        print(f"leader failover: medians over {fo_repeats} trials")
        for line in failover_table_lines(failover_summary, kinds, markdown=False):
            print(line)
    if scaling_state.get("summary"):
        for line in scaling.text_lines(scaling_state):
            print(line)
    if etcd_state.get("rows"):
        for line in etcd.text_lines(etcd_state):
            print(line)
    print(f"load average before {report['meta']['loadavg_before']}, after "
          f"{report['meta']['loadavg_after']}, median at run start "
          f"{report['meta']['run_loadavg_median']}; total {report['meta']['elapsed_s']:.0f} s")
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}"
          + (f", {plot_path}" if report["plot"] else "")
          + "".join(f", {out / name}" for name in scaling_state.get("plots") or []))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
