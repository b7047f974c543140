"""symbol_runs as a run records it: every result once, a retried recording replacing the first."""

from __future__ import annotations

import pytest

from mfs.runs import SymbolResult, new_run_id, record_results, start_run

# What COPY's text format would misread unescaped: a tab, line breaks, backslashes, its NULL.
ODD_REASON = "ValueError: tab\there\nnext line\r\\N and C:\\path"


def _stored(conn, run_id: str) -> dict[tuple[str, str], tuple]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT symbol, stage, status, reason, rows_fetched, rows_inserted, rows_updated, rows_quarantined, "
            "rows_written, duration_s FROM symbol_runs WHERE run_id = %s",
            (run_id,),
        )
        return {(s, stage): tuple(rest) for s, stage, *rest in cur.fetchall()}


def test_results_are_recorded_once_and_a_second_recording_replaces_them(conn):
    run_id = new_run_id()
    start_run(run_id, "features", {})
    first = [
        SymbolResult("AAA", "features_1h", "ok", fetched=297, inserted=1, written=1, duration_s=0.25),
        SymbolResult("BBB", "features_1h", "failed", reason="worker killed by SIGKILL", duration_s=0.5),
        SymbolResult("AAA", "features_1d", "skipped", reason="no 1d bars stored"),
        SymbolResult("CCC", "features_1h", "failed", reason=ODD_REASON, duration_s=float("nan")),
        SymbolResult("AAA", "features_1h", "ok", fetched=297, inserted=2, updated=1, written=3, duration_s=0.5),
    ]
    record_results(run_id, first)
    assert _stored(conn, run_id) == {
        ("AAA", "features_1h"): ("ok", None, 297, 2, 1, 0, 3, 0.5),  # the later of the two
        ("BBB", "features_1h"): ("failed", "worker killed by SIGKILL", 0, 0, 0, 0, 0, 0.5),
        ("AAA", "features_1d"): ("skipped", "no 1d bars stored", 0, 0, 0, 0, 0, 0.0),
        ("CCC", "features_1h"): ("failed", ODD_REASON, 0, 0, 0, 0, 0, pytest.approx(float("nan"), nan_ok=True)),
    }
    conn.commit()
    # A retry after the run's final status failed to be written records the results again.
    record_results(run_id, [SymbolResult("BBB", "features_1h", "ok", fetched=10, quarantined=2, written=8)])
    stored = _stored(conn, run_id)
    assert stored[("BBB", "features_1h")] == ("ok", None, 10, 0, 0, 2, 8, 0.0)
    assert len(stored) == 4
