"""What a run skips and what it serves: a series whose bars did not change since its features
were brought up to date is not sent to a worker, a run with nothing to do starts none, a write
outside ingest sends every series back to the full comparison, and ``latest_features`` (a
maintained table) always holds each series' newest feature row."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from mfs.features import compute
from mfs.ingest.write import store_bars
from mfs.runs import RunReport, new_run_id
from tests.features.feature_helpers import make_bars

NEWEST_ROWS = """SELECT f.* FROM stored_series s CROSS JOIN LATERAL
                 (SELECT * FROM features f WHERE f.symbol = s.symbol AND f.interval = s.interval
                  ORDER BY f.ts DESC LIMIT 1) f ORDER BY f.symbol, f.interval"""


def _ingest(frames: dict[str, pd.DataFrame]) -> None:
    report = RunReport(run_id=new_run_id(), flow="test")
    frames = {s: f.assign(adj_close=f["close"]) for s, f in frames.items()}
    store_bars(report, frames, "1h", "test", asof=pd.Timestamp("2030-01-01", tz="UTC"))
    assert not report.failed and report.counts().inserted + report.counts().updated > 0


def _served(conn) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM features_latest ORDER BY symbol, interval")
        served = cur.fetchall()
        cur.execute(NEWEST_ROWS)
        assert served == cur.fetchall()  # the maintained table is the newest row of every series
        cur.execute("SELECT symbol, interval, ts FROM latest_features ORDER BY symbol, interval")
        assert cur.fetchall() == [r[:3] for r in served]  # and the view serves it
    conn.rollback()
    return served


def _sent(report: RunReport) -> set[str]:
    return {s for batch in report.batches for s in batch.symbols}


def _written(report: RunReport) -> dict[str, int]:
    return {r.symbol: r.written for r in report.results}


def test_only_changed_series_are_sent_to_workers_and_latest_follows(conn) -> None:
    a, b = make_bars(300, seed=1), make_bars(300, seed=2)
    _ingest({"AAA": a.iloc[:-1], "BBB": b})
    first = compute(["AAA", "BBB"], "1h")
    assert _written(first) == {"AAA": 299, "BBB": 300}
    assert [(r[0], r[2]) for r in _served(conn)] == [("AAA", a["ts"].iloc[-2]), ("BBB", b["ts"].iloc[-1])]

    idle = compute(["AAA", "BBB"], "1h")  # nothing changed: decided before any worker starts
    assert _written(idle) == {"AAA": 0, "BBB": 0} and idle.extra["worker_pids"] == [] and not idle.batches

    _ingest({"AAA": a.iloc[-1:]})  # one new bar of one series, through ingest
    one = compute(["AAA", "BBB"], "1h")
    assert _sent(one) == {"AAA"} and _written(one) == {"AAA": 1, "BBB": 0}
    assert [r[2] for r in _served(conn)] == [a["ts"].iloc[-1], b["ts"].iloc[-1]]


def test_a_write_outside_ingest_sends_every_series_back_to_the_full_comparison(conn) -> None:
    a, b = make_bars(300, seed=3), make_bars(300, seed=4)
    _ingest({"AAA": a, "BBB": b})
    compute(["AAA", "BBB"], "1h")
    with conn.cursor() as cur:  # by hand: which series changed is not counted
        cur.execute("DELETE FROM market_data WHERE symbol = 'BBB' AND ts = %s", (b["ts"].iloc[-1],))
    conn.commit()
    after = compute(["AAA", "BBB"], "1h")
    assert _sent(after) == {"AAA", "BBB"}
    # The orphaned row is gone, and what is served is the newest row left.
    assert [r[2] for r in _served(conn)] == [a["ts"].iloc[-1], b["ts"].iloc[-2]]
    assert not compute(["AAA", "BBB"], "1h").batches  # counted as seen: nothing to do again


def test_feature_rows_written_by_hand_are_served(conn) -> None:
    a = make_bars(300, seed=5)
    _ingest({"AAA": a})
    compute(["AAA"], "1h")
    with conn.cursor() as cur:
        cur.execute("UPDATE features SET rsi_14 = 1.5 WHERE symbol = 'AAA' AND ts = %s", (a["ts"].iloc[-1],))
    conn.commit()
    with conn.cursor() as cur:
        cur.execute("SELECT rsi_14 FROM latest_features WHERE symbol = 'AAA'")
        assert cur.fetchall() == [(1.5,)]
    conn.rollback()
    _served(conn)


def test_a_run_with_nothing_to_do_reads_no_definitions_starts_no_pool_and_imports_no_sqlalchemy(conn, db) -> None:
    _ingest({"AAA": make_bars(300, seed=6)})
    compute(["AAA"], "1h")
    probe = (
        "import sys; from mfs.cli.main import main; rc = main(['features', '--symbols', 'AAA', '--interval', '1h']); "
        "heavy = ('talib', 'pandas', 'numpy', 'pebble', 'sqlalchemy'); "
        "print(sorted(m for m in heavy if m in sys.modules)); sys.exit(rc)"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    *_, said, loaded = run.stdout.strip().splitlines()
    assert said.startswith("features: nothing to compute") and loaded == "[]"
