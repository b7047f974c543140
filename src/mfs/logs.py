"""Structured logging with structlog, routed through the stdlib ``mfs`` logger.

Why through stdlib: Prefect attaches its API log handler to stdlib loggers named in
PREFECT_LOGGING_EXTRA_LOGGERS, so the same lines reach the Prefect UI. Output is JSON lines when
stderr is not a terminal, readable console lines on a terminal. Every line carries the context
bound with ``bind_context`` (run id, flow, symbol). Passwords inside DSNs are masked everywhere.

Each structlog call becomes one stdlib record that carries two things: ``record.msg`` is a readable
one-line string (``event: key=value ... (run_id=... flow=...)``), which is all that handlers we do
not own see (Prefect's API handler, pytest's caplog, a plain ``logging.Formatter``); and the event
dict itself rides along as the ``mfs_event`` record attribute, which our own stderr handler renders
as JSON or console lines with every key intact.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

_DSN_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?P<at>@)")
_KV_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|\S+)", re.IGNORECASE)
EVENT_ATTR = "mfs_event"  # the LogRecord attribute holding the structlog event dict
# Keys the readable message leaves out: the event leads it, and a stdlib record already carries
# level, logger name and time; the traceback goes on its own lines after the message.
_NOT_IN_MESSAGE = frozenset({"event", "level", "logger", "timestamp", "exception"})
_configured = False


def mask_secrets(text: str) -> str:
    """Replace the password of any ``scheme://user:password@host`` or ``password=...`` with ***."""
    text = _DSN_PASSWORD.sub(r"\g<head>***\g<at>", text)
    return _KV_PASSWORD.sub(r"\g<head>***", text)


def _mask_processor(_logger: Any, _name: str, event: EventDict) -> EventDict:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_secrets(value)
        elif isinstance(value, BaseException):
            event[key] = mask_secrets(repr(value))
    return event


# Shared by structlog calls and by plain stdlib records logged under ``mfs``.
_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    _mask_processor,
]


def _json_default(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value)


def _value_text(value: Any) -> str:
    """One ``key=value`` value. Containers as compact JSON (never a Python repr; JSON escapes
    newlines, so it stays on one line), dates in ISO. Other values are masked before quoting (a
    closing quote would hide the end of a password from the mask) and quoted only when a space or
    newline would otherwise break them apart."""
    if isinstance(value, (dict, list, tuple)):
        return mask_secrets(json.dumps(value, default=_json_default, separators=(",", ":")))
    text = mask_secrets(value.isoformat() if isinstance(value, (dt.date, dt.time)) else str(value))
    if not text or any(c.isspace() for c in text):
        text = json.dumps(text)
    return text


def render_message(event_dict: Mapping[str, Any]) -> str:
    """The readable message: ``event: own=values (context=values)``, then any traceback.

    Keys passed in the call keep their order (as written); bound context keys (run_id, flow,
    symbol) come last in parentheses, sorted, since contextvars have no stable order."""
    context = structlog.contextvars.get_contextvars()
    own: list[str] = []
    bound: list[str] = []
    for key, value in event_dict.items():
        if key in _NOT_IN_MESSAGE or key.startswith("_"):
            continue
        (bound if key in context else own).append(f"{key}={_value_text(value)}")
    text = mask_secrets(" ".join(str(event_dict.get("event", "")).split()))  # one line
    if own:
        text += ": " + " ".join(own)
    if bound:
        text += " (" + " ".join(sorted(bound)) + ")"
    if event_dict.get("exception"):
        text += "\n" + mask_secrets(str(event_dict["exception"]))
    return text


def _to_stdlib(_logger: Any, _name: str, event_dict: EventDict) -> tuple[tuple[str], dict[str, Any]]:
    """Final structlog processor: the arguments of the stdlib logging call. The traceback is
    already (masked) text in the message, so exc_info=False, also against ``Logger.exception``'s
    default: handlers we do not own would append the raw, unmasked traceback."""
    return (render_message(event_dict),), {"extra": {EVENT_ATTR: event_dict}, "exc_info": False}


def _record_to_event(logger: Any, name: str, event_dict: EventDict) -> EventDict:
    """ProcessorFormatter pre-chain: a record from a structlog call brings its event dict, already
    processed; a plain stdlib record (``logging.getLogger("mfs.x")``) goes through the shared chain."""
    record = event_dict["_record"]
    structured = getattr(record, EVENT_ATTR, None)
    if isinstance(structured, dict):
        return {**structured, "_record": record, "_from_structlog": True}
    for processor in _SHARED:  # each of them returns the (mutable) event dict it was given
        event_dict = processor(logger, name, event_dict)  # type: ignore[assignment]
    return event_dict


def _stderr_handler(json_output: bool) -> logging.Handler:
    renderer = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_record_to_event],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # plain stdlib records' exc_info
                _mask_processor,  # again: tracebacks are only text from here on
                renderer,
            ],
        )
    )
    handler._mfs = True  # type: ignore[attr-defined]
    return handler


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
    structlog.configure(
        processors=[
            # First: a call below the level costs a level check, not the whole chain and message.
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.processors.format_exc_info,  # here, so the readable message has it too
            _mask_processor,  # again: the traceback is text now
            _to_stdlib,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger("mfs")
    for old in [h for h in root.handlers if getattr(h, "_mfs", False)]:
        root.removeHandler(old)
    root.addHandler(_stderr_handler(json_output))
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
