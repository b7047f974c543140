"""Aggregates equal a from-scratch GROUP BY over the raw hypertables after ingest, a late
backfill, a correction and a deletion; New York day/week buckets across a half day and DST.

Runs on either edition: the continuous aggregates on the community license, the trigger rollups
on the Apache edition (``./scripts/test`` runs this module on both); edition-specific tests are
marked and deselected on the other edition.
"""

from __future__ import annotations

import pandas as pd
import pytest

from mfs import aggregates, provisioning
from mfs.config import get_config
from mfs.errors import DateError, StorageError
from mfs.market import NY
from mfs.storage.connection import connect
from tests.aggregates.aggregate_helpers import execute, make_bars, query, write_bars, write_features

SYMBOLS = ("AAPL", "MSFT")
# Four weeks around the 2024-03-10 DST change, two around the 2024-11-29 half day.
RANGES = (("2024-02-26", "2024-03-22"), ("2024-11-25", "2024-12-06"))


def _ingest(url: str) -> None:
    for i, symbol in enumerate(SYMBOLS):
        for j, (start, end) in enumerate(RANGES):
            bars = make_bars(symbol, start, end, seed=10 * i + j, scale=1 + i)
            write_bars(url, bars)
            write_features(url, bars)


def test_ingest_backfill_correction_delete_match_group_by(agg_db, edition, assert_aggregates_match) -> None:
    def before_refresh() -> None:
        # Apache views compute every invalidated bucket live, so they are current before the
        # refresh. A continuous aggregate's real-time part only covers buckets above its
        # watermark: late data and corrections below it wait for the refresh (by design).
        if edition == "apache":
            assert_aggregates_match(agg_db)

    _ingest(agg_db)
    before_refresh()
    aggregates.refresh()
    assert_aggregates_match(agg_db)

    # A late backfill of an older week, written after the newer data was aggregated.
    late = make_bars("AAPL", "2024-02-12", "2024-02-16", seed=99)
    write_bars(agg_db, late)
    write_features(agg_db, late)
    before_refresh()
    result = aggregates.refresh()
    if result["edition"] == "apache":  # only the five invalidated days (and their week) recomputed
        assert result["buckets"] == {"ohlcv_1d": 5, "ohlcv_1w": 1, "features_1d": 5}
        assert result["removed"] == {"ohlcv_1d": 0, "ohlcv_1w": 0, "features_1d": 0}
    assert_aggregates_match(agg_db)

    # An upsert correction of one bar: new high, close and volume.
    bar = make_bars("MSFT", "2024-03-13", "2024-03-13", seed=1, scale=2).iloc[[3]].copy()
    old = query(
        agg_db,
        "SELECT high, close, volume FROM market_data WHERE symbol = 'MSFT' AND ts = %s",
        (bar["ts"].iloc[0].to_pydatetime(),),
    )[0]
    bar["close"], bar["high"], bar["volume"] = old[0] * 1.5, old[0] * 1.6, old[2] + 12345
    bar["open"], bar["low"] = old[0] * 1.4, old[0] * 1.3
    assert write_bars(agg_db, bar).updated == 1
    before_refresh()
    aggregates.refresh()
    assert_aggregates_match(agg_db)
    assert query(agg_db, "SELECT high, volume FROM ohlcv_1d WHERE symbol = 'MSFT' AND day = '2024-03-13 04:00+00'") == [
        (
            pytest.approx(old[0] * 1.6),
            query(
                agg_db,
                """SELECT sum(volume) FROM market_data WHERE symbol = 'MSFT'
            AND interval = '1h' AND ts >= '2024-03-13 04:00+00' AND ts < '2024-03-14 04:00+00'""",
            )[0][0],
        )
    ]

    # Deleting a whole day (and its features) removes its buckets; nothing stale remains.
    for table in ("market_data", "features"):
        query_delete(
            agg_db,
            f"DELETE FROM {table} WHERE symbol = 'AAPL' AND ts >= '2024-12-02 05:00+00' AND ts < '2024-12-03 05:00+00'",
        )
    before_refresh()
    aggregates.refresh()
    assert_aggregates_match(agg_db)
    assert query(agg_db, "SELECT count(*) FROM ohlcv_1d WHERE symbol = 'AAPL' AND day = '2024-12-02 05:00+00'") == [
        (0,)
    ]


