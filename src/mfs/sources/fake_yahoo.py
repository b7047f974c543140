"""The offline Yahoo: a ``requests`` transport adapter answering yfinance's own URLs.

Mounted on a ``requests.Session`` handed to yfinance (``synthetic_session()``), it lets the real
yfinance code — cookie, crumb, chart request, JSON parsing, timezone handling, its own retry —
run against the synthetic market (``mfs.sources.synthetic``) with no network. It answers:

- ``https://fc.yahoo.com`` (cookie; we set none, so yfinance's persistent cookie cache is never
  polluted with a fake cookie that it would later send to the real Yahoo),
- ``/v1/test/getcrumb`` (a crumb), ``guce.yahoo.com`` consent pages (no form, like a region
  without consent walls),
- ``/v8/finance/chart/{SYMBOL}`` with ``period1``/``period2`` or ``range`` and ``interval``
  (``1h``/``60m``/``1d``): Yahoo-shaped chart JSON (``meta`` with ``exchangeTimezoneName``,
  ``validRanges``, ``tradingPeriods``; ``timestamp``; ``indicators.quote``; ``adjclose`` for
  daily bars only, as Yahoo does). Daily timestamps are the session's open, as Yahoo sends them.
- Yahoo's own refusals: an unknown symbol gets HTTP 404 ``No data found, symbol may be
  delisted``; a 1h request older than 730 days gets HTTP 422; anything else 404.

Known symbols: ``DEFAULT_UNIVERSE`` (real US tickers), the configured ``symbols`` and every
symbol named in ``faults`` (except those whose fault is ``delisted``).

Fault injection and events — ``faults`` maps a symbol to one item or a list of items (strings):
faults of the transport (``rate_limit``, ``timeout``, ``malformed``, ``truncated``, ``empty``,
``delisted``), defects and revisions of the bars (``bad_bars``, ``correct``, ``spike``,
``stale``, ``missing``, ``daily_off``) and corporate events (``split``, ``unadjusted_split``,
``phantom_split``, ``dividend``, ``level_shift``); their syntax and effects are tabled in
``mfs.sources.fake_faults``. The chart carries Yahoo's ``events`` (dividends, splits) for 1h and
1d alike: the synthetic market's own quarterly dividends (``synthetic_dividends``) and those of
``faults``.

From a shell, ``MFS_SYNTHETIC_FAULTS`` sets them for every offline run of the process (a JSON
object in the same shape, e.g. ``MFS_SYNTHETIC_FAULTS='{"KO": "delisted", "PEP":
"split:2025-10-20:4"}' mfs collect --offline``), so drills need no Python; a value that does not
parse is refused with one line naming the variable.

Counted faults count HTTP requests for that symbol's chart (yfinance retries a failed request
once itself, so one yfinance call can consume two). ``SyntheticYahoo.requests`` logs every
request path for tests that want to count attempts.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pandas as pd
import requests
from requests.adapters import BaseAdapter

from mfs.calendar import TimeLike, nyse
from mfs.config import get_config
from mfs.errors import ConfigError
from mfs.market import INTERVALS, NY, YAHOO_HOURLY_DAYS
from mfs.sources.fake_faults import BAD_BAR_KINDS as BAD_BAR_KINDS
from mfs.sources.fake_faults import FaultSpec as FaultSpec
from mfs.sources.fake_faults import chart_events, parse_faults, served_bars
from mfs.sources.fake_faults import corrected as corrected
from mfs.sources.fake_faults import corrupt as corrupt
from mfs.sources.fake_faults import split_adjusted as split_adjusted
from mfs.sources.synthetic import _utc, default_asof, synthetic_bars, synthetic_dividends

# BAD_BAR_KINDS, FaultSpec, corrected, corrupt and split_adjusted moved to fake_faults; the
# ``X as X`` imports above keep them importable from here.

# Real US tickers the offline Yahoo knows besides the configured ones (large caps and ETFs).
_TICKERS = """
AAPL MSFT NVDA AMZN GOOGL GOOG META BRK-B JPM XOM JNJ V MA UNH HD PG COST ABBV LLY AVGO MRK
PEP KO WMT BAC CVX ORCL CRM ADBE NFLX AMD INTC CSCO QCOM TXN IBM ACN TMO ABT DHR MCD NKE DIS
VZ T CMCSA PFE BMY AMGN GILD MDT HON UNP UPS CAT DE GE BA LMT RTX MMM GS MS C WFC SCHW AXP
BLK SPGI PYPL INTU NOW AMAT MU ADI LRCX KLAC SBUX LOW TGT BKNG ISRG SYK ZTS CVS CI ELV MO PM
CL KMB GIS NEE DUK SO D AMT PLD CCI SPY QQQ IWM DIA TSLA F GM UBER ABNB SNOW PLTR SHOP
"""
DEFAULT_UNIVERSE = tuple(_TICKERS.split())

FAULTS_ENV = "MFS_SYNTHETIC_FAULTS"
VALID_RANGES = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
_RANGE_DAYS = {
    "1d": 1,
    "5d": 5,
    "1mo": 31,
    "3mo": 92,
    "6mo": 183,
    "1y": 366,
    "2y": 731,
    "5y": 1827,
    "10y": 3653,
    "ytd": 366,
    "max": 9000,
}
_NOT_FOUND = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
# Bars of a provider: (symbol, interval, start, end, asof) -> frame like synthetic_bars, or None
# when the provider does not know the symbol.
Provider = Callable[[str, str, pd.Timestamp, pd.Timestamp, pd.Timestamp], "pd.DataFrame | None"]
# A provider's dividends: (symbol, start, end, asof) -> frame like synthetic_dividends.
Dividends = Callable[[str, pd.Timestamp, pd.Timestamp, pd.Timestamp], pd.DataFrame]


def _response(
    request: requests.PreparedRequest,
    status: int,
    body: bytes | str,
    content_type: str = "application/json;charset=utf-8",
) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body.encode() if isinstance(body, str) else body
    resp.headers["Content-Type"] = content_type
    resp.url = request.url or ""
    resp.request = request
    resp.encoding = "utf-8"
    resp.reason = {200: "OK", 404: "Not Found", 422: "Unprocessable Entity", 429: "Too Many Requests"}.get(status, "")
    return resp


def _error_body(error: dict) -> str:
    return json.dumps({"chart": {"result": None, "error": error}})


def _periods(days: pd.DatetimeIndex, gmtoffsets: np.ndarray) -> list[list[dict]]:
    cal = nyse()
    out = []
    for day, off in zip(days, gmtoffsets, strict=False):
        open_, close = cal.session_open(day), cal.session_close(day)
        out.append(
            [
                {
                    "timezone": "EDT" if off == -14400 else "EST",
                    "gmtoffset": int(off),
                    "start": int(open_.timestamp()),
                    "end": int(close.timestamp()),
                }
            ]
        )
    return out


class SyntheticYahoo(BaseAdapter):
    """Answers yfinance's Yahoo URLs from ``provider`` (the synthetic market by default) and
    its dividends (``dividends``; by default the synthetic market's own with the default
    provider, none with another)."""

    def __init__(
        self,
        asof: TimeLike | None = None,
        faults: Mapping[str, str | Iterable[str]] | None = None,
        provider: Provider | None = None,
        universe: Iterable[str] | None = None,
        source_name: str = "synthetic",
        dividends: Dividends | None = None,
    ) -> None:
        super().__init__()
        self.source_name = source_name  # what market_data.source says for bars served here
        self._asof = _utc(asof) if asof is not None else None
        self.faults = parse_faults(faults)
        self.provider = provider or _synthetic_provider
        self.dividends = dividends or (synthetic_dividends if provider is None else None)
        self.universe = set(universe) if universe is not None else _default_universe()
        self.universe |= {s for s, f in self.faults.items() if "delisted" not in f}
        self.requests: list[str] = []
        self.chart_requests: Counter = Counter()
        self._lock = threading.Lock()
        self._served: dict[str, int] = defaultdict(int)

    @property
    def asof(self) -> pd.Timestamp:
        return self._asof if self._asof is not None else default_asof()

    def close(self) -> None:  # BaseAdapter API
        pass

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = urlsplit(request.url or "")  # a prepared request always has its url
        with self._lock:
            self.requests.append(f"{url.hostname}{url.path}")
        if url.hostname == "fc.yahoo.com":
            return _response(request, 200, "", "text/html")
        if url.path.endswith("/v1/test/getcrumb"):
            return _response(request, 200, "synthetic-crumb", "text/plain")
        if url.hostname and url.hostname.endswith(("guce.yahoo.com", "consent.yahoo.com")):
            return _response(request, 200, "<html><body>no consent needed</body></html>", "text/html")
        if url.path.startswith("/v8/finance/chart/"):
            symbol = unquote(url.path.rsplit("/", 1)[1]).upper()
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            return self._chart(request, symbol, params)
        return _response(
            request,
            404,
            json.dumps(
                {
                    "finance": {
                        "result": None,
                        "error": {"code": "Not Found", "description": f"HTTP 404 Not Found: {url.path}"},
                    }
                }
            ),
        )

    # -- chart ---------------------------------------------------------------------------------
    def _take(self, symbol: str, kind: str) -> bool:
        """Whether fault ``kind`` fires for this request (consuming one of N when counted)."""
        spec = self.faults.get(symbol, {})
        if kind not in spec:
            return False
        remaining = spec[kind]
        if remaining == -1:
            return True
        with self._lock:
            if remaining > 0:
                spec[kind] = remaining - 1
                return True
        return False

    def _chart(self, request: requests.PreparedRequest, symbol: str, params: dict[str, str]) -> requests.Response:
        with self._lock:
            self.chart_requests[symbol] += 1
        if self._take(symbol, "timeout"):
            raise requests.exceptions.ReadTimeout(f"synthetic timeout for {symbol}")
        if self._take(symbol, "rate_limit"):
            return _response(request, 429, "Too Many Requests\r\n", "text/plain")
        if symbol not in self.universe or self._take(symbol, "delisted"):
            return _response(request, 404, _error_body(_NOT_FOUND))
        if self._take(symbol, "malformed"):
            return _response(request, 200, '{"chart": {"result": [{"meta": }]}}')
        interval = "1h" if params.get("interval", "1d") == "60m" else params.get("interval", "1d")
        asof = self.asof
        start, end = _window(params, asof)
        refusal = _refusal(interval, start, end, asof)
        if refusal:
            return _response(request, 422, _error_body({"code": "Unprocessable Entity", "description": refusal}))
        end = min(end, asof + pd.Timedelta(seconds=1))
        empty = self._take(symbol, "empty")
        bars = None if empty else self.provider(symbol, interval, start, end, asof)
        if bars is None and not empty:
            return _response(request, 404, _error_body(_NOT_FOUND))
        events: dict = {}
        if bars is not None and not bars.empty:
            spec = self.faults.get(symbol, {})

            def fetch(interval: str, ts: pd.Timestamp) -> pd.DataFrame | None:
                return self.provider(symbol, interval, ts, ts + pd.Timedelta(seconds=1), asof)

            bars = served_bars(bars, interval, spec, asof, fetch)
            # A day's margin: an hourly chart's first session may have its label before start.
            own = self.dividends(symbol, start - pd.Timedelta(days=1), end, asof) if self.dividends else None
            events = chart_events(interval, spec, (start, end), asof, own, fetch)
        body = json.dumps(self._chart_json(symbol, interval, bars, asof, params, events))
        if self._take(symbol, "truncated"):
            body = body[: len(body) // 2]
        return _response(request, 200, body)

    def _chart_json(
        self,
        symbol: str,
        interval: str,
        bars: pd.DataFrame | None,
        asof: pd.Timestamp,
        params: dict[str, str],
        events: dict,
    ) -> dict:
        cal = nyse()
        meta: dict = {
            "currency": "USD",
            "symbol": symbol,
            "exchangeName": "NYQ",
            "fullExchangeName": "NYSE",
            "instrumentType": "EQUITY",
            "firstTradeDate": 946909800,
            "regularMarketTime": int(asof.timestamp()),
            "hasPrePostMarketData": True,
            "gmtoffset": int(asof.tz_convert(NY).utcoffset().total_seconds()),
            "timezone": asof.tz_convert(NY).tzname(),
            "exchangeTimezoneName": NY,
            "priceHint": 2,
            "dataGranularity": "1h" if interval == "1h" else "1d",
            "range": params.get("range", ""),
            "validRanges": VALID_RANGES,
        }
        result: dict = {"meta": meta}
        if bars is None or bars.empty:
            result["indicators"] = {"quote": [{}], **({"adjclose": [{}]} if interval == "1d" else {})}
            return {"chart": {"result": [result], "error": None}}
        last = bars.iloc[-1]
        meta["regularMarketPrice"] = float(last["close"]) if np.isfinite(last["close"]) else None
        ts = pd.DatetimeIndex(bars["ts"])
        if interval == "1d":
            # Yahoo stamps a daily bar with the session's open; yfinance turns it back into a date.
            stamps = []
            for label in ts:
                day = label.tz_convert(NY).tz_localize(None).normalize()
                stamps.append(cal.session_open(day) if cal.is_session(day) else label)
            stamps = pd.DatetimeIndex(stamps)
        else:
            stamps = ts
            days = pd.DatetimeIndex([d for d in sessions_of(ts) if cal.is_session(d)])
            offsets = np.array([int(pd.Timestamp(d).tz_localize(NY).utcoffset().total_seconds()) for d in days])
            meta["tradingPeriods"] = _periods(days, offsets)

        def col(name: str) -> list[float | None]:
            return [None if not np.isfinite(v) else float(v) for v in bars[name].to_numpy(dtype=float)]

        result["timestamp"] = [int(s.timestamp()) for s in stamps]
        if events:
            result["events"] = events
        result["indicators"] = {
            "quote": [
                {
                    "open": col("open"),
                    "high": col("high"),
                    "low": col("low"),
                    "close": col("close"),
                    "volume": [None if not np.isfinite(v) else int(v) for v in bars["volume"].to_numpy(dtype=float)],
                }
            ]
        }
        if interval == "1d":
            result["indicators"]["adjclose"] = [{"adjclose": col("adj_close")}]
        return {"chart": {"result": [result], "error": None}}


def _window(params: dict[str, str], asof: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of a chart request: ``period1``/``period2``, or ``range`` back from asof."""
    if "period1" in params:
        start = pd.Timestamp(int(params["period1"]), unit="s", tz="UTC")
        end = pd.Timestamp(int(params.get("period2", int(asof.timestamp()) + 1)), unit="s", tz="UTC")
        return start, end
    end = asof + pd.Timedelta(seconds=1)
    return end - pd.Timedelta(days=_RANGE_DAYS.get(params.get("range", "1mo"), 31)), end


