"""The README's point-in-time queries, pasted as the read-only role would paste them, on a store
filled by real runs on a pinned clock: hourly runs (collect at :00, features at :05) on
24 November 2026 (the replay example's day) and on the latest complete session (the training
example reads the last 30 days)."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import make_url

from mfs import calendar, provisioning
from mfs.features.run import compute
from mfs.ingest.run import collect
from mfs.market import NY
from mfs.storage.connection import connect

SYMBOLS = ["AAPL", "MSFT"]


def _readme_sql(project_root: Path) -> list[str]:
    text = (project_root / "README.md").read_text()
    section = text[text.index("## Point in time") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.S)


def _hourly_runs(day: pd.Timestamp, hours: list[int], fake_yahoo, monkeypatch) -> None:
    for hour in hours:
        at = pd.Timestamp(f"{day.date()} {hour:02d}:00", tz=NY).tz_convert("UTC")
        monkeypatch.setenv("MFS_CLOCK", at.isoformat())
        collect(SYMBOLS, "1h", days=20, session=fake_yahoo(asof=at))
        monkeypatch.setenv("MFS_CLOCK", (at + pd.Timedelta(minutes=5)).isoformat())
        compute(SYMBOLS, "1h")


def _latest_complete_session() -> pd.Timestamp:
    now = pd.Timestamp.now(tz="UTC")
    days = calendar.sessions(now - pd.Timedelta(days=10), now)
    return next(d for d in reversed(days) if calendar.session_bounds(d)[1] + pd.Timedelta(hours=1) <= now)


def test_readme_point_in_time_queries_run_as_the_reader(db, project_root, fake_yahoo, monkeypatch) -> None:
    blocks = _readme_sql(project_root)
    assert len(blocks) == 2, "the README's point-in-time section lost its worked queries"
    _hourly_runs(pd.Timestamp("2026-11-24"), [10, 11], fake_yahoo, monkeypatch)
    _hourly_runs(_latest_complete_session(), [10, 11, 12, 13], fake_yahoo, monkeypatch)
    monkeypatch.delenv("MFS_CLOCK")
    password = secrets.token_urlsafe(16)
    monkeypatch.setenv("MFS_READER_PASSWORD", password)
    provisioning.sync_role_passwords(db)
    reader = connect(
        make_url(db).set(username="mfs_reader", password=password).render_as_string(hide_password=False),
        autocommit=True,
    )
    try:
        with reader.cursor() as cur:
            cur.execute(blocks[0])
            names = [d[0] for d in cur.description]
            training = pd.DataFrame(cur.fetchall(), columns=names)
            cur.execute(blocks[1])
            replay = cur.fetchall()
    finally:
        reader.close()
    # Training rows exist only for moments after the runs that stored them, and never use a bar
    # that had not closed (nor been completed) by then.
    assert len(training) > 10 and set(training["symbol"]) == set(SYMBOLS)
    assert (training["bar"] < training["at"] - pd.Timedelta(hours=1)).all()
    assert training["forward_return_1h"].notna().all()
    # At 10:06 the 10:05 run had computed features from the partial 09:30 bar: that is what was served.
    bar_start = pd.Timestamp("2026-11-24 09:30")
    assert sorted(r[0] for r in replay) == SYMBOLS
    assert all(pd.Timestamp(r[1]) == bar_start and r[2] is False for r in replay)