def query_delete(url: str, statement: str) -> None:

    conn = connect(url)
    with conn.cursor() as cur:
        cur.execute(statement)
        assert cur.rowcount > 0
    conn.commit()
    conn.close()


def test_half_day_and_dst_week_buckets(agg_db) -> None:
    _ingest(agg_db)
    aggregates.refresh()
    # 2024-11-29 closes at 13:00: four bars (09:30 … 12:30), in the day that starts at NY midnight (EST).
    row = query(
        agg_db,
        "SELECT day, bar_count FROM ohlcv_1d WHERE symbol = 'AAPL' AND day >= '2024-11-29' AND day < '2024-11-30'",
    )
    assert row == [(pd.Timestamp("2024-11-29 05:00", tz="UTC"), 4)]
    # Thanksgiving week: Mon–Wed 7 bars, Thursday closed, Friday 4.
    assert query(
        agg_db, "SELECT week, bar_count FROM ohlcv_1w WHERE symbol = 'AAPL' AND week = '2024-11-25 05:00+00'"
    ) == [(pd.Timestamp("2024-11-25 05:00", tz="UTC"), 25)]
    # DST starts Sunday 2024-03-10: the week of Monday 03-11 starts at 04:00 UTC (EDT), the one
    # before at 05:00 UTC (EST); each holds exactly its five sessions of seven bars.
    weeks = query(
        agg_db,
        """SELECT week, bar_count FROM ohlcv_1w WHERE symbol = 'MSFT'
                             AND week BETWEEN '2024-03-04' AND '2024-03-12' ORDER BY week""",
    )
    assert weeks == [(pd.Timestamp("2024-03-04 05:00", tz="UTC"), 35), (pd.Timestamp("2024-03-11 04:00", tz="UTC"), 35)]
    days = query(
        agg_db,
        """SELECT day FROM ohlcv_1d WHERE symbol = 'MSFT' AND day >= '2024-03-07' AND day < '2024-03-13'
                            ORDER BY day""",
    )
    assert [d[0].strftime("%m-%d %H:%M") for d in days] == ["03-07 05:00", "03-08 05:00", "03-11 04:00", "03-12 04:00"]
    # The 09:30 EDT bar of 03-11 is at 13:30 UTC and opens that day.
    first = query(
        agg_db, "SELECT open FROM market_data WHERE symbol = 'MSFT' AND interval = '1h' AND ts = '2024-03-11 13:30+00'"
    )
    assert query(agg_db, "SELECT open FROM ohlcv_1d WHERE symbol = 'MSFT' AND day = '2024-03-11 04:00+00'") == first


@pytest.mark.edition("apache")
def test_refresh_is_idempotent_and_consumes_the_log(agg_db, assert_aggregates_match) -> None:
    _ingest(agg_db)
    assert query(agg_db, "SELECT count(*) > 0 FROM aggregate_invalidations") == [(True,)]
    first = aggregates.refresh()
    assert first["buckets"]["ohlcv_1d"] == query(agg_db, "SELECT count(*) FROM ohlcv_1d")[0][0] > 0
    assert query(agg_db, "SELECT count(*) FROM aggregate_invalidations") == [(0,)]
    again = aggregates.refresh()
    assert again["buckets"] == {"ohlcv_1d": 0, "ohlcv_1w": 0, "features_1d": 0}
    # Re-writing identical bars changes no row, so nothing is logged and nothing recomputed.
    write_bars(agg_db, make_bars("AAPL", *RANGES[0], seed=0))
    assert query(agg_db, "SELECT count(*) FROM aggregate_invalidations") == [(0,)]
    assert_aggregates_match(agg_db)


