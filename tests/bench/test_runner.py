"""``mfs bench`` end to end on a tiny universe: every figure is measured on a scratch database
that is dropped afterwards, and a figure from work that did not happen is refused. The community
edition adds storage, compression and split-rewrite figures; the Apache edition runs without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mfs.bench import runner
from mfs.cli.bench import SUMMARY_KEYS, _side_by_side, is_timed
from mfs.storage.connection import connect, with_database
from mfs.storage.localdb import start_edition_cluster

COMMUNITY_ONLY = {
    "compressed_chunks",
    "compress_s",
    "storage_bytes_uncompressed",
    "storage_bytes_compressed",
    "compression_ratio",
    "query_daily_1y_compressed_ms",
    "query_latest_compressed_ms",
    "query_raw_daily_ms",
    "query_raw_daily_compressed_ms",
    "chunks_compressed_before_split",
    "split_rewrite_s",
    "split_rewrite_bars",
    "chunks_compressed_after_split",
    "chunks_partial_after_split",
    "split_refresh_s",
    "split_aggregates_caught_up",
}
MFS = str(Path(sys.executable).with_name("mfs"))


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
        [MFS, "bench", "--symbols", "4", "--days", "20", "--baseline-symbols", "2", "--rounds", "1", "--json"],
        env=os.environ | {"MFS_DATABASE_URL": db_url, "MFS_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary) == {*SUMMARY_KEYS, "edition", "details"}
    frames = runner._frames(
        runner.bench_symbols(4),
        runner.pinned_asof() - pd.Timedelta(days=20),
        runner.pinned_asof(),
        runner.pinned_asof(),
    )
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


@pytest.mark.slow
@pytest.mark.edition("timescale")
def test_on_the_community_edition_the_history_is_compressed_and_a_split_rewrite_caught_up(db_url):
    before = _bench_databases(db_url)
    result = runner.run(20, 120, 2, 1)  # 120 days: several 30-day chunks end before the ingest window
    assert result["edition"] == "timescale"
    assert set(result) >= COMMUNITY_ONLY
    assert result["compressed_chunks"] >= 6  # market_data and features, three chunks or more each
    assert 0 < result["storage_bytes_compressed"] < result["storage_bytes_uncompressed"]
    sizes = result["storage_bytes_uncompressed"], result["storage_bytes_compressed"]
    assert result["compression_ratio"] == round(sizes[0] / sizes[1], 2)
    asof = runner.pinned_asof()
    history = runner._frames(["B0000"], asof - pd.Timedelta(days=120), runner._next_hour(asof), runner._next_hour(asof))
    assert result["split_rewrite_bars"] == len(history["B0000"])  # the whole history, the new hour included
    assert result["split_aggregates_caught_up"] is True
    # market_data's chunks stay compressed; the rewritten symbol's rows sit uncompressed beside the batches.
    assert result["chunks_compressed_after_split"] == result["chunks_compressed_before_split"] >= 3
    assert 0 < result["chunks_partial_after_split"] <= result["chunks_compressed_after_split"]
    for key in (k for k in result if is_timed(k) and k != "generate_s"):
        assert result[key] > 0, key
    assert _bench_databases(db_url) == before


@pytest.mark.slow
def test_on_the_apache_edition_the_benchmark_runs_without_compression_figures():
    server = start_edition_cluster("apache")
    before = _bench_databases(server)
    result = runner.run(4, 20, 2, 1, server=server)
    assert result["edition"] == "apache"
    assert not COMMUNITY_ONLY & set(result)
    for key in SUMMARY_KEYS:
        assert result[key] > 0, key
    assert _bench_databases(server) == before


def test_an_edition_is_refused_when_the_store_is_an_external_server(db_url):
    result = subprocess.run(
        [MFS, "bench", "--edition", "apache", "--symbols", "2"],
        env=os.environ | {"MFS_DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("mfs: error: ") and "MFS_DATABASE_URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_without_ta_the_benchmark_says_in_one_line_how_to_install_its_baseline():
    # An interpreter where `ta` cannot be imported (a None entry in sys.modules hides a module).
    hide_ta = "import sys; sys.modules['ta'] = None; from mfs.cli.main import main; sys.exit(main(['bench']))"
    result = subprocess.run([sys.executable, "-c", hide_ta], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert (
        result.stderr.strip() == "mfs: error: the benchmark's baseline needs the ta package: pip install 'mfs[bench]'"
    )


def test_side_by_side_rows_have_a_column_per_edition_and_a_ratio_for_durations_only():
    community = {"edition": "timescale", "ingest_rows_per_s": 200, "aggregate_refresh_s": 0.5, "compress_s": 1.0}
    apache = {"edition": "apache", "ingest_rows_per_s": 100, "aggregate_refresh_s": 2.0}
    rows = {row[0]: row[1:4] for row in _side_by_side({"timescale": community, "apache": apache})}
    assert rows["aggregate_refresh_s"] == (0.5, 2.0, 4.0)
    assert rows["ingest_rows_per_s"] == (200, 100, "")  # a rate, not a duration
    assert rows["compress_s"] == (1.0, None, "")  # community only: blank for apache
    assert rows["edition"] == ("timescale", "apache", "")
