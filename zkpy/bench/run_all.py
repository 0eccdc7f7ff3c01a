"""zkpy against the reference ZooKeeper, side by side: ``make bench``.

1. The codec micro-benchmark (``zkpy.bench.codec``).
2. For each workload (get, set, create ephemeral+sequential, mix 90% get / 10% set) and each
   shape (1 session x depth 1, 32 sessions x depth 16), ``BENCH_REPEATS`` runs on each server.
   Every run gets a freshly started standalone server with its own data directory and the
   default settings (fsync on), and only that server runs; the two servers alternate run by
   run (ZooKeeper first on even repeats, zkpy first on odd ones, so a drift of the machine
   affects both alike).
3. A table of medians (ops/s, p50, p99 and the zkpy/ZooKeeper ratios), written with every run's
   details to ``bench-results/results.json``, ``results.md`` and ``ops_per_s.png``.

Environment: ``BENCH_REPEATS`` (default 3), ``BENCH_DURATION_S`` (measured seconds per run,
default 5), ``BENCH_WARMUP_S`` (default 2), ``BENCH_WORKLOADS`` (e.g. ``get,mix``),
``BENCH_SHAPES`` (e.g. ``1x1,32x16``), ``BENCH_KINDS`` (``zookeeper,zkpy``),
``BENCH_VALUE_BYTES`` (default 100), ``BENCH_OUT`` (default ``bench-results``),
``BENCH_TMPDIR`` (where the servers' data directories go), ``BENCH_SKIP_CODEC=1``.

A zkpy server that does not start, or a run that cannot happen, is recorded as a failure and
the benchmark goes on (after two start failures in a row zkpy's remaining runs are skipped).
The load generator is Python on the same 2-core machine as the server: ``client_cpu_util`` in
the results says how close it came to being the bottleneck.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from zkpy.bench import codec, loadgen

WORKLOADS = ("get", "set", "create", "mix")
WORKLOAD_LABELS = {"get": "get", "set": "set", "create": "create eph+seq",
                   "mix": "mix 90% get/10% set"}
SHAPES = ((1, 1), (32, 16))
KINDS = ("zookeeper", "zkpy")
START_FAILURES_BEFORE_SKIP = 2
REPO_ROOT = Path(__file__).resolve().parents[2]


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _env_list(name: str, default: tuple[str, ...]) -> list[str]:
    value = os.environ.get(name)
    return [v.strip() for v in value.split(",") if v.strip()] if value else list(default)


def _shape_label(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def _parse_shape(text: str) -> tuple[int, int]:
    sessions, _, depth = text.lower().partition("x")
    return int(sessions), int(depth)


class Progress:
    def __init__(self, total_runs: int) -> None:
        self.started = time.monotonic()
        self.total = total_runs
        self.done = 0
        self.runs_started: float | None = None

    def line(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[bench {elapsed:6.1f}s] {message}", flush=True)

    def eta(self) -> str:
        if not self.done or self.runs_started is None:
            return ""
        elapsed = time.monotonic() - self.runs_started
        remaining = elapsed / self.done * (self.total - self.done)
        return f", ~{remaining:.0f}s left"


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _server_version(server) -> str | None:
    from tests.support.servers import four_letter_word
    try:
        for line in four_letter_word(server.port, "srvr").splitlines():
            if "version" in line.lower():
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def run_one(kind: str, workload: str, shape: tuple[int, int], repeat: int, settings: dict,
            tmp_root: Path, versions: dict[str, str | None]) -> dict[str, Any]:
    """Start a fresh server, run the load generator once, stop the server."""
    from tests.support.servers import ServerProcess

    sessions, depth = shape
    record: dict[str, Any] = {"kind": kind, "workload": workload, "shape": _shape_label(shape),
                              "repeat": repeat, "loadavg_before": os.getloadavg()}
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-{workload}-{_shape_label(shape)}-r{repeat}-",
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
            versions[kind] = _server_version(server)
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


def short_error(text: str | None, limit: int = 300) -> str:
    """First line of an error and, if different, its last non-empty line (the cause, for a
    server that exited and left a traceback in its log)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    summary = lines[0] if len(lines) == 1 or lines[-1] == lines[0] else \
        f"{lines[0]} ... {lines[-1]}"
    return summary[:limit]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(runs: list[dict[str, Any]], workloads: list[str], shapes: list[tuple[int, int]],
              kinds: list[str]) -> list[dict[str, Any]]:
    """One row per (workload, shape): medians per kind over the valid runs, and ratios."""
    rows = []
    for workload in workloads:
        for shape in shapes:
            row: dict[str, Any] = {"workload": workload, "shape": _shape_label(shape)}
            for kind in kinds:
                mine = [r for r in runs if r["kind"] == kind and r["workload"] == workload
                        and r["shape"] == _shape_label(shape)]
                valid = [r["result"] for r in mine if r["status"] == "ok"]
                statuses = sorted({r["status"] for r in mine if r["status"] != "ok"})
                row[kind] = {
                    "runs": len(mine),
                    "valid_runs": len(valid),
                    "problems": statuses,
                    "ops_per_s": _median([v["ops_per_s"] for v in valid]),
                    "ops_per_s_all": [v["ops_per_s"] for v in valid],
                    "p50_ms": _median([v["latency_ms"]["p50"] for v in valid]),
                    "p99_ms": _median([v["latency_ms"]["p99"] for v in valid]),
                    "p999_ms": _median([v["latency_ms"]["p999"] for v in valid]),
                    "client_cpu_util": _median([v["client_cpu_util"] for v in valid]),
                    "server_cpu_util": _median([v["server_cpu_util"] for v in valid
                                                if v["server_cpu_util"] is not None]),
                    "first_error": next((short_error(r.get("error") or "; ".join(
                        r.get("result", {}).get("invalid_reasons", [])))
                        for r in mine if r["status"] not in ("ok", "skipped")), None),
                }
            zk, zp = row.get("zookeeper"), row.get("zkpy")
            if zk and zp:
                def ratio(key: str) -> float | None:
                    a, b = zp[key], zk[key]
                    return a / b if a is not None and b else None
                row["ratio"] = {"ops_per_s": ratio("ops_per_s"), "p50_ms": ratio("p50_ms"),
                                "p99_ms": ratio("p99_ms")}
            rows.append(row)
    return rows


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _cell_status(cell: dict[str, Any]) -> str:
    if cell["valid_runs"] == 0:
        if not cell["runs"]:
            return "not run"
        return "FAILED: " + (", ".join(cell["problems"]) or "?")
    if cell["valid_runs"] < cell["runs"]:
        return f"{cell['valid_runs']}/{cell['runs']} valid"
    return ""


