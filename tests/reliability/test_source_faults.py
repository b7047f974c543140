"""Source faults through the offline Yahoo (the real yfinance code runs): 429 storms, timeouts,
malformed and truncated JSON, empty and delisted symbols. The failed symbols are reported with
their reason in symbol_runs, the others are stored, and a later run without faults completes the
store to exactly the state of a clean run."""

from __future__ import annotations

import pytest

from mfs.ingest import backfill
from mfs.storage.connection import connect
from tests.reliability.reliability_helpers import ASOF, duplicates, lost_rows, state

pytestmark = pytest.mark.faults

SYMBOLS = ("AAPL", "MSFT", "IBM", "KO", "PEP", "JPM", "XOM", "CVX", "WMT")
DAYS = 20
FAULTS = {
    "AAPL": "rate_limit",  # a 429 storm that outlasts every retry
    "MSFT": "rate_limit:3",  # a short storm: retried with backoff, then stored
    "IBM": "timeout",  # every request times out
    "KO": "timeout:2",  # two timeouts, then stored
    "PEP": "malformed",  # HTTP 200, not JSON
    "JPM": "truncated",  # HTTP 200, JSON cut in half
    "XOM": "empty",  # a result without bars
    "CVX": "delisted",  # HTTP 404 like Yahoo's unknown symbols
}
FAILING = {
    "AAPL": "rate limit",
    "IBM": "ReadTimeout",
    "PEP": "malformed",
    "JPM": "malformed",
    "XOM": "no bars",
    "CVX": "delisted",
}
RECOVERING = ("MSFT", "KO", "WMT")


def _symbol_runs(url: str, run_id: str) -> dict[tuple[str, str], tuple[str, str | None, int]]:
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT symbol, stage, status, reason, rows_written FROM symbol_runs WHERE run_id = %s", (run_id,)
            )
            return {(s, st): (status, reason, w) for s, st, status, reason, w in cur.fetchall()}
    finally:
        conn.close()


def test_failed_symbols_are_reported_the_rest_stored_and_a_clean_rerun_converges(db, fake_yahoo, reference):
    clean = reference(SYMBOLS, DAYS)

    faulty = backfill(list(SYMBOLS), days=DAYS, session=fake_yahoo(asof=ASOF, faults=FAULTS), raise_on_failure=False)

    assert faulty.extra["status"] == "failed"
    recorded = _symbol_runs(db, faulty.run_id)
    for symbol, reason in FAILING.items():
        for stage in ("collect_1h", "collect_1d"):
            status, text, written = recorded[(symbol, stage)]
            assert status == "failed" and reason.lower() in text.lower(), (symbol, stage, text)
            assert written == 0
    for symbol in RECOVERING:
        assert recorded[(symbol, "collect_1h")][0] == "ok"
    after_faults = state(db, ("market_data",))
    stored = {s for s, _ in after_faults.counts["market_data"]}
    assert stored == set(RECOVERING), "only the symbols whose faults were retried away are stored"
    for key, n in after_faults.counts["market_data"].items():
        assert n == clean.counts["market_data"][key], f"{key}: a stored symbol is complete"

    again = backfill(list(SYMBOLS), days=DAYS, session=fake_yahoo(asof=ASOF))

    assert again.extra["status"] == "completed"
    final = state(db, ("market_data",))
    assert final.checksums["market_data"] == clean.checksums["market_data"]
    assert lost_rows(clean, final, "market_data") == 0 and duplicates(db, "market_data") == 0
    # The re-run wrote only what was missing: nothing of the recovered symbols was rewritten.
    rerun = _symbol_runs(db, again.run_id)
    for symbol in RECOVERING:
        assert rerun[(symbol, "collect_1h")][2] == 0, symbol
    for symbol in FAILING:
        assert rerun[(symbol, "collect_1h")][2] == clean.counts["market_data"][(symbol, "1h")]
