"""Structured logging with structlog, routed through the stdlib ``mfs`` logger.

Why through stdlib: Prefect attaches its API log handler to stdlib loggers named in
PREFECT_LOGGING_EXTRA_LOGGERS, so the same lines reach the Prefect UI. Output is JSON lines when
stderr is not a terminal, readable console lines on a terminal. Every line carries the context
bound with ``bind_context`` (run id, flow, symbol). Passwords inside DSNs are masked everywhere.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

_DSN_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?P<at>@)")
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|\S+)", re.IGNORECASE)
_configured = False


def mask_secrets(text: str) -> str:
    """Replace the password of any ``scheme://user:password@host`` or ``password=...`` with ***."""
    text = _DSN_PASSWORD.sub(r"\g<head>***\g<at>", text)
    return _KV_PASSWORD.sub(r"\g<head>***", text)


def _mask_processor(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_secrets(value)
        elif isinstance(value, BaseException):
            event[key] = mask_secrets(repr(value))
    return event


def configure_logging(level: str | None = None, json_output: bool | None = None, force: bool = False) -> None:
    """Idempotent: configures structlog and the ``mfs`` stdlib logger once per process."""
    global _configured
    if _configured and not force:
        return
    level_name = (level or os.environ.get("MFS_LOG_LEVEL") or "INFO").upper()
    if level_name not in logging.getLevelNamesMapping():
        level_name = "INFO"
    if json_output is None:
        fmt = os.environ.get("MFS_LOG_FORMAT", "").lower()
        json_output = fmt == "json" or (fmt != "console" and not sys.stderr.isatty())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_processor,
    ]
    renderer = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _mask_processor,  # again: tracebacks are only text from here on
                renderer,
            ],
        )
    )
    root = logging.getLogger("mfs")
    for old in [h for h in root.handlers if getattr(h, "_mfs", False)]:
        root.removeHandler(old)
    handler._mfs = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level_name)
    _configured = True


def get_logger(name: str = "mfs") -> structlog.stdlib.BoundLogger:
    configure_logging()
    return structlog.get_logger(name if name.startswith("mfs") else f"mfs.{name}")


@contextmanager
def bind_context(**values: Any) -> Iterator[None]:
    """Attach run_id / flow / symbol (or anything) to every log line inside the block."""
    with structlog.contextvars.bound_contextvars(**{k: v for k, v in values.items() if v is not None}):
        yield
