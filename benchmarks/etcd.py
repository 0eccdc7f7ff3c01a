"""zkpy's etcd API against the reference etcd 3.4 (Debian's), in the same ``make bench`` run.

For each topology (one member; three members on loopback) and workload (``put``, ``range``,
``watch`` fan-out: see ``benchmarks.etcd_load``), ``BENCH_ETCD_REPEATS`` runs per server, the
kinds alternating run by run, each on freshly started servers with default durability (etcd
fsyncs its WAL, zkpy its log). The generator spreads its workers over every member's endpoint.
Medians of ops/s and p99, and the zkpy/etcd ratios, go to the report and ``etcd_ops_per_s.png``.

Environment: ``BENCH_ETCD`` (0 skips this part), ``BENCH_ETCD_REPEATS`` (default 2),
``BENCH_ETCD_DURATION_S`` (default 4), ``BENCH_ETCD_WARMUP_S`` (default 1),
``BENCH_ETCD_CONCURRENCY`` (default 32), ``BENCH_ETCD_WATCHERS`` (default 64),
``BENCH_ETCD_WORKLOADS`` (default ``put,range,watch``), ``BENCH_ETCD_TOPOLOGIES``
(``1-member,3-member``).

The generator is one Python process on the same 2-core machine: its ``client_cpu_util``
(1.0 = a core) says when it, not the server, is the limit, which happens first with etcd.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.report import PLOT_COLORS, fmt, median, pyplot, ratio, render_table
from benchmarks.settings import env_float, env_list
from tests.support.etcdservers import EtcdServer, etcd_cluster
from tests.support.servers import REPO_ROOT, ensemble, free_port, start_all

KINDS = ("etcd", "zkpy")
WORKLOADS = ("put", "range", "watch")
TOPOLOGIES = ("1-member", "3-member")
LABELS = {"etcd": "etcd 3.4", "zkpy": "zkpy"}
COLORS = {"etcd": "#4C72B0", "zkpy": PLOT_COLORS["zkpy"]}


def _start(kind: str, topology: str, workdir: Path):
    """(endpoints, stop) for freshly started servers of ``kind``."""
    if kind == "etcd":
        members = [EtcdServer("etcd", workdir / "etcd")] if topology == "1-member" \
            else etcd_cluster(workdir, 3)
        for member in members:
            member.launch()
        try:
            for member in members:
                member.wait_ready(60)
        except BaseException:
            for member in members:
                member.stop()
            raise
        return [m.endpoint for m in members], lambda: [m.stop() for m in members]
    if topology == "1-member":
        server = EtcdServer("zkpy", workdir / "zkpy").start()
        return [server.endpoint], server.stop
    members = ensemble("zkpy", workdir, 3)
    for member in members:
        member.etcd_port = free_port()
        member.settings.update({"etcd.clientPort": str(member.etcd_port),
                                "etcd.clientPortAddress": "127.0.0.1"})
    start_all(members)
    endpoints = [f"127.0.0.1:{m.etcd_port}" for m in members]
    # Served once a leader is elected: wait for a put to go through.
    deadline = time.monotonic() + 60
    while True:
        done = subprocess.run(["/usr/bin/etcdctl", f"--endpoints={endpoints[0]}", "put",
                               "/ready", "1"], capture_output=True,
                              env=dict(os.environ, ETCDCTL_API="3"))
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    return endpoints, lambda: [m.stop() for m in members]


def _load(endpoints: list[str], workload: str, settings: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    command = [sys.executable, "-m", "benchmarks.etcd_load", "--endpoints", ",".join(endpoints),
               "--workload", workload, "--concurrency", str(settings["concurrency"]),
               "--watchers", str(settings["watchers"]), "--duration", str(settings["duration_s"]),
               "--warmup", str(settings["warmup_s"])]
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=settings["duration_s"] + settings["warmup_s"] + 120)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(out: Path, say, tmp_dir: str) -> dict[str, Any]:
    settings = {"repeats": int(env_float("BENCH_ETCD_REPEATS", 2)),
                "duration_s": env_float("BENCH_ETCD_DURATION_S", 4.0),
                "warmup_s": env_float("BENCH_ETCD_WARMUP_S", 1.0),
                "concurrency": int(env_float("BENCH_ETCD_CONCURRENCY", 32)),
                "watchers": int(env_float("BENCH_ETCD_WATCHERS", 64))}
    workloads = env_list("BENCH_ETCD_WORKLOADS", WORKLOADS)
    topologies = env_list("BENCH_ETCD_TOPOLOGIES", TOPOLOGIES)
    runs: list[dict[str, Any]] = []
    total = len(topologies) * len(workloads) * settings["repeats"] * len(KINDS)
    done = 0
    for topology in topologies:
        for workload in workloads:
            for repeat in range(settings["repeats"]):
                for kind in (KINDS if repeat % 2 == 0 else tuple(reversed(KINDS))):
                    done += 1
                    workdir = Path(tmp_dir) / f"etcd-{kind}-{topology}-{workload}-{repeat}"
                    record = {"kind": kind, "topology": topology, "workload": workload,
                              "repeat": repeat}
                    try:
                        endpoints, stop = _start(kind, topology, workdir)
                        try:
                            record.update(status="ok", result=_load(endpoints, workload, settings))
                        finally:
                            stop()
                    except Exception as error:  # noqa: BLE001 - record it, go on
                        record.update(status="failed", error=f"{type(error).__name__}: {error}")
                    runs.append(record)
                    result = record.get("result") or {}
                    say(f"[etcd {done}/{total}] {kind:4} {topology} {workload:5} run "
                        f"{repeat + 1}: " + (f"{result['ops_per_s']:,.0f} ops/s, p99 "
                                             f"{fmt(result['latency_ms']['p99'], '.1f')} ms, "
                                             f"client cpu {fmt(result['client_cpu_util'], '.2f')}"
                                             if record["status"] == "ok" else record["error"]))
    state = {"settings": settings, "runs": runs, "rows": _summary(runs, topologies, workloads)}
    plot_path = out / "etcd_ops_per_s.png"
    if _plot(state["rows"], plot_path):
        state["plot"] = plot_path.name
    return state


def _summary(runs, topologies, workloads) -> list[dict[str, Any]]:
    rows = []
    for topology in topologies:
        for workload in workloads:
            row: dict[str, Any] = {"topology": topology, "workload": workload}
            for kind in KINDS:
                ok = [r["result"] for r in runs if r["status"] == "ok" and r["kind"] == kind
                      and r["topology"] == topology and r["workload"] == workload]
                row[kind] = {"ops_per_s": median([r["ops_per_s"] for r in ok]),
                             "p99_ms": median([r["latency_ms"]["p99"] for r in ok]),
                             "client_cpu_util": median([r["client_cpu_util"] for r in ok]),
                             "runs": len(ok)}
            row["ratio"] = ratio(row["zkpy"]["ops_per_s"], row["etcd"]["ops_per_s"])
            rows.append(row)
    return rows


def _lines(state: dict[str, Any], markdown: bool) -> list[str]:
    headers = ["topology", "workload", "etcd ops/s", "zkpy ops/s", "zkpy/etcd",
               "p99 etcd / zkpy ms", "client cpu etcd / zkpy"]
    body = [[row["topology"], row["workload"], fmt(row["etcd"]["ops_per_s"], ",.0f"),
             fmt(row["zkpy"]["ops_per_s"], ",.0f"), fmt(row["ratio"], ".2f"),
             f"{fmt(row['etcd']['p99_ms'], '.1f')} / {fmt(row['zkpy']['p99_ms'], '.1f')}",
             f"{fmt(row['etcd']['client_cpu_util'], '.2f')} / "
             f"{fmt(row['zkpy']['client_cpu_util'], '.2f')}"]
            for row in state["rows"]]
    return render_table(headers, body, markdown, left=(0, 1))


def markdown_lines(state: dict[str, Any]) -> list[str]:
    s = state["settings"]
    lines = ["## etcd API: zkpy against etcd 3.4", "",
             f"Medians of {s['repeats']} runs per server ({s['warmup_s']:g} s warm-up + "
             f"{s['duration_s']:g} s), {s['concurrency']} concurrent requests (watch: "
             f"{s['watchers']} watch streams, events delivered per second); 100 B values. "
             "Client CPU is the one Python generator process (1.0 = one core).", ""]
    lines += _lines(state, markdown=True)
    failed = [r for r in state["runs"] if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed runs:"] + [f"- {r['kind']} {r['topology']} {r['workload']} "
                                         f"run {r['repeat'] + 1}: {r['error']}" for r in failed]
    if state.get("plot"):
        lines += ["", f"![etcd API throughput]({state['plot']})"]
    return lines


def text_lines(state: dict[str, Any]) -> list[str]:
    return ["", "etcd API (ratios zkpy/etcd):", *_lines(state, markdown=False)]


def _plot(rows, path: Path) -> bool:
    plt = pyplot()
    if plt is None or not rows:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "ops_per_s", "ops/s (higher is better)"),
                           (axes[1], "p99_ms", "p99 ms (lower is better)")):
        labels = [f"{r['topology']}\n{r['workload']}" for r in rows]
        width = 0.38
        for offset, kind in ((-width / 2, "etcd"), (width / 2, "zkpy")):
            values = [r[kind][key] or 0 for r in rows]
            ax.bar([i + offset for i in range(len(rows))], values, width, label=LABELS[kind],
                   color=COLORS[kind])
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
