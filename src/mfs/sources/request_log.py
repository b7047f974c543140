"""What a run's Yahoo requests cost: how many, at what rate, how long they waited for a request
budget, how many Yahoo answered with 429. A request is one fetch attempt of one symbol: one
chart request, plus a timezone lookup when yfinance has not cached the symbol's zone.

The budget itself is not ours: a run through Prefect passes ``request_slot`` (a Prefect global
rate limit, ``mfs.orchestration.limits``), which blocks until the shared budget allows one more
request. Every fetch thread of the run shares the run's ``RequestLog`` (a ContextVar copied into
the threads with their context).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestLog:
    slot: Callable[[], object] | None = None  # blocks until the budget allows a request
    requests: int = 0
    rate_limited: int = 0  # answered 429
    waited_s: float = 0.0
    max_wait_s: float = 0.0
    first: float | None = None  # wall clock (time.time) of the first and last request
    last: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def before_request(self) -> None:
        began = time.monotonic()
        if self.slot is not None:
            self.slot()
        waited, now = time.monotonic() - began, time.time()
        with self._lock:
            self.requests += 1
            self.waited_s += waited
            self.max_wait_s = max(self.max_wait_s, waited)
            self.first = now if self.first is None else self.first
            self.last = now

    def answered_429(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def summary(self, budget_per_s: float | None) -> dict[str, Any]:
        span = (self.last - self.first) if self.first is not None and self.last is not None else 0.0
        return {
            "requests": self.requests,
            "first_request_at": self.first,
            "last_request_at": self.last,
            "rate_per_s": round(self.requests / span, 3) if span > 0 else None,
            "budget_per_s": budget_per_s if self.slot is not None else None,
            "waited_s": round(self.waited_s, 3),
            "max_wait_s": round(self.max_wait_s, 3),
            "rate_limited": self.rate_limited,
        }


def describe(summary: dict[str, Any]) -> str:
    """One line of a run's summary from ``RequestLog.summary``."""
    rate = f"{summary['rate_per_s']:g}/s" if summary.get("rate_per_s") else "—"
    budget = summary.get("budget_per_s")
    waited = f"budget {budget:g}/s, {summary['waited_s']:g} s waited for it" if budget else "no request budget"
    return f"Yahoo: {summary['requests']} requests at {rate} ({waited}); {summary['rate_limited']} answered 429"


_current: ContextVar[RequestLog | None] = ContextVar("mfs_request_log", default=None)


@contextmanager
def tracked(slot: Callable[[], object] | None) -> Iterator[RequestLog]:
    """The run's request log, for every fetch made inside the block."""
    log = RequestLog(slot=slot)
    token = _current.set(log)
    try:
        yield log
    finally:
        _current.reset(token)


def current() -> RequestLog:
    """The running fetch's log (a throwaway one outside a run: a fetch made on its own)."""
    return _current.get() or RequestLog()
