"""Delistings over successive runs through the offline Yahoo (its ``delisted`` fault answers HTTP 404
"No data found, symbol may be delisted"), the symbols' listed_on / delisted_on, and
universe_asof(day) (sql/053_universe.sql)."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pytest

from mfs.errors import RunFailedError
from mfs.features import compute
from mfs.ingest import collect
from mfs.storage import migrations
from mfs.storage.connection import connect, with_database
from mfs.storage.sessions import sync_sessions
from tests.reliability.reliability_helpers import mfs_env, run_mfs

GONE = {"KO": "delisted"}
D = dt.date


def at(day: str) -> pd.Timestamp:
    """After that session's close (16:00 New York is 21:00 UTC in November): its daily bar is final."""
    return pd.Timestamp(f"{day} 21:30", tz="UTC")


@pytest.fixture
def run(fake_yahoo, monkeypatch, config_env):
    """``run(day, symbols, faults=None, interval='1d', **kw)``: a collect of the last 10 days at ``at(day)``,
    the store's clock pinned to the same moment; two "may be delisted" runs mark a symbol delisted."""
    config_env(MFS_INGEST__DELISTED_AFTER=2)

    def go(day: str, symbols=("KO", "PEP"), faults=None, interval: str | None = "1d", **kw):
        monkeypatch.setenv("MFS_CLOCK", at(day).isoformat())
        return collect(list(symbols), interval, days=10, session=fake_yahoo(asof=at(day), faults=faults), **kw)

    return go


def symbol_row(conn, symbol: str) -> dict | None:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT listed_on, delisted_on, not_found_streak, delisted_at, active FROM symbols WHERE symbol = %s",
            (symbol,),
        )
        row = cur.fetchone()
        names = [d[0] for d in cur.description]
    conn.commit()
    return dict(zip(names, row, strict=True)) if row else None


def scalar(conn, query: str, *args):
    with conn.cursor() as cur:
        cur.execute(query, args)
        value = cur.fetchone()[0]
    conn.commit()
    return value