@pytest.mark.edition("apache")
def test_explicit_window_recomputes_every_bucket_in_it(agg_db, assert_aggregates_match) -> None:
    _ingest(agg_db)
    aggregates.refresh()
    # Lose materialized rows behind the log's back (as after a restore of an old dump) …
    query_delete(agg_db, "DELETE FROM ohlcv_1d_rollup WHERE day >= '2024-03-04' AND day < '2024-03-09'")
    query_delete(agg_db, "DELETE FROM ohlcv_1w_rollup WHERE week >= '2024-03-04' AND week < '2024-03-09'")
    query_delete(agg_db, "DELETE FROM features_1d_rollup WHERE day >= '2024-03-04' AND day < '2024-03-09'")
    # … a refresh of pending changes does not know; a window refresh does.
    assert aggregates.refresh()["buckets"]["ohlcv_1d"] == 0
    result = aggregates.refresh("2024-03-04", "2024-03-09")  # bare dates: New York days
    assert result["buckets"] == {"ohlcv_1d": 10, "ohlcv_1w": 2, "features_1d": 10}
    assert_aggregates_match(agg_db)


def test_refresh_rejects_a_bad_window(agg_db) -> None:
    with pytest.raises(StorageError, match="give both start and end"):
        aggregates.refresh(start="2024-01-01")
    with pytest.raises(StorageError, match="is not before"):
        aggregates.refresh("2024-02-01", "2024-01-01")
    with pytest.raises(DateError, match="not a date"):
        aggregates.refresh("yesterday-ish", "2024-01-01")


@pytest.mark.edition("timescale")
def test_community_license_continuous_aggregates(agg_db) -> None:
    """The same public names are real continuous aggregates with real-time aggregation, and the
    policies come from config (ingest window uncompressed, retention configurable)."""
    caggs = query(
        agg_db,
        """SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates
                             ORDER BY 1""",
    )
    # ohlcv_1d / ohlcv_1w are views over theirs, adding the session columns (sql/102)
    assert caggs == [("features_1d_last", False), ("ohlcv_1d_cagg", False), ("ohlcv_1w_cagg", False)]
    assert provisioning.apply_policies(agg_db) == "applied"
    assert provisioning.apply_policies(agg_db) == "unchanged"
    jobs = query(
        agg_db,
        """SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs
                            WHERE proc_name IN ('policy_refresh_continuous_aggregate', 'policy_compression')""",
    )
    # the daily ones end a day ahead of now, not at max(ts) of every chunk; the weekly one at now
    ends = {j[1]: j[2]["end_offset"] for j in jobs if j[0] == "policy_refresh_continuous_aggregate"}
    assert ends == {"ohlcv_1d_cagg": "-1 days", "features_1d_last": "-1 days", "ohlcv_1w_cagg": "00:00:00"}
    try:
        compress = [j[2] for j in jobs if j[0] == "policy_compression"]
        # market_data, features, their revision tables and feature_stats
        assert len(compress) == 5 and all(c["compress_after"] == "8 days" for c in compress)
        retention = query(
            agg_db,
            """SELECT hypertable_name, config->>'drop_after' FROM timescaledb_information.jobs
                                     WHERE proc_name = 'policy_retention' ORDER BY 1""",
        )
        days = get_config().aggregates.retention_days
        assert retention == [
            (table, f"{days} days")
            for table in ("feature_stats", "features", "features_revisions", "market_data", "market_data_revisions")
        ]
    finally:  # the session database is shared: no background compression or retention under later tests
        execute(agg_db, "SELECT delete_job(job_id) FROM timescaledb_information.jobs WHERE job_id >= 1000")


