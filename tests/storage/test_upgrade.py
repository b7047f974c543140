"""A store made by the project's first version survives ``mfs db up`` on this one.

The first version ran TimescaleDB 2.19.3, Apache edition (Debian's source; no continuous
aggregates), wrote no ``timescaledb.license`` setting, and shipped migrations up to 037. This
test builds exactly that — a real 2.19.3 database, ``./scripts/install-timescaledb --previous``
installs its library — fills it, runs the real ``mfs db up`` against it, and compares rows and
checksums before and after: the extension is updated to the installed release, the store keeps
its trigger-maintained rollups with a one-line note on how to switch, and everything still runs.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mfs import aggregates, paths
from mfs.storage import migrations
from mfs.storage.connection import connect
from mfs.storage.localdb import PG_BIN, LocalCluster
from tests.aggregates.aggregate_helpers import REFERENCE, make_bars, query, write_bars, write_features
from tests.fixtures.database import free_port

pytestmark = [pytest.mark.slow, pytest.mark.edition("timescale")]

PREVIOUS_RELEASE = "2.19.3"
LAST_FIRST_VERSION_MIGRATION = 37
# Every column the first version had (later migrations add columns, e.g. closes_at: not compared).
_FIRST_VERSION_ROW = "(to_jsonb(t) - 'closes_at')::text"
CHECKSUMS = {
    "market_data": f"SELECT count(*), md5(string_agg({_FIRST_VERSION_ROW}, ',' ORDER BY symbol, interval, ts))"
    " FROM market_data t",
    "features": f"SELECT count(*), md5(string_agg({_FIRST_VERSION_ROW}, ',' ORDER BY symbol, interval, ts))"
    " FROM features t",
    # the first version's columns (sql/102 appends session_date and partial)
    "ohlcv_1d": "SELECT count(*), md5(string_agg((symbol, day, open, high, low, close, volume, bar_count)::text, ','"
    " ORDER BY symbol, day)) FROM ohlcv_1d t",
}


def _pkglibdir() -> Path:
    out = subprocess.run([str(PG_BIN / "pg_config"), "--pkglibdir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def previous_store() -> Iterator[str]:
    """A database as the first version left it: TimescaleDB 2.19.3, migrations 001–037."""
    if not (_pkglibdir() / f"timescaledb-{PREVIOUS_RELEASE}.so").exists():
        pytest.fail(
            f"TimescaleDB {PREVIOUS_RELEASE} is not installed: run ./scripts/install-timescaledb --previous "
            "(./scripts/test does)"
        )
    home = Path(tempfile.mkdtemp(prefix="mfs-previous-"))
    home.chmod(0o755)  # the server runs as 'postgres' and must reach its folder
    cluster = LocalCluster(root=home / "pg", port=free_port(), edition=None)  # no license line, as then
    cluster.init()
    cluster.start()
    url = cluster.url()
    try:
        migrations.ensure_database(url)
        conn = connect(url, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"CREATE EXTENSION timescaledb VERSION '{PREVIOUS_RELEASE}'")
        conn.close()
        first_version = home / "sql"
        first_version.mkdir()
        for path in paths.sql_dir().glob("*.sql"):
            if int(path.name[:3]) <= LAST_FIRST_VERSION_MIGRATION:
                shutil.copy(path, first_version / path.name)
        migrations.migrate(url, first_version, update=False)
        yield url
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


def _fill(url: str) -> int:
    written = 0
    for i, symbol in enumerate(("AAPL", "MSFT", "KO")):
        bars = make_bars(symbol, "2024-10-28", "2024-12-06", seed=i)  # a half day (11-29) inside
        written += write_bars(url, bars, with_closes=False).inserted
        write_features(url, bars)
    aggregates.refresh(url=url)
    return written


def _state(url: str) -> dict[str, tuple]:
    return {name: query(url, statement)[0] for name, statement in CHECKSUMS.items()}


def test_a_first_version_store_keeps_its_data_through_db_up(previous_store: str) -> None:
    url = previous_store
    assert query(url, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'") == [(PREVIOUS_RELEASE,)]
    conn = connect(url)
    assert migrations.edition(conn) == "apache"
    conn.close()
    written = _fill(url)
    before = _state(url)
    assert before["market_data"][0] == written > 0 and before["ohlcv_1d"][0] == 3 * 29  # 29 sessions

    env = dict(os.environ, MFS_DATABASE_URL=url)
    env.pop("MFS_TEST_EDITION", None)
    up = subprocess.run(
        [sys.executable, "-m", "mfs.cli.main", "db", "up"], env=env, capture_output=True, text=True, timeout=300
    )
    assert up.returncode == 0, up.stderr
    assert f"updated TimescaleDB {PREVIOUS_RELEASE} -> " in up.stdout
    assert "applied 040_aggregate_owner" in up.stdout
    notes = [line.strip() for line in up.stdout.splitlines() if line.strip().startswith("note:")]
    assert len(notes) == 1 and "keeps its trigger-maintained rollups" in notes[0] and "to switch" in notes[0]

    installed = query(url, "SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
    assert query(url, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'") == installed
    assert _state(url) == before  # same rows, same values, same aggregates
    # ... which now name their New York session and say they are final (fetched after the close)
    assert query(url, "SELECT min(session_date), bool_or(partial) FROM ohlcv_1d") == [(dt.date(2024, 10, 28), False)]
    # Rows stored before the column existed know when their bar closed (half day 2024-11-29: 13:00).
    assert query(url, "SELECT count(*) FROM market_data WHERE closes_at IS NULL") == [(0,)]
    assert query(
        url, "SELECT max(closes_at) FROM market_data WHERE ts >= '2024-11-29 05:00Z' AND ts < '2024-11-30 05:00Z'"
    ) == query(url, "SELECT '2024-11-29 18:00Z'::timestamptz")

    # The store still works: new bars reach the rollups, which equal a from-scratch GROUP BY.
    write_bars(url, make_bars("NVDA", "2024-12-02", "2024-12-06", seed=9))
    result = aggregates.refresh(url=url)
    assert result["edition"] == "apache" and result["buckets"]["ohlcv_1d"] == 5
    for name, reference in REFERENCE.items():
        key = "day" if name == "ohlcv_1d" else "week"
        assert query(url, f"SELECT * FROM {name} ORDER BY symbol, {key}") == query(url, reference), name
    again = subprocess.run(
        [sys.executable, "-m", "mfs.cli.main", "db", "up"], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "updated TimescaleDB" not in again.stdout and "applied" not in again.stdout
