"""Bars from Yahoo Finance through the real yfinance code (1.7.x).

One symbol per request with ``Ticker.history`` and ``yf.config.debug.hide_exceptions = False``:
``yf.download`` never raises for a bad symbol (it logs "possibly delisted" and returns NaN
columns), and we must report each symbol's own failure with Yahoo's reason.
``auto_adjust=False`` keeps both the traded close and Yahoo's adjusted close; ``actions=True``
brings the splits and dividends Yahoo serves with the chart (its ``events``), which leave this
module as a frame of their own (``Chart.actions``), never as columns of the bars.

Errors are classified for the retry loop in ``mfs.ingest.run``: RateLimitedError and
TransientSourceError are retried with backoff; SymbolNotFoundError and other SourceErrors are
final. Timestamps leave this module in UTC: hourly bars labelled by their start, daily bars by
``mfs.calendar.daily_bar_label`` (the session date's New York midnight).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

import numpy as np
import pandas as pd
import peewee
import requests
import yfinance as yf
from yfinance._http import new_session
from yfinance.data import YfData
from yfinance.exceptions import YFRateLimitError, YFTickerMissingError

from mfs.errors import RateLimitedError, SourceError, SymbolNotFoundError
from mfs.market import BAR_COLUMNS, NY, check_interval

if TYPE_CHECKING:
    import curl_cffi.requests

# What yfinance fetches through: its own kind (curl_cffi), or a requests one (the offline Yahoo).
HttpSession: TypeAlias = "curl_cffi.requests.Session | requests.Session"
CHART_URL = "https://query2.finance.yahoo.com/v8/finance/chart/{symbol}"
_config_lock = threading.Lock()


class TransientSourceError(SourceError):
    """A timeout, connection error or damaged payload: worth another attempt."""


class NoBarsError(SymbolNotFoundError):
    """Yahoo answered without bars and without an error of its own (an empty window, or a
    symbol with no data in it); the caller decides whether bars were expected."""


def configure_yfinance() -> None:
    """Make yfinance raise typed errors instead of logging them and returning empty frames."""
    with _config_lock:
        yf.config.debug.hide_exceptions = False


def default_session() -> HttpSession:
    """A fresh session of yfinance's own kind (curl_cffi). Passed explicitly on every call:
    yfinance keeps one process-wide client that otherwise keeps the last session it was given
    (which could be an offline one)."""
    return new_session()


def clear_request_cache() -> None:
    """Drop yfinance's in-memory response cache (an LRU keyed by URL and params), so a new run
    never reuses an earlier run's answer for the same window."""
    YfData.cache_get.cache_clear()


class Chart(NamedTuple):
    """One answer: the bars (``BAR_COLUMNS``) and the corporate actions served with them."""

    bars: pd.DataFrame
    actions: pd.DataFrame  # kind ('split' | 'dividend'), ex_date (a New York session date), value


ACTION_COLUMNS = {"Stock Splits": "split", "Dividends": "dividend"}


def _actions(history: pd.DataFrame) -> pd.DataFrame:
    """The non-zero split and dividend cells of a yfinance frame, one row each. A split's value
    is shares after per share before (yfinance's numerator / denominator)."""
    parts = []
    for column, kind in ACTION_COLUMNS.items():
        if column in history.columns:
            values = pd.to_numeric(history[column], errors="coerce").fillna(0.0)
            hit = values.to_numpy() != 0
            if hit.any():
                index = pd.DatetimeIndex(history.index[hit])
                if index.tz is None:
                    index = index.tz_localize(NY)
                days = index.tz_convert(NY).tz_localize(None).normalize()
                parts.append(pd.DataFrame({"kind": kind, "ex_date": days, "value": values.to_numpy()[hit]}))
    if not parts:
        return pd.DataFrame(
            {"kind": pd.Series(dtype=object), "ex_date": pd.Series(dtype="datetime64[ns]"), "value": []}
        )
    return pd.concat(parts, ignore_index=True).drop_duplicates(["kind", "ex_date"], keep="last")


def _without_event_rows(history: pd.DataFrame) -> pd.DataFrame:
    """yfinance adds a row of NaN prices for an event dated after the last bar; it is no bar."""
    columns = [c for c in ACTION_COLUMNS if c in history.columns]
    if not columns or history.empty:
        return history
    event = (history[columns].fillna(0) != 0).any(axis=1)
    priceless = history[["Open", "High", "Low", "Close"]].isna().all(axis=1)
    return history.loc[~(event & priceless)]


