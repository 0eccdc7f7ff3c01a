"""Statistics, tables and plot styling shared by the benchmark reports."""

from __future__ import annotations

import math
import statistics

# Table headers. The mixed ensembles (tests.support.servers.member_kinds) are named by who
# holds the majority: 2J+1z is two Java members and one zkpy.
SHORT_NAMES = {"zookeeper": "ZK", "zkpy": "zkpy", "mixedjava": "2J+1z", "mixedzkpy": "1J+2z"}
PLOT_LABELS = {"zookeeper": "ZooKeeper 3.8", "zkpy": "zkpy",
               "mixedjava": "2 ZooKeeper + 1 zkpy", "mixedzkpy": "1 ZooKeeper + 2 zkpy"}
PLOT_COLORS = {"zookeeper": "#4C72B0", "zkpy": "#DD8452", "mixedjava": "#55A868",
               "mixedzkpy": "#C44E52"}


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary_ms(latencies_s: list[float]) -> dict[str, float | int | None]:
    """count, p50/p90/p99/p999, mean and max of latencies given in seconds, in ms."""
    values = sorted(latencies_s)
    summary: dict[str, float | int | None] = {"count": len(values)}
    for label, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        value = percentile(values, p)
        summary[label] = None if value is None else value * 1000.0
    summary["mean"] = sum(values) / len(values) * 1000.0 if values else None
    summary["max"] = values[-1] * 1000.0 if values else None
    return summary


def median(values: list[float | None]) -> float | None:
    """Median of the values that were measured (None: not measured)."""
    measured = [v for v in values if v is not None]
    return statistics.median(measured) if measured else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def render_table(headers: list[str], body: list[list[str]], markdown: bool,
                 left: tuple[int, ...] = (0, -1)) -> list[str]:
    """A table as markdown or as aligned text; columns in ``left`` (negative: from the end) are
    left-aligned, the others (numbers) right-aligned."""
    last = len(headers) - 1
    left = tuple(i if i >= 0 else last + 1 + i for i in left)
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i in left else "---:"
                                for i in range(len(headers))) + "|"]
        return lines + ["| " + " | ".join(cells) + " |" for cells in body]
    widths = [max(len(h), *(len(c[i]) for c in body)) if body else len(h)
              for i, h in enumerate(headers)]

    def text_row(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [text_row(headers), text_row(["-" * w for w in widths])] + [text_row(c) for c in body]


def short_error(text: str | None, limit: int = 300) -> str:
    """First line of an error and, if different, its last non-empty line (the cause, for a
    server that exited and left a traceback in its log)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    summary = lines[0] if len(lines) == 1 or lines[-1] == lines[0] else \
        f"{lines[0]} ... {lines[-1]}"
    return summary[:limit]


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only: a benchmark machine has no display).
    Raises ImportError without matplotlib, the ``bench`` extra."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
