"""structlog set-up: console lines by default, JSON lines with ``--log-json``.

Every log line about a client names its session (``session=0x...``) or, before a session
exists, the client address; lines about ensemble members name the peer.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(json_lines: bool = False, level: str = "INFO") -> None:
    renderer = (structlog.processors.JSONRenderer() if json_lines
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