def test_bars_deleted_in_the_current_week_leave_every_aggregate(agg_db, assert_aggregates_match) -> None:
    """The current (incomplete) day and week: after bars are deleted there, or the tables emptied,
    every aggregate still equals the from-scratch GROUP BY (the hierarchical weekly aggregate
    once kept a truncated current week)."""
    now = pd.Timestamp.now(tz=NY)
    monday = (now - pd.Timedelta(days=now.dayofweek)).normalize()
    last_week_to_monday = make_bars("AAPL", (monday - pd.Timedelta(days=7)).date(), monday.date(), seed=3)
    write_bars(agg_db, last_week_to_monday)
    write_features(agg_db, last_week_to_monday)
    aggregates.refresh()
    execute(agg_db, "TRUNCATE market_data, features")  # a store emptied to be reloaded
    aggregates.refresh()
    assert query(
        agg_db,
        "SELECT (SELECT count(*) FROM ohlcv_1d), (SELECT count(*) FROM ohlcv_1w), (SELECT count(*) FROM features_1d)",
    ) == [(0, 0, 0)]
    this_week = make_bars("MSFT", monday.date(), (monday + pd.Timedelta(days=4)).date(), seed=4)
    write_bars(agg_db, this_week)
    aggregates.refresh()
    execute(agg_db, "DELETE FROM market_data WHERE ts >= %s", (monday.tz_convert("UTC") + pd.Timedelta(days=1),))
    aggregates.refresh()
    assert_aggregates_match(agg_db)


@pytest.mark.edition("timescale")
def test_a_refresh_of_pending_changes_materializes_the_newest_stored_day(agg_db) -> None:
    """Without a window the refresh ends past the newest chunk of each source, not at now: bars
    stored ahead of the server's clock (a store on a pinned clock) are materialized up to their
    last day, as a refresh with no end did, while the weekly aggregate stays at now."""
    ahead = make_bars("AAPL", "2027-06-07", "2027-06-11", seed=5)  # months after this machine's now
    write_bars(agg_db, ahead)
    write_features(agg_db, ahead)
    aggregates.refresh()
    newest_day_end = (pd.Timestamp(ahead["ts"].max()).tz_convert(NY).normalize() + pd.Timedelta(days=1)).tz_convert(
        "UTC"
    )
    marks = dict(
        query(
            agg_db,
            """SELECT c.view_name::text,
                      _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(h.id))
               FROM timescaledb_information.continuous_aggregates c
               JOIN _timescaledb_catalog.hypertable h ON h.schema_name = c.materialization_hypertable_schema
                                                    AND h.table_name = c.materialization_hypertable_name""",
        )
    )
    assert pd.Timestamp(marks["ohlcv_1d_cagg"]) == newest_day_end
    assert pd.Timestamp(marks["features_1d_last"]) == newest_day_end
    assert pd.Timestamp(marks["ohlcv_1w_cagg"]) < pd.Timestamp("2027-06-07", tz="UTC")
    materialized = query(agg_db, "SELECT count(*), max(day) FROM ohlcv_1d_cagg WHERE day >= '2027-06-07'")
    assert materialized == [(5, newest_day_end - pd.Timedelta(days=1))]


def test_rows_removed_past_the_newest_chunk_leave_the_aggregates(agg_db, assert_aggregates_match) -> None:
    """Bars removed with their chunk (TRUNCATE, a dropped newer chunk) past everything still stored:
    the refresh of pending changes reaches as far as earlier refreshes materialized, so their daily
    and weekly rows go too — the aggregates still equal a GROUP BY over what is stored."""
    write_bars(agg_db, make_bars("AAPL", "2024-11-04", "2024-11-08", seed=6))
    aggregates.refresh()
    execute(agg_db, "TRUNCATE market_data")
    write_bars(agg_db, make_bars("MSFT", "2024-02-26", "2024-03-01", seed=7))
    aggregates.refresh()
    assert query(agg_db, "SELECT DISTINCT symbol FROM ohlcv_1d") == [("MSFT",)]
    assert_aggregates_match(agg_db)
