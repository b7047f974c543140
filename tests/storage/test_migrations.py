"""Migrations: order, records, idempotence, atomic failure, drift, edition variants."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from mfs.errors import StorageError
from mfs.storage import migrations, repeatable
from mfs.storage.connection import connect, with_database
from mfs.storage.sql_text import normalised_sql
from tests.fixtures.database import DATA_TABLES


def _schema_snapshot(url: str) -> tuple:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                """SELECT table_name, column_name, data_type FROM information_schema.columns
                   WHERE table_schema = 'public' ORDER BY 1, 2"""
            )
            cols = cur.fetchall()
            cur.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
            return cols, cur.fetchall()
    finally:
        conn.close()


@pytest.fixture
def fresh_db(server_url: str):
    import uuid

    url = with_database(server_url, f"mfs_mig_{uuid.uuid4().hex[:8]}")
    migrations.ensure_database(url)
    yield url
    migrations.drop_database(url)


@pytest.fixture
def sql_copy(tmp_path: Path, project_root: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(project_root / "sql", target)
    return target


def test_applies_all_in_order_then_noop(fresh_db: str, project_root: Path) -> None:
    applied = migrations.migrate(fresh_db)
    files = sorted(p.name.split(".")[0] for p in (project_root / "sql").glob("*.sql"))
    conn = connect(fresh_db)
    # then every repeatable file: functions before views
    repeatables = [r.label for r in repeatable.discover(migrations.edition(conn))]
    assert applied == sorted(set(files)) + repeatables
    assert repeatables[0] == "functions/asof" and repeatables[-1].startswith("views/")
    assert migrations.migrate(fresh_db) == []
    with conn.cursor() as cur:
        cur.execute("SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1")
        assert {"features", "market_data"} <= {r[0] for r in cur.fetchall()}
        for table in DATA_TABLES:
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            assert cur.fetchone()[0], table
        # 037: the bar and feature hypertables keep their primary key and no time-only index (it
        # only cost writes: every query leads with the symbol).
        cur.execute("SELECT tablename, indexname FROM pg_indexes WHERE tablename IN ('market_data', 'features')")
        assert sorted(cur.fetchall()) == [("features", "features_pkey"), ("market_data", "market_data_pkey")]
    conn.close()


def test_failed_migration_changes_nothing(fresh_db: str, sql_copy: Path) -> None:
    migrations.migrate(fresh_db, sql_copy)
    before = _schema_snapshot(fresh_db)
    (sql_copy / "998_half_done.sql").write_text(
        "CREATE TABLE half_done (x int);\nALTER TABLE market_data ADD COLUMN junk int;\nSELECT no_such_function();\n"
    )
    with pytest.raises(StorageError, match=r"998_half_done failed and was rolled back.*no_such_function"):
        migrations.migrate(fresh_db, sql_copy)
    assert _schema_snapshot(fresh_db) == before


def _recorded_checksum(url: str, version: int) -> str:
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT checksum FROM schema_migrations WHERE version = %s", (version,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_an_applied_migration_may_change_its_comments_but_not_its_sql(fresh_db: str, sql_copy: Path) -> None:
    migrations.migrate(fresh_db, sql_copy)
    first = min(sql_copy.glob("001_*.sql"))
    original = first.read_text()
    recorded = _recorded_checksum(fresh_db, 1)
    reworded = "-- A reworded header.\n/* and a block comment */\n" + original.replace(
        ";\n", ";   -- a trailing note\n\n", 1
    )
    first.write_text(reworded)
    assert migrations.migrate(fresh_db, sql_copy) == []
    assert _recorded_checksum(fresh_db, 1) == recorded
    first.write_text(reworded + "\nCREATE TABLE edited (x int);\n")
    with pytest.raises(StorageError, match="001_initial was changed after it was applied"):
        migrations.migrate(fresh_db, sql_copy)


def test_a_full_text_checksum_recorded_before_is_accepted_and_replaced(fresh_db: str, sql_copy: Path) -> None:
    migrations.migrate(fresh_db, sql_copy)
    first = min(sql_copy.glob("001_*.sql"))
    full_text = hashlib.sha256(first.read_bytes()).hexdigest()
    conn = connect(fresh_db)
    with conn.cursor() as cur:  # the record a store made when checksums covered the whole file
        cur.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 1", (full_text,))
    conn.commit()
    conn.close()
    assert migrations.migrate(fresh_db, sql_copy) == []
    assert _recorded_checksum(fresh_db, 1) == migrations.discover("apache", sql_copy)[0].checksum != full_text
    first.write_text(first.read_text() + "\n-- a comment added since\n")
    assert migrations.migrate(fresh_db, sql_copy) == []


def test_full_text_checksums_of_files_whose_comments_changed_map_to_their_sql() -> None:
    current = {m.checksum: m for edition in migrations.EDITIONS for m in migrations.discover(edition)}
    for full_text, normalised in migrations.FULL_TEXT_CHECKSUMS.items():
        assert normalised in current, full_text
        assert current[normalised].accepts(full_text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("SELECT 1;  -- one\n\n  SELECT   2;\n", "SELECT 1; SELECT 2;"),
        ("-- header\nSELECT/* inline /* nested */ still */1;", "SELECT 1;"),
        ("SELECT '--  kept', \"a  --b\", 'it''s -- kept';", "SELECT '--  kept', \"a  --b\", 'it''s -- kept';"),
        ("SELECT E'back\\'slash -- kept';", "SELECT E'back\\'slash -- kept';"),
        ("DO $$ BEGIN  -- body comment\n  PERFORM 1;\nEND $$;", "DO $$BEGIN PERFORM 1; END$$;"),
        (
            "CREATE FUNCTION f() RETURNS text AS $fn$ SELECT '$$ -- x'::text $fn$ LANGUAGE sql;",
            "CREATE FUNCTION f() RETURNS text AS $fn$SELECT '$$ -- x'::text$fn$ LANGUAGE sql;",
        ),
        ("-- mfs:no-transaction\nCREATE INDEX x ON t (a);", "-- mfs:no-transaction CREATE INDEX x ON t (a);"),
    ],
)
def test_the_checksummed_text_drops_comments_and_layout_only(text: str, expected: str) -> None:
    assert normalised_sql(text) == expected


def test_edition_variants_are_chosen_by_license(tmp_path: Path) -> None:
    (tmp_path / "001_base.sql").write_text("SELECT 1;")
    (tmp_path / "002_rollups.apache.sql").write_text("SELECT 2;")
    (tmp_path / "002_rollups.timescale.sql").write_text("SELECT 3;")
    assert [m.path.name for m in migrations.discover("apache", tmp_path)] == ["001_base.sql", "002_rollups.apache.sql"]
    assert [m.path.name for m in migrations.discover("timescale", tmp_path)][1] == "002_rollups.timescale.sql"
    (tmp_path / "003_lonely.apache.sql").write_text("SELECT 4;")
    with pytest.raises(StorageError, match="need both"):
        migrations.discover("apache", tmp_path)


def test_bad_file_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_bad.sql").write_text("SELECT 1;")
    with pytest.raises(StorageError, match="NNN_name"):
        migrations.discover("apache", tmp_path)


def test_edition_is_reported(db_url: str) -> None:
    conn = connect(db_url)
    assert migrations.edition(conn) in ("apache", "timescale")
    conn.close()
