"""Revisions (sql/050_point_in_time.sql): every version an upsert or a DELETE replaces is kept in
market_data_revisions / features_revisions with when it stopped being current (known_to), why
(reason) and which run replaced it (run_id) — driven by the real collect and features runs at
pinned moments of the store's and the synthetic market's clocks (tests/storage/pit_helpers.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.storage.pit_helpers import Runs, query, scalar, utc

FRIDAY_CLOSED = utc("2025-11-21 22:00")  # 17:00 New York: every bar of the week is final
MONDAY_10 = utc("2025-11-24 15:00")  # 10:00 New York: the 09:30 (14:30Z) bar is partial
MONDAY_11 = utc("2025-11-24 16:00")  # the 09:30 bar is complete, the 10:30 one partial
BAR_0930 = utc("2025-11-24 14:30")
REVISIONS = {"market_data": "market_data_revisions", "features": "features_revisions"}


def revisions(conn, table: str, symbol: str | None = None) -> pd.DataFrame:
    rows = query(
        conn,
        f"""SELECT symbol, interval, ts, known_to, reason, run_id,
                   {"ingested_at" if table == "market_data" else "computed_at"} AS known_from
            FROM {REVISIONS[table]} WHERE %s IS NULL OR symbol = %s ORDER BY symbol, interval, ts, known_to""",
        symbol,
        symbol,
    )
    return pd.DataFrame(rows, columns=["symbol", "interval", "ts", "known_to", "reason", "run_id", "known_from"])


def stamps(conn, table: str) -> list[tuple]:
    """(key, known_from) of every current row: what an unchanged re-run must leave alone."""
    column = "ingested_at" if table == "market_data" else "computed_at"
    return query(conn, f"SELECT symbol, interval, ts, {column} FROM {table} ORDER BY 1, 2, 3")


def test_a_partial_bar_completed_keeps_its_partial_version_once(conn, fake_yahoo):
    runs = Runs(fake_yahoo, ["AAPL", "MSFT"])
    runs.backfill(FRIDAY_CLOSED, days=20)
    runs.collect(MONDAY_10, "1h")
    runs.features(MONDAY_10 + pd.Timedelta(minutes=5), "1h")
    assert revisions(conn, "market_data").empty  # the 09:30 bar was new: an insert, no revision
    completing = runs.collect(MONDAY_11, "1h")
    recomputing = runs.features(MONDAY_11 + pd.Timedelta(minutes=5), "1h")

    bars = revisions(conn, "market_data")
    assert len(bars) == 2 and set(bars["symbol"]) == {"AAPL", "MSFT"}  # one per symbol: the 09:30 bar
    for row in bars.itertuples():
        assert (row.interval, row.ts, row.reason) == ("1h", BAR_0930, "partial_bar_completed")
        assert (row.known_from, row.known_to, row.run_id) == (MONDAY_10, MONDAY_11, completing.run_id)
        now = scalar(
            conn,
            "SELECT ingested_at FROM market_data WHERE symbol = %s AND interval = '1h' AND ts = %s",
            row.symbol,
            row.ts,
        )
        assert now == row.known_to  # the versions tile time: the old one ends where the new one starts
    features = revisions(conn, "features")
    assert len(features) == 2 and (features["ts"] == BAR_0930).all()
    assert (features["reason"] == "bar_revised").all() and (features["run_id"] == recomputing.run_id).all()
    assert (features["known_from"] == MONDAY_10 + pd.Timedelta(minutes=5)).all()
    assert (features["known_to"] == MONDAY_11 + pd.Timedelta(minutes=5)).all()
    # the partial version is not complete, the current one is (bar_versions says so)
    assert query(
        conn,
        """SELECT known_from, complete, known_to = 'infinity' FROM bar_versions
           WHERE symbol = 'AAPL' AND interval = '1h' AND ts = %s ORDER BY known_from""",
        BAR_0930,
    ) == [(MONDAY_10, False, False), (MONDAY_11, True, True)]


def test_an_unchanged_rerun_adds_no_revision_and_moves_no_timestamp(conn, fake_yahoo):
    runs = Runs(fake_yahoo, ["AAPL", "KO"])
    runs.backfill(MONDAY_10, days=20)  # a partial bar of each interval among them
    runs.features(MONDAY_10 + pd.Timedelta(minutes=5))
    before = {t: stamps(conn, t) for t in REVISIONS}
    runs.collect(MONDAY_10)  # the same moment: Yahoo serves the very same bars, the partial ones too
    runs.features(MONDAY_10 + pd.Timedelta(minutes=6))
    for table in REVISIONS:
        assert revisions(conn, table).empty, table
        assert stamps(conn, table) == before[table], table

    after_close = utc("2025-11-24 22:00")
    runs.collect(after_close)  # the partial bars completed: revisions, new known_from
    runs.features(after_close + pd.Timedelta(minutes=5))
    settled = {t: stamps(conn, t) for t in REVISIONS}
    counts = {t: len(revisions(conn, t)) for t in REVISIONS}
    assert all(counts.values())
    runs.collect(after_close + pd.Timedelta(hours=1))  # the market is closed: nothing changed
    runs.features(after_close + pd.Timedelta(hours=1, minutes=5))
    runs.features(after_close + pd.Timedelta(hours=2))
    for table in REVISIONS:
        assert len(revisions(conn, table)) == counts[table], table
        assert stamps(conn, table) == settled[table], table


def test_a_corrected_bar_is_a_correction_and_its_features_are_revised(conn, fake_yahoo):
    runs = Runs(fake_yahoo, ["AAPL", "MSFT"])
    runs.backfill(FRIDAY_CLOSED, days=20)
    runs.features(FRIDAY_CLOSED + pd.Timedelta(minutes=5))
    fixed = utc("2025-11-20 17:30")  # Thursday 12:30 New York: inside the window, not its first bar
    runs.faults = {"AAPL": f"correct:{fixed.isoformat()}:1.01"}
    later = FRIDAY_CLOSED + pd.Timedelta(hours=1)
    report = runs.collect(later)
    features_run = runs.features(later + pd.Timedelta(minutes=5))

    bars = revisions(conn, "market_data")
    assert [tuple(r) for r in bars[["symbol", "interval", "ts", "reason", "known_to", "run_id"]].itertuples(False)] == [
        ("AAPL", "1h", fixed, "correction", later, report.run_id)
    ]
    assert not report.notes  # one corrected bar is not a re-adjusted history
    features = revisions(conn, "features")
    assert set(features["symbol"]) == {"AAPL"} and (features["run_id"] == features_run.run_id).all()
    first = features.iloc[0]
    assert (first["interval"], first["ts"], first["reason"]) == ("1h", fixed, "bar_revised")
    # the rows after it were recomputed from the corrected bar; none before it was touched
    assert (features["ts"].iloc[1:] > fixed).all() and (features["interval"] == "1h").all()


def test_a_split_readjusts_every_stored_bar_and_revises_every_feature_row(conn, fake_yahoo):
    runs = Runs(fake_yahoo, ["PEP", "AAPL"])
    runs.backfill(FRIDAY_CLOSED, days=30)
    runs.features(FRIDAY_CLOSED + pd.Timedelta(minutes=5))
    stored = {
        t: dict(query(conn, f"SELECT interval, count(*) FROM {t} WHERE symbol = 'PEP' GROUP BY 1")) for t in REVISIONS
    }
    runs.faults = {"PEP": "split:2025-11-24:4"}
    after = utc("2025-11-24 22:00")
    report = runs.collect(after)
    runs.features(after + pd.Timedelta(minutes=5))

    assert sorted(n.split(":")[0] for n in report.notes) == ["PEP 1d", "PEP 1h"]
    for table, reason in (
        ("market_data", "readjustment: the 4-for-1 split of 2025-11-24"),
        ("features", "bar_revised"),
    ):
        kept = revisions(conn, table)
        assert set(kept["symbol"]) == {"PEP"}, table  # AAPL did not split
        assert set(kept["reason"]) == {reason}, table
        assert kept.groupby("interval").size().to_dict() == stored[table], table  # every one, once
        assert (kept["known_to"] == (after if table == "market_data" else after + pd.Timedelta(minutes=5))).all()
    old = scalar(
        conn, "SELECT close FROM market_data_revisions WHERE symbol = 'PEP' AND interval = '1d' ORDER BY ts LIMIT 1"
    )
    new = scalar(conn, "SELECT close FROM market_data WHERE symbol = 'PEP' AND interval = '1d' ORDER BY ts LIMIT 1")
    assert new == pytest.approx(old / 4, rel=1e-3)  # the kept version is the pre-split adjustment


def test_keep_revisions_off_keeps_none(conn, fake_yahoo, config_env):
    config_env(MFS_DATABASE__KEEP_REVISIONS="false")
    runs = Runs(fake_yahoo, ["AAPL"])
    runs.backfill(MONDAY_10, days=10)
    runs.features(MONDAY_10 + pd.Timedelta(minutes=5))
    runs.hour(MONDAY_11)  # the partial bars completed and their features recomputed
    assert scalar(conn, "SELECT count(*) FROM market_data WHERE ingested_at = %s", MONDAY_11) > 0
    for table in REVISIONS:
        assert revisions(conn, table).empty, table


def test_a_delete_keeps_the_row_as_deleted(conn, fake_yahoo):
    runs = Runs(fake_yahoo, ["AAPL"])
    runs.backfill(FRIDAY_CLOSED, days=10)
    runs.features(FRIDAY_CLOSED + pd.Timedelta(minutes=5))
    gone = utc("2025-11-21 15:30")
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('mfs.clock', %s, true)", ((FRIDAY_CLOSED + pd.Timedelta(days=1)).isoformat(),))
        for table in REVISIONS:
            cur.execute(f"DELETE FROM {table} WHERE symbol = 'AAPL' AND interval = '1h' AND ts = %s", (gone,))
    conn.commit()
    for table in REVISIONS:
        (row,) = revisions(conn, table).itertuples()
        assert (row.ts, row.reason, row.run_id) == (gone, "deleted", None)
        assert row.known_to == FRIDAY_CLOSED + pd.Timedelta(days=1)  # the deleting transaction's clock


COMPRESS = "SELECT count(compress_chunk(c, if_not_compressed => true)) FROM show_chunks(%s::regclass) c"


@pytest.mark.edition("timescale")
def test_an_update_in_a_compressed_chunk_keeps_its_revision(conn, fake_yahoo):
    runs = Runs(fake_yahoo, ["AAPL", "MSFT"])
    runs.backfill(FRIDAY_CLOSED, days=20)
    runs.features(FRIDAY_CLOSED + pd.Timedelta(minutes=5))
    assert all(scalar(conn, COMPRESS, t) >= 1 for t in REVISIONS)
    fixed = utc("2025-11-20 17:30")
    runs.faults = {"MSFT": f"correct:{fixed.isoformat()}:0.99"}
    later = FRIDAY_CLOSED + pd.Timedelta(hours=1)
    report = runs.collect(later)  # the ingest's write lands in a compressed chunk
    runs.features(later + pd.Timedelta(minutes=5))
    with conn.cursor() as cur:  # and a hand-written UPDATE in one
        cur.execute(
            "UPDATE market_data SET volume = volume + 1 WHERE symbol = 'AAPL' AND interval = '1d' AND ts = %s",
            (utc("2025-11-20 05:00"),),
        )
    conn.commit()

    bars = revisions(conn, "market_data")
    assert [tuple(r) for r in bars[["symbol", "interval", "ts", "reason"]].itertuples(False)] == [
        ("AAPL", "1d", utc("2025-11-20 05:00"), "correction"),
        ("MSFT", "1h", fixed, "correction"),
    ]
    assert bars.loc[bars["symbol"] == "MSFT", "run_id"].tolist() == [report.run_id]
    features = revisions(conn, "features")
    assert features.iloc[0][["symbol", "ts", "reason"]].tolist() == ["MSFT", fixed, "bar_revised"]
    still = "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = %s AND is_compressed"
    assert scalar(conn, still, "market_data") >= 1
