"""The BENCH_* environment variables that size a run (listed in run_all's and scaling's
docstrings), and the ``SESSIONSxDEPTH`` shapes they name."""

from __future__ import annotations

import os


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_list(name: str, default: tuple[str, ...]) -> list[str]:
    """A comma-separated list."""
    value = os.environ.get(name)
    return [v.strip() for v in value.split(",") if v.strip()] if value else list(default)


def env_ints(name: str, default: tuple[int, ...], cap_name: str | None = None) -> list[int]:
    """Comma-separated counts, ascending; those above ``cap_name``'s value are dropped (the cap
    itself is kept if nothing is left)."""
    value = os.environ.get(name)
    values = [int(float(v)) for v in value.split(",") if v.strip()] if value else list(default)
    if cap_name and os.environ.get(cap_name):
        cap = int(float(os.environ[cap_name]))
        values = [v for v in values if v <= cap] or [cap]
    return sorted(set(values))


def parse_shape(text: str) -> tuple[int, int]:
    """``32x16``: (sessions, requests outstanding per session)."""
    sessions, _, depth = text.lower().partition("x")
    return int(sessions), int(depth)


def shape_label(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"