def _refusal(interval: str, start: pd.Timestamp, end: pd.Timestamp, asof: pd.Timestamp) -> str | None:
    """Yahoo's HTTP 422 description for a request it refuses, or None."""
    if interval not in INTERVALS:
        return f"Invalid input - interval={interval} is not supported by the offline Yahoo"
    if interval == "1h" and start < asof - pd.Timedelta(days=YAHOO_HOURLY_DAYS):
        return (
            f"1h data not available for startTime={int(start.timestamp())} "
            f"and endTime={int(end.timestamp())}. "
            f"The requested range must be within the last {YAHOO_HOURLY_DAYS} days."
        )
    return None


def sessions_of(ts: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The distinct New York session dates of some UTC timestamps (naive dates)."""
    return pd.DatetimeIndex(sorted(set(ts.tz_convert(NY).tz_localize(None).normalize())))


def _default_universe() -> set[str]:
    return set(DEFAULT_UNIVERSE) | set(get_config().symbols)


def _synthetic_provider(
    symbol: str, interval: str, start: pd.Timestamp, end: pd.Timestamp, asof: pd.Timestamp
) -> pd.DataFrame:
    return synthetic_bars(symbol, interval, start, end, asof)


def _mount(adapter: SyntheticYahoo) -> requests.Session:
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.synthetic_yahoo = adapter  # type: ignore[attr-defined]  # tests read its request log
    return session


def synthetic_session(
    asof: TimeLike | None = None, faults: Mapping[str, str | Iterable[str]] | None = None
) -> requests.Session:
    """A ``requests.Session`` whose Yahoo is the synthetic market as of ``asof``.

    ``asof`` defaults to MFS_SYNTHETIC_ASOF or now (read at every request, so a long-lived
    session follows the clock); ``faults`` as documented in this module, by default those of
    MFS_SYNTHETIC_FAULTS.
    """
    return _mount(SyntheticYahoo(asof=asof, faults=faults if faults is not None else faults_from_environment()))


def faults_from_environment() -> dict[str, str | list[str]] | None:
    """MFS_SYNTHETIC_FAULTS as a faults mapping (None when unset); ConfigError naming the variable
    and what is wrong when it does not parse."""
    raw = os.environ.get(FAULTS_ENV, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{FAULTS_ENV} is not JSON ({exc.msg}): expected an object like "
            '{"KO": "delisted", "PEP": ["rate_limit:2", "split:2025-10-20:4"]}'
        ) from None
    if not isinstance(value, dict) or not all(isinstance(v, (str, list)) for v in value.values()):
        raise ConfigError(f"{FAULTS_ENV} must map symbols to a fault or a list of faults, got {raw!r}")
    try:
        parse_faults(value)
    except ValueError as exc:
        raise ConfigError(f"{FAULTS_ENV}: {exc}") from None
    return value