def universe(conn, day: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("SELECT symbol, listed_on, delisted_on, active FROM universe_asof(%s::date)", (day,))
        rows = cur.fetchall()
    conn.commit()
    return rows


def statuses(report) -> dict[tuple[str, str], tuple[str, str | None]]:
    return {(r.symbol, r.stage): (r.status, r.reason) for r in report.results}


def test_marked_after_n_answers_then_skipped_with_history_kept_then_listed_again(conn, run):
    first = run("2025-11-20")  # Thursday: bars since Monday 2025-11-10
    assert symbol_row(conn, "KO") == {
        "listed_on": D(2025, 11, 10),
        "delisted_on": None,
        "not_found_streak": 0,
        "delisted_at": None,
        "active": True,
    }
    history = scalar(conn, "SELECT count(*) FROM market_data WHERE symbol = 'KO'")
    assert history == sum(r.inserted for r in first.results if r.symbol == "KO") == 9

    # One answer: an honest failure, counted, nothing marked yet.
    with pytest.raises(RunFailedError, match=r"may be delisted.* — answer 1 of 2 before KO is marked delisted"):
        run("2025-11-21", faults=GONE)
    assert symbol_row(conn, "KO")["not_found_streak"] == 1 and symbol_row(conn, "KO")["delisted_on"] is None

    marking = run("2025-11-24", faults=GONE)  # Monday; no RunFailedError: the run handled KO
    assert statuses(marking)[("KO", "collect_1d")] == (
        "skipped",
        "KO: marked delisted as of 2025-11-20 after 2 'may be delisted' answers",
    )
    assert "KO: marked delisted as of 2025-11-20 after 2 'may be delisted' answers" in marking.notes
    assert marking.extra["status"] == "completed"
    row = symbol_row(conn, "KO")
    assert (row["delisted_on"], row["active"], row["delisted_at"]) == (D(2025, 11, 20), False, at("2025-11-24"))

    later = run("2025-11-25", symbols=["KO"], faults=GONE)  # the only symbol, delisted: not a failure, not ok
    assert statuses(later) == {
        ("KO", "collect_1d"): ("skipped", "KO: delisted on 2025-11-20 (Yahoo still has no data)")
    }
    counts = later.counts()
    assert (counts.symbols_ok, counts.symbols_failed, counts.symbols_skipped) == (0, 0, 1)
    assert "1 delisted symbol(s) skipped, Yahoo has no data: KO (delisted on 2025-11-20)" in later.notes
    assert scalar(conn, "SELECT status FROM pipeline_runs WHERE run_id = %s", later.run_id) == "completed"
    assert scalar(conn, "SELECT status FROM symbol_runs WHERE run_id = %s", later.run_id) == "skipped"
    assert scalar(conn, "SELECT count(*) FROM market_data WHERE symbol = 'KO'") == history  # history kept
    assert symbol_row(conn, "KO")["delisted_at"] == at("2025-11-24")  # marked once

    # A delisted symbol asked for by name still computes its features: it has bars.
    features = compute(["KO"], "1d")
    assert [(r.symbol, r.status) for r in features.results] == [("KO", "ok")]
    assert scalar(conn, "SELECT count(*) FROM features WHERE symbol = 'KO'") == history

    back = run("2025-11-26")  # Yahoo has KO again: listed again, the gap's bars fetched
    assert statuses(back)[("KO", "collect_1d")][0] == "ok"
    assert "KO: listed again (bars since 2025-11-21)" in back.notes
    assert symbol_row(conn, "KO") == {
        "listed_on": D(2025, 11, 10),
        "delisted_on": None,
        "not_found_streak": 0,
        "delisted_at": None,
        "active": True,
    }
    assert scalar(conn, "SELECT count(*) FROM market_data WHERE symbol = 'KO'") == history + 4


def test_universe_asof_keeps_a_delisted_symbol_for_the_days_it_traded(conn, run):
    sync_sessions()
    run("2025-11-20")
    for day in ("2025-11-21", "2025-11-24"):
        run(day, faults=GONE, raise_on_failure=False)
    ko = ("KO", D(2025, 11, 10), D(2025, 11, 20), False)
    pep = ("PEP", D(2025, 11, 10), None, True)
    assert universe(conn, "2025-11-07") == []  # before either was stored
    assert universe(conn, "2025-11-10") == [ko, pep]  # the first stored bar
    assert universe(conn, "2025-11-19") == [ko, pep]
    assert universe(conn, "2025-11-20") == [ko, pep]  # KO's last bar
    assert universe(conn, "2025-11-21") == [pep]
    assert universe(conn, "2025-11-22") == []  # a Saturday
    assert universe(conn, "2025-11-27") == []  # Thanksgiving
    assert universe(conn, "2025-11-28") == [pep]  # a half day is a session (PEP has no bar of it yet)


def test_streak_counts_runs_not_intervals_and_bars_reset_it(conn, run):
    run("2025-11-20", interval=None)  # every configured interval
    once = run("2025-11-21", interval=None, faults=GONE, raise_on_failure=False)
    assert [statuses(once)[("KO", s)][0] for s in ("collect_1h", "collect_1d")] == ["failed", "failed"]
    assert "answer 1 of 2 before KO is marked delisted" in statuses(once)[("KO", "collect_1h")][1]
    assert any("answered 'may be delisted'" in n and "KO 1 of 2" in n for n in once.notes)
    assert symbol_row(conn, "KO")["not_found_streak"] == 1  # two intervals, one run: one answer

    run("2025-11-24", interval="1d")  # a hiccup only: bars again end the streak
    assert symbol_row(conn, "KO")["not_found_streak"] == 0
    again = run("2025-11-25", interval="1d", faults=GONE, raise_on_failure=False)
    assert statuses(again)[("KO", "collect_1d")][0] == "failed"
    assert symbol_row(conn, "KO")["delisted_on"] is None


def test_a_symbol_the_store_never_held_keeps_failing_with_yahoos_reason(conn, run):
    for day in ("2025-11-20", "2025-11-21", "2025-11-24"):
        report = run(day, symbols=["KO"], faults=GONE, raise_on_failure=False)
        status, reason = statuses(report)[("KO", "collect_1d")]
        assert status == "failed" and reason == "KO: Yahoo: No data found, symbol may be delisted (HTTP 404)"
        assert report.notes == []
    assert symbol_row(conn, "KO") is None


def test_listed_on_moves_back_with_older_bars(conn, run, fake_yahoo):
    run("2025-11-20", symbols=["PEP"])
    assert symbol_row(conn, "PEP")["listed_on"] == D(2025, 11, 10)
    collect(["PEP"], "1d", days=30, session=fake_yahoo(asof=at("2025-11-20")))
    assert symbol_row(conn, "PEP")["listed_on"] == D(2025, 10, 21)
    run("2025-11-21", symbols=["PEP"])  # newer bars leave it
    assert symbol_row(conn, "PEP")["listed_on"] == D(2025, 10, 21)


def test_a_delisted_symbol_is_skipped_from_the_shell(db, conn, run):
    run("2025-11-20", symbols=["KO"])
    for day in ("2025-11-21", "2025-11-24"):
        run(day, symbols=["KO"], faults=GONE, raise_on_failure=False)
    drill = run_mfs(
        mfs_env(db, MFS_SYNTHETIC_FAULTS='{"KO": "delisted"}', MFS_SYNTHETIC_ASOF=at("2025-11-26").isoformat()),
        "collect",
        "--offline",
        "--symbols",
        "KO",
    )
    assert drill.returncode == 0, drill.stderr
    for stage in ("collect_1h", "collect_1d"):
        assert f"KO\t{stage}\tskipped" in drill.stdout
    assert "KO: delisted on 2025-11-20 (Yahoo still has no data)" in drill.stdout
    assert "collect: 0 ok, 0 failed, 2 skipped;" in drill.stdout
    assert "note: 1 delisted symbol(s) skipped, Yahoo has no data: KO (delisted on 2025-11-20)" in drill.stdout


@pytest.fixture
def store_before_053(server_url: str, tmp_path: Path, project_root: Path):
    """A fresh database migrated up to 052, and the directory of the full migrations."""
    url = with_database(server_url, f"mfs_universe_{uuid.uuid4().hex[:8]}")
    older = tmp_path / "sql"
    shutil.copytree(project_root / "sql", older, ignore=lambda _d, names: [n for n in names if n >= "053"])
    migrations.ensure_database(url)
    migrations.migrate(url, older)
    yield url
    migrations.drop_database(url)


def test_the_migration_fills_listed_on_from_the_stored_bars(store_before_053: str) -> None:
    url = store_before_053
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO symbols (symbol) VALUES ('AAPL'), ('MSFT'), ('NEW')")
            # AAPL: its first hourly bar is 2025-11-10 09:30 New York (14:30Z), its first daily bar later;
            # MSFT: a daily bar labelled New York midnight (05:00Z), which is still that New York date.
            cur.execute("""INSERT INTO market_data (symbol, interval, ts, open, high, low, close, volume) VALUES
                           ('AAPL', '1h', '2025-11-10 14:30Z', 1, 1, 1, 1, 1),
                           ('AAPL', '1h', '2025-11-12 14:30Z', 1, 1, 1, 1, 1),
                           ('AAPL', '1d', '2025-11-11 05:00Z', 1, 1, 1, 1, 1),
                           ('MSFT', '1d', '2025-11-13 05:00Z', 1, 1, 1, 1, 1)""")
        conn.commit()
        assert migrations.migrate(url)[0] == "053_universe"  # and the later ones
        with conn.cursor() as cur:
            cur.execute("SELECT symbol, listed_on, delisted_on, not_found_streak FROM symbols ORDER BY 1")
            assert cur.fetchall() == [
                ("AAPL", D(2025, 11, 10), None, 0),
                ("MSFT", D(2025, 11, 13), None, 0),
                ("NEW", None, None, 0),
            ]
    finally:
        conn.close()
