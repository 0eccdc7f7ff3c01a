"""Values in the shapes ZooKeeper's JSON gives them, shared by the AdminServer and dashboard."""

from __future__ import annotations


def java_long(value: int) -> int:
    """An unsigned 64-bit id as the signed long Java prints."""
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def hex_id(value: int) -> str:
    return f"0x{value & 0xFFFFFFFFFFFFFFFF:x}"


def latency_ms(stats) -> tuple[int, float, int]:
    """(min, avg to four places, max) request latency in milliseconds."""
    avg = stats.latency_total_ms / stats.latency_count if stats.latency_count else 0.0
    return stats.latency_min_ms, round(avg, 4), stats.latency_max_ms


def ephemerals_count(tree) -> int:
    return sum(len(paths) for paths in tree.ephemerals.values())