def table_lines(rows: list[dict[str, Any]], kinds: list[str], markdown: bool) -> list[str]:
    headers = ["workload", "shape"]
    for kind in kinds:
        short = "ZK" if kind == "zookeeper" else "zkpy"
        headers += [f"{short} ops/s", f"{short} p50 ms", f"{short} p99 ms"]
    both = "zookeeper" in kinds and "zkpy" in kinds
    if both:
        headers += ["zkpy/ZK ops/s", "zkpy/ZK p50", "zkpy/ZK p99"]
    headers.append("notes")
    body = []
    for row in rows:
        cells = [WORKLOAD_LABELS.get(row["workload"], row["workload"]), row["shape"]]
        notes = []
        for kind in kinds:
            cell = row[kind]
            failed = cell["valid_runs"] == 0
            cells += [_fmt(cell["ops_per_s"], ",.0f", "FAILED" if failed else "-"),
                      _fmt(cell["p50_ms"], ".3f"), _fmt(cell["p99_ms"], ".3f")]
            status = _cell_status(cell)
            if status:
                notes.append(f"{kind}: {status}")
        if both:
            ratio = row["ratio"]
            cells += [_fmt(ratio["ops_per_s"], ".2f"), _fmt(ratio["p50_ms"], ".2f"),
                      _fmt(ratio["p99_ms"], ".2f")]
        cells.append("; ".join(notes))
        body.append(cells)
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i < 2 or i == len(headers) - 1 else "---:"
                                for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return lines
    widths = [max(len(h), *(len(c[i]) for c in body)) if body else len(h)
              for i, h in enumerate(headers)]
    def fmt_row(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in (0, 1, len(cells) - 1) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [fmt_row(headers), fmt_row(["-" * w for w in widths])] + [fmt_row(c) for c in body]


def codec_lines(codec_result: dict[str, Any] | None) -> list[str]:
    if not codec_result:
        return ["(codec benchmark skipped)"]
    return codec.format_text(codec_result).splitlines()


def plot(rows: list[dict[str, Any]], kinds: list[str], shapes: list[str], path: Path) -> str | None:
    """Bar chart of median ops/s (min-max whiskers); returns None or why it was skipped."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"matplotlib is not installed ({exc}); skipping the plot"
    colors = {"zookeeper": "#4C72B0", "zkpy": "#DD8452"}
    fig, axes = plt.subplots(1, len(shapes), figsize=(6 * len(shapes), 4.5), squeeze=False)
    width = 0.8 / max(1, len(kinds))
    for ax, shape in zip(axes[0], shapes):
        shape_rows = [row for row in rows if row["shape"] == shape]
        labels = [WORKLOAD_LABELS.get(row["workload"], row["workload"]) for row in shape_rows]
        for k, kind in enumerate(kinds):
            xs, heights, low, high = [], [], [], []
            for i, row in enumerate(shape_rows):
                cell = row[kind]
                x = i + (k - (len(kinds) - 1) / 2) * width
                median = cell["ops_per_s"] or 0.0
                values = cell["ops_per_s_all"] or [0.0]
                xs.append(x)
                heights.append(median)
                low.append(median - min(values))
                high.append(max(values) - median)
                if cell["valid_runs"] == 0:
                    ax.text(x, 0, "failed", rotation=90, ha="center", va="bottom", fontsize=8,
                            color=colors.get(kind, "black"))
            ax.bar(xs, heights, width, yerr=[low, high], capsize=3,
                   label="ZooKeeper 3.8" if kind == "zookeeper" else kind,
                   color=colors.get(kind))
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=15, fontsize=8)
        ax.set_ylabel("ops/s (median, min-max)")
        ax.set_title(f"{shape} (sessions x depth)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("zkpy vs ZooKeeper: throughput")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write_markdown(path: Path, report: dict[str, Any], rows, kinds) -> None:
    meta = report["meta"]
    lines = [
        "# zkpy vs ZooKeeper benchmark",
        "",
        f"- date: {meta['date']}; zkpy commit: {meta['git_commit']}",
        f"- machine: {meta['cpu_count']} CPUs, {meta['platform']}, Python {meta['python']}",
        "- servers: " + ", ".join(f"{k} {v or '(did not start)'}"
                                  for k, v in meta["server_versions"].items()),
        f"- load average before: {meta['loadavg_before']}, after: {meta['loadavg_after']}",
        f"- {meta['repeats']} runs per cell and server, {meta['warmup_s']:g} s warm-up + "
        f"{meta['duration_s']:g} s measured, values of {meta['value_bytes']} B; a fresh server "
        "(own data dir, default settings, fsync on) per run, servers alternating run by run; "
        "medians over valid runs",
        f"- total time: {meta['elapsed_s']:.0f} s",
        "",
        "## Load (raw ZooKeeper protocol, zkpy.bench.loadgen)",
        "",
        *table_lines(rows, kinds, markdown=True),
        "",
        "Ratios are zkpy / ZooKeeper: above 1 is better for ops/s, below 1 is better for "
        "latency.",
        "",
        "Median CPU use over the measured window (share of one core; the machine has "
        f"{meta['cpu_count']}):",
        "",
        "| workload | shape | " + " | ".join(f"{k} server | {k} generator" for k in kinds)
        + " |",
        "|---|---|" + "---:|---:|" * len(kinds),
    ]
    for row in rows:
        cells = []
        for kind in kinds:
            for key in ("server_cpu_util", "client_cpu_util"):
                value = row[kind][key]
                cells.append("-" if value is None else f"{value * 100:.0f}%")
        lines.append(f"| {row['workload']} | {row['shape']} | " + " | ".join(cells) + " |")
    failures = [r for r in report["runs"] if r["status"] != "ok"]
    if failures:
        lines += ["", "## Failed or invalid runs", ""]
        for run in failures:
            reason = run.get("error") or "; ".join(run.get("result", {}).get(
                "invalid_reasons", []))
            lines.append(f"- {run['kind']} {run['workload']} {run['shape']} run "
                         f"{run['repeat'] + 1}: {run['status']}: {short_error(reason)}")
    lines += ["", "## Codec", "", "```", *codec_lines(report.get("codec")), "```", ""]
    if report.get("plot"):
        lines += [f"![ops/s]({report['plot']})", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    if argv:
        print(__doc__)
        return 0 if argv[0] in ("-h", "--help") else 2
    repeats = int(_env_float("BENCH_REPEATS", 3))
    settings = {
        "duration_s": _env_float("BENCH_DURATION_S", 5.0),
        "warmup_s": _env_float("BENCH_WARMUP_S", 2.0),
        "value_bytes": int(_env_float("BENCH_VALUE_BYTES", 100)),
    }
    workloads = _env_list("BENCH_WORKLOADS", WORKLOADS)
    shapes = [_parse_shape(s) for s in _env_list("BENCH_SHAPES", tuple(
        _shape_label(s) for s in SHAPES))]
    kinds = _env_list("BENCH_KINDS", KINDS)
    for name in workloads:
        if name not in WORKLOADS:
            raise SystemExit(f"unknown workload {name!r} in BENCH_WORKLOADS")
    for kind in kinds:
        if kind not in KINDS:
            raise SystemExit(f"unknown server kind {kind!r} in BENCH_KINDS")
    out = Path(os.environ.get("BENCH_OUT", "bench-results"))
    out.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix="zkpy-bench-", dir=os.environ.get("BENCH_TMPDIR")))

    total_runs = len(workloads) * len(shapes) * repeats * len(kinds)
    progress = Progress(total_runs)
    loadavg_before = os.getloadavg()
    progress.line(f"load average {loadavg_before[0]:.2f} {loadavg_before[1]:.2f} "
                  f"{loadavg_before[2]:.2f}; {total_runs} runs of {settings['warmup_s']:g}+"
                  f"{settings['duration_s']:g} s planned")

    codec_result = None
    if os.environ.get("BENCH_SKIP_CODEC") != "1":
        progress.line("codec benchmark")
        codec_result = codec.run()
        for line in codec_lines(codec_result):
            print("    " + line, flush=True)

    runs: list[dict[str, Any]] = []
    progress.runs_started = time.monotonic()
    versions: dict[str, str | None] = {kind: None for kind in kinds}
    start_failures = {kind: 0 for kind in kinds}
    try:
        for workload in workloads:
            for shape in shapes:
                cell_failed: set[str] = set()
                for repeat in range(repeats):
                    order = kinds if repeat % 2 == 0 else list(reversed(kinds))
                    for kind in order:
                        label = (f"[{progress.done + 1}/{total_runs}] {kind:9} {workload:6} "
                                 f"{_shape_label(shape):5} run {repeat + 1}/{repeats}")
                        if start_failures[kind] >= START_FAILURES_BEFORE_SKIP or \
                                kind in cell_failed:
                            why = ("server failed to start "
                                   f"{start_failures[kind]} times in a row"
                                   if start_failures[kind] >= START_FAILURES_BEFORE_SKIP
                                   else "an earlier run of this cell could not happen")
                            runs.append({"kind": kind, "workload": workload,
                                         "shape": _shape_label(shape), "repeat": repeat,
                                         "status": "skipped", "error": why})
                            progress.done += 1
                            progress.line(f"{label}: skipped ({why})")
                            continue
                        record = run_one(kind, workload, shape, repeat, settings, tmp_root,
                                         versions)
                        runs.append(record)
                        progress.done += 1
                        status = record["status"]
                        if status == "start_failed":
                            start_failures[kind] += 1
                            cell_failed.add(kind)
                            progress.line(f"{label}: SERVER DID NOT START: "
                                          f"{short_error(record['error'])}")
                            continue
                        start_failures[kind] = 0
                        if status == "run_failed":
                            cell_failed.add(kind)
                            progress.line(f"{label}: RUN FAILED: {short_error(record['error'])}")
                            continue
                        result = record["result"]
                        lat = result["latency_ms"]
                        flag = "" if status == "ok" else (
                            "  INVALID: " + "; ".join(result["invalid_reasons"])[:200])
                        progress.line(
                            f"{label}: {result['ops_per_s']:>9,.0f} ops/s  p50 "
                            f"{_fmt(lat['p50'], '.3f')} ms  p99 {_fmt(lat['p99'], '.3f')} ms  "
                            f"(gen CPU {result['client_cpu_util'] * 100:.0f}%"
                            f"{progress.eta()}){flag}")
    except KeyboardInterrupt:
        progress.line("interrupted: writing the results gathered so far")
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)

    loadavg_after = os.getloadavg()
    rows = summarize(runs, workloads, shapes, kinds)
    shape_labels = [_shape_label(s) for s in shapes]
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
            "repeats": repeats, **settings,
            "workloads": workloads, "shapes": shape_labels, "kinds": kinds,
            "elapsed_s": time.monotonic() - progress.started,
        },
        "codec": codec_result,
        "summary": rows,
        "runs": runs,
        "plot": None,
    }
    plot_path = out / "ops_per_s.png"
    skipped = plot(rows, kinds, shape_labels, plot_path)
    if skipped:
        print(f"NOTE: {skipped}", flush=True)
    else:
        report["plot"] = plot_path.name
    (out / "results.json").write_text(json.dumps(report, indent=2))
    write_markdown(out / "results.md", report, rows, kinds)

    print()
    print(f"medians over {repeats} runs ({settings['warmup_s']:g} s warm-up + "
          f"{settings['duration_s']:g} s each); ratios are zkpy/ZooKeeper")
    for line in table_lines(rows, kinds, markdown=False):
        print(line)
    print(f"load average before {report['meta']['loadavg_before']}, after "
          f"{report['meta']['loadavg_after']}; total {report['meta']['elapsed_s']:.0f} s")
    print(f"wrote {out / 'results.json'}, {out / 'results.md'}"
          + (f", {plot_path}" if report["plot"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
