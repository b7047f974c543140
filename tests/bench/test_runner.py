"""``mfs bench`` end to end on a tiny universe: every figure is measured on a scratch database
that is dropped afterwards, and a figure from work that did not happen is refused. The community
edition adds storage, compression and split-rewrite figures; the Apache edition runs without them.
Point-in-time figures (revision cost, a year of revisions, training-set reads) are on both; only
their presence and sanity are checked here — never their speed, which is ``mfs bench``'s to measure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mfs import calendar
from mfs.bench import depths, pit, runner, scaling
from mfs.cli.bench import SUMMARY_KEYS, _side_by_side, is_timed
from mfs.features import compute
from mfs.storage.connection import connect, with_database
from mfs.storage.lifecycle import start_edition_cluster

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
    "year_revisions_uncompressed_mb",
    "year_revisions_compressed_chunks",
}
POINT_IN_TIME_TIMED = [
    "revisions_ingest_on_s",
    "revisions_ingest_off_s",
    "revisions_features_on_s",
    "revisions_features_off_s",
    "dataset_floor_s",
    "dataset_asof_s",
    "dataset_by_hand_s",
]
POINT_IN_TIME_RATIOS = [
    "revisions_ingest_ratio",
    "revisions_features_ratio",
    "year_revisions_vs_current",
    "dataset_asof_vs_floor",
    "dataset_by_hand_vs_floor",
]
MFS = str(Path(sys.executable).with_name("mfs"))


def _assert_point_in_time_figures(figures: dict, symbols: int, bars: int, rounds: int) -> None:
    """Every point-in-time figure is there and sane; one revision per stored hourly bar and feature
    row, and the training set read back whole both ways."""
    # The year, the new hour, the revision phase's catch-up hour and its hours on, off, off, on.
    stored = bars + symbols * (2 + 4 * rounds)
    assert figures["revisions_hour_symbols"] == symbols
    # Every bar but each symbol's last, still partial (no version superseded yet).
    assert figures["year_revisions_bar_rows"] == figures["year_revisions_feature_rows"] == stored - symbols
    assert "partial" in figures["year_revisions_model"]
    assert figures["dataset_entities"] == figures["dataset_asof_rows"] == figures["dataset_by_hand_rows"] == stored
    assert "dataset_rows_note" not in figures  # the backfilled store: both reads answer every entity
    for key in [*POINT_IN_TIME_TIMED, *POINT_IN_TIME_RATIOS]:
        assert figures[key] > 0, key
    for part in ("ingest", "features"):
        on, off = figures[f"revisions_{part}_on_s"], figures[f"revisions_{part}_off_s"]
        assert figures[f"revisions_{part}_ratio"] == pytest.approx(on / off, rel=0.1, abs=0.01)
    sizes = figures["year_revisions_bars_mb"] + figures["year_revisions_features_mb"]
    assert figures["year_revisions_mb"] == pytest.approx(sizes, abs=0.02)
    assert figures["dataset_asof_rows_per_s"] > 0 and figures["dataset_by_hand_rows_per_s"] > 0


def _bench_databases(db_url: str) -> set[str]:
    conn = connect(with_database(db_url, "postgres"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'mfs\\_bench\\_%'")
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def _bench_json(db_url: str, *args: str, timeout: int) -> tuple[dict, str]:
    """``mfs bench ARGS --json`` on the test server (it must succeed): the JSON object it ends with,
    and everything it printed."""
    result = subprocess.run(
        [MFS, "bench", *args, "--json"],
        env=os.environ | {"MFS_DATABASE_URL": db_url, "MFS_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout


@pytest.mark.slow
def test_bench_measures_every_figure_on_a_scratch_database_it_drops(db_url):
    before = _bench_databases(db_url)
    args = ("--symbols", "4", "--days", "20", "--baseline-symbols", "2", "--rounds", "1")
    summary, _ = _bench_json(db_url, *args, timeout=300)
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
    _assert_point_in_time_figures(summary | summary["details"], 4, summary["bars"], rounds=1)
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
    # The split symbol is served split-adjusted in the revision phase's hours (a jump would be quarantined).
    _assert_point_in_time_figures(result, 20, result["bars"], rounds=1)
    assert result["year_revisions_compressed_chunks"] >= 6  # both revision tables, as old as the compressed history
    assert 0 < result["year_revisions_mb"] < result["year_revisions_uncompressed_mb"]
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
    _assert_point_in_time_figures(result, 4, result["bars"], rounds=1)
    assert _bench_databases(server) == before


def test_the_revision_phase_simulates_runs_inside_successive_bars():
    after = runner._next_hour(runner.pinned_asof())
    clocks = pit.run_times(after, 12)  # past a session's 30-minute last bar into the next session
    assert clocks == sorted(clocks) and clocks[0] > after and len(set(clocks)) == 12
    starts = [pit._bar_start(clock) for clock in clocks]
    assert all(clock - start == pit.RUN_OFFSET for clock, start in zip(clocks, starts, strict=True))
    closes = calendar.bar_closes("1h", pd.DatetimeIndex(starts))
    assert all(clock < close for clock, close in zip(clocks, closes, strict=True))  # each run sees its bar partial


def test_a_benchmark_hour_is_refused_unless_it_completed_one_bar_and_kept_its_revisions_as_told(db):
    asof = runner.pinned_asof()
    symbols = runner.bench_symbols(2)
    runner._ingest(runner._frames(symbols, asof - pd.Timedelta(days=3), asof, asof), asof)
    compute(symbols, "1h", full=True)
    clocks = pit.run_times(asof, 3)
    pit._hour(symbols, asof, clocks[0], keep=True, split=None, check=False)  # the first partial bar
    on = pit._hour(symbols, clocks[0], clocks[1], keep=True, split=None)  # one revision per symbol, kept
    off = pit._hour(symbols, clocks[1], clocks[2], keep=False, split=None)  # none kept
    assert min(on + off) > 0
    # The same hour again changes nothing: no bar inserted or completed, no figure.
    with pytest.raises(RuntimeError, match=r"inserted, updated bars and feature rows written \(0, 0, 0\)"):
        pit._hour(symbols, clocks[1], clocks[2], keep=True, split=None)


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


def test_scales_measure_each_universe_on_its_own_scratch_database_against_linear(db_url):
    before = _bench_databases(db_url)
    out, _ = _bench_json(db_url, "--scales", "2,4", "--days", "10", timeout=300)
    small, large = out["scales"]
    assert (small["symbols"], large["symbols"], out["days"]) == (2, 4, 10)
    assert (small["runs"], large["runs"]) == (4, 1)  # the smallest scale twice before and after the other
    # The larger store's history batch had a control batch beside it (in a database dropped since).
    assert scaling.HISTORY_CONTROL not in small and large[scaling.HISTORY_CONTROL] > 0
    for scale in (small, large):
        assert scale["new_hour_bars"] == scale["symbols"]  # one new bar each, computed incrementally
        assert scale["bars"] > 0 and scale["product_peak_rss_mb"] > 0 and scale["noop_command_s"] > 0
        assert scale["vacuum_after_backfill_s"] > 0 and scale["autovacuums_during_new_hours"] >= 0
        assert scale["autovacuums_during_serving"] >= 0
        assert all(scale[f"{q}_p99_ms"] >= scale[f"{q}_p50_ms"] > 0 for q in ("latest_one", "latest_all"))
    assert small["vs_linear"] == dict.fromkeys(scaling.LINEAR_PHASES, 1.0)
    assert set(large["vs_linear"]) == set(scaling.LINEAR_PHASES)
    assert _bench_databases(db_url) == before


@pytest.mark.slow
def test_several_depths_are_measured_in_one_run_and_compared_at_each_scale(db_url):
    before = _bench_databases(db_url)
    out, printed = _bench_json(db_url, "--scales", "2,3", "--days", "5,10", timeout=600)
    assert [d["days"] for d in out["depths"]] == [5, 10]
    for depth in out["depths"]:
        assert [s["symbols"] for s in depth["scales"]] == [2, 3]
        assert all(s["new_hour_bars"] == s["symbols"] and s["bars"] > 0 for s in depth["scales"])
    assert set(out["vs_depth"]) == {"2", "3"}
    for ratios in out["vs_depth"].values():
        assert set(ratios["10"]) == set(depths.DEPTH_PHASES)
        assert all(r > 0 for r in ratios["10"].values())
    for title in ("scaling, 5 days of hourly bars", "scaling, 10 days of hourly bars", "depth, 2 symbols"):
        assert title in printed
    assert "aggregate_refresh_s\t" in printed.split("depth, 3 symbols")[1]
    assert _bench_databases(db_url) == before


def test_scales_that_are_not_increasing_numbers_are_refused_in_one_line():
    result = subprocess.run([MFS, "bench", "--scales", "500,abc"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("expected comma-separated numbers of symbols, got '500,abc'")


def test_several_depths_are_refused_in_one_line_without_scales_or_out_of_order():
    result = subprocess.run([MFS, "bench", "--days", "60,730"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith("several --days (60,730) are compared only with --scales")
    result = subprocess.run([MFS, "bench", "--scales", "2,4", "--days", "730,60"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("expected increasing positive numbers of days, got '730,60'")


def test_quality_measures_false_positives_sweeps_and_hits_on_clean_and_real_series():
    result = subprocess.run(
        [MFS, "bench", "--quality", "--json"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "quality checks on clean series: synthetic 1h" in result.stdout
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) == {"synthetic 1h", "synthetic 1d", "recorded 1d"}
    for corpus in figures.values():
        assert corpus["bars"] > 10_000 and corpus["held_back"] == 0
        assert len(corpus["injected"]) == 8 and all("/" in hit for hit in corpus["injected"].values())
    assert figures["synthetic 1h"]["findings"] == {}
    # the one doubt on the real bars is AAPL's real crash of 2000-09-29, stored
    assert figures["recorded 1d"]["findings"] == {"level_shift": 1}
    assert figures["recorded 1d"]["listed"][0].startswith("AAPL 2000-09-29 level_shift")
