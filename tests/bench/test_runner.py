"""``mfs bench`` end to end on a tiny universe: every figure is measured on a scratch database
that is dropped afterwards, and a figure from work that did not happen is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mfs.bench import runner
from mfs.cli.bench import SUMMARY_KEYS
from mfs.storage.connection import connect, with_database


def _bench_databases(db_url: str) -> set[str]:
    conn = connect(with_database(db_url, "postgres"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'mfs\\_bench\\_%'")
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


@pytest.mark.slow
def test_bench_measures_every_figure_on_a_scratch_database_it_drops(db_url):
    before = _bench_databases(db_url)
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mfs")), "bench", "--symbols", "4", "--days", "20", "--baseline-symbols", "2",
         "--rounds", "1", "--json"],
        env=os.environ | {"MFS_DATABASE_URL": db_url, "MFS_LOG_FORMAT": "json"},
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {*SUMMARY_KEYS, "details"}
    frames = runner._frames(runner.bench_symbols(4), runner.pinned_asof() - pd.Timedelta(days=20),
                            runner.pinned_asof(), runner.pinned_asof())
    assert (summary["symbols"], summary["bars"]) == (4, sum(len(f) for f in frames.values()))
    assert summary["details"]["new_hour_bars"] == 4  # one new bar per symbol, stored (not quarantined)
    for key in SUMMARY_KEYS:
        assert summary[key] > 0, key
    assert _bench_databases(db_url) == before


def test_a_benchmark_ingest_that_stores_fewer_bars_than_given_is_refused(db):
    asof = runner.pinned_asof()
    frames = runner._frames(runner.bench_symbols(2), asof - pd.Timedelta(days=3), asof, asof)
    # As of a day earlier, the last day's bars are in the future: quarantined, not stored.
    with pytest.raises(RuntimeError, match=r"stored \d+ of \d+ bars \(quarantined \d+: \{'future'"):
        runner._ingest(frames, asof - pd.Timedelta(days=1))