def _frame(history: pd.DataFrame, interval: str) -> pd.DataFrame:
    if history.empty:
        return pd.DataFrame({c: [] for c in BAR_COLUMNS}).astype({"volume": np.int64})
    index = pd.DatetimeIndex(history.index)
    if index.tz is None:  # defensive: yfinance gives exchange-local aware timestamps
        index = index.tz_localize(NY)
    ts = index.tz_convert("UTC")
    # Yahoo sends no adjusted close for intraday bars; yfinance copies the close into
    # "Adj Close" then. Storing that copy would pass an unadjusted price off as adjusted.
    adj = history["Adj Close"].to_numpy(dtype=float) if interval == "1d" else np.full(len(history), np.nan)
    return pd.DataFrame(
        {
            "ts": ts,
            "open": history["Open"].to_numpy(dtype=float),
            "high": history["High"].to_numpy(dtype=float),
            "low": history["Low"].to_numpy(dtype=float),
            "close": history["Close"].to_numpy(dtype=float),
            "adj_close": adj,
            "volume": history["Volume"].to_numpy(),
        }
    ).reset_index(drop=True)


def yahoo_reason(symbol: str, session: HttpSession | None = None, timeout: float = 10.0) -> str | None:
    """Yahoo's own explanation for a symbol without data (``chart.error.description``).

    yfinance loses it when the symbol fails at its timezone lookup (it then reports
    "possibly delisted; no timezone found"), so ask the chart endpoint once more, through
    yfinance's own HTTP client (same cookie/crumb handling, same session).
    """
    try:
        resp = YfData(session=session).get(
            CHART_URL.format(symbol=symbol), params={"range": "5d", "interval": "1d"}, timeout=timeout
        )
        error = (resp.json().get("chart") or {}).get("error") or {}
    except Exception:  # the probe only improves a message; the original error still stands
        return None
    description = error.get("description")
    return f"{description} (HTTP {resp.status_code})" if description else None


def fetch_history(
    symbol: str, interval: str, start: pd.Timestamp, *, session: HttpSession | None = None, timeout: float = 30.0
) -> pd.DataFrame:
    """The bars of ``fetch_chart``."""
    return fetch_chart(symbol, interval, start, session=session, timeout=timeout).bars


def fetch_chart(
    symbol: str, interval: str, start: pd.Timestamp, *, session: HttpSession | None = None, timeout: float = 30.0
) -> Chart:
    """One attempt: bars of ``symbol`` from ``start`` to now (the partial current bar included)
    and the splits and dividends Yahoo serves with them.

    Bars have the columns ``BAR_COLUMNS`` (ts UTC). Raises RateLimitedError, TransientSourceError,
    SymbolNotFoundError (with Yahoo's reason) or SourceError.
    """
    check_interval(interval)
    configure_yfinance()
    try:
        ticker = yf.Ticker(symbol, session=session)
        history = ticker.history(
            start=pd.Timestamp(start).to_pydatetime(),
            interval=interval,
            auto_adjust=False,
            actions=True,
            repair=False,
            prepost=False,
            timeout=timeout,
        )
    except YFRateLimitError as exc:
        raise RateLimitedError(f"{symbol}: Yahoo rate limit (HTTP 429): {exc}") from exc
    except (requests.exceptions.Timeout, requests.exceptions.ConnectionError, TimeoutError) as exc:
        raise TransientSourceError(f"{symbol}: request failed: {type(exc).__name__}: {exc}") from exc
    except (json.JSONDecodeError, requests.exceptions.JSONDecodeError) as exc:
        raise TransientSourceError(f"{symbol}: Yahoo sent a malformed response (not JSON: {exc})") from exc
    except YFTickerMissingError as exc:  # YFPricesMissingError, YFTzMissingError
        reason = yahoo_reason(symbol, session)
        text = re.sub(r"\?\S*", "", str(exc))
        if reason:
            raise SymbolNotFoundError(f"{symbol}: Yahoo: {reason}") from exc
        raise NoBarsError(f"{symbol}: no bars from Yahoo (yfinance: {text})") from exc
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 429:
            raise RateLimitedError(f"{symbol}: Yahoo rate limit (HTTP 429)") from exc
        if status is not None and status >= 500:
            raise TransientSourceError(f"{symbol}: Yahoo HTTP {status}") from exc
        if status == 404:
            raise SymbolNotFoundError(f"{symbol}: {_explain(symbol, exc, session)}") from exc
        raise SourceError(f"{symbol}: Yahoo HTTP {status}: {exc}") from exc
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        # yfinance indexing into a payload that lacks what a chart answer must have
        raise TransientSourceError(f"{symbol}: Yahoo sent an unexpected payload ({type(exc).__name__}: {exc})") from exc
    except (sqlite3.OperationalError, peewee.OperationalError) as exc:
        # yfinance keeps its timezone and cookie caches in SQLite; fetch threads of one run can
        # collide on them ("database is locked"). Local and passing: another attempt succeeds.
        raise TransientSourceError(f"{symbol}: yfinance's local cache was busy ({exc})") from exc
    history = _without_event_rows(history)
    return Chart(_frame(history, interval), _actions(history))


def _explain(symbol: str, exc: Exception, session: HttpSession | None) -> str:
    reason = yahoo_reason(symbol, session)
    text = re.sub(r"\?\S*", "", str(exc))  # drop query strings (crumbs) from yfinance's URL
    return f"Yahoo: {reason}" if reason else f"yfinance: {text}"
