"""Repeatable SQL files (sql/functions/, sql/views/): applied after the numbered migrations when
their text changed, twins from one template, and a store made by the release before the move
(commit 4ba6e18) ends with the same functions and views as a fresh one, its rows kept."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mfs import aggregates
from mfs.errors import StorageError
from mfs.storage import migrations, repeatable
from mfs.storage.connection import connect, with_database
from mfs.storage.edited import EDITED
from tests.aggregates.aggregate_helpers import columns_of, execute, make_bars, query, write_bars, write_features

RELEASE_BEFORE_REPEATABLES = "4ba6e18"
# Every function and view of the schema (not the extension's): definition, privileges, comment.
CATALOG = """
    SELECT 'function ' || p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proacl::text,
           obj_description(p.oid, 'pg_proc'), pg_get_userbyid(p.proowner)
    FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace AND p.prokind IN ('f', 'p')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'view ' || c.relname, pg_get_viewdef(c.oid), c.relacl::text,
           obj_description(c.oid, 'pg_class'), pg_get_userbyid(c.relowner)
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('v', 'm')
    UNION ALL
    SELECT 'table ' || c.relname, NULL, c.relacl::text, NULL, NULL
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relname IN ('schema_migrations', 'schema_repeatables')
    ORDER BY 1
"""
ROWS = {
    "market_data": "SELECT count(*), md5(string_agg(to_jsonb(t)::text, ',' ORDER BY symbol, interval, ts)) "
    "FROM market_data t",
    "features": "SELECT count(*), md5(string_agg(to_jsonb(t)::text, ',' ORDER BY symbol, interval, ts)) "
    "FROM features t",
    "ohlcv_1d": "SELECT count(*), md5(string_agg((symbol, day, open, high, low, close, volume)::text, ','"
    " ORDER BY symbol, day)) FROM ohlcv_1d",
    "latest_features": "SELECT count(*), md5(string_agg(to_jsonb(t)::text, ',' ORDER BY symbol, interval)) "
    "FROM latest_features t",
}
# The as-of functions answer the same before and after their definitions moved.
ASOF = [
    f"SELECT count(*), md5(string_agg(to_jsonb(a)::text, ',' ORDER BY entity)) FROM {function}("
    "ARRAY['AAPL', 'KO', 'AAPL'], ARRAY['2024-11-13 18:00Z', '2024-11-20 21:00Z', '2024-11-02 00:00Z']::timestamptz[],"
    " 'infinity') a"
    for function in ("features_asof", "bars_asof")
]


def _catalog(url: str) -> list[tuple]:
    return query(url, CATALOG)


def _database(server_url: str) -> Iterator[str]:
    url = with_database(server_url, f"mfs_rep_{uuid.uuid4().hex[:8]}")
    migrations.ensure_database(url)
    try:
        yield url
    finally:
        migrations.drop_database(url)


@pytest.fixture
def fresh_db(server_url: str) -> Iterator[str]:
    yield from _database(server_url)


@pytest.fixture
def other_db(server_url: str) -> Iterator[str]:
    yield from _database(server_url)


@pytest.fixture
def sql_copy(tmp_path: Path, project_root: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(project_root / "sql", target)
    return target


@pytest.fixture
def released_sql(tmp_path: Path, project_root: Path) -> Path:
    """sql/ exactly as the release before repeatable files shipped it (from git history)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(project_root), "archive", RELEASE_BEFORE_REPEATABLES, "sql"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.fail(f"git history with commit {RELEASE_BEFORE_REPEATABLES} is needed (a full clone)")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path / "released", filter="data")
    return tmp_path / "released" / "sql"


def _fill(url: str) -> None:
    for i, symbol in enumerate(("AAPL", "KO")):
        bars = make_bars(symbol, "2024-11-04", "2024-11-22", seed=i)
        write_bars(url, bars)
        write_features(url, bars)
    # fetched after their close, so complete (the helper leaves that column as a writer from
    # before it existed did); the update keeps the first versions as revisions
    execute(url, "UPDATE features SET bar_ingested_at = now()")
    execute(url, "SELECT mfs_refresh_features_latest()")
    aggregates.refresh(url=url)


def test_a_store_of_the_release_before_upgrades_to_a_fresh_stores_definitions(
    fresh_db: str, other_db: str, released_sql: Path
) -> None:
    assert not (released_sql / "functions").exists()  # the release had numbered files only
    migrations.migrate(other_db, released_sql)
    _fill(other_db)
    rows = {name: query(other_db, statement) for name, statement in ROWS.items()}
    answers = [query(other_db, statement) for statement in ASOF]
    assert [a[0][0] for a in answers] == [2, 2]  # the pair before any bar has no row
    privileges = {name: (acl, owner) for name, _, acl, _, owner in _catalog(other_db)}
    applied = migrations.migrate(other_db)
    # every repeatable file is new to that store (numbered ones only if added since)
    assert [a for a in applied if "/" in a] == [
        r.label for r in repeatable.discover(migrations.edition(connect(other_db)))
    ]
    assert {name: query(other_db, statement) for name, statement in ROWS.items()} == rows
    # what was re-created kept its privileges and owner
    after = {name: (acl, owner) for name, _, acl, _, owner in _catalog(other_db)}
    assert {name: after.get(name) for name in privileges} == privileges
    assert [query(other_db, statement) for statement in ASOF] == answers
    migrations.migrate(fresh_db)
    fresh, upgraded = _catalog(fresh_db), _catalog(other_db)
    assert [r[0] for r in fresh] == [r[0] for r in upgraded]
    assert [r for r in fresh if r not in upgraded] == []
    # the applied history records the current text of every file, edited ones included
    assert query(other_db, "SELECT version, checksum FROM schema_migrations ORDER BY 1") == query(
        fresh_db, "SELECT version, checksum FROM schema_migrations ORDER BY 1"
    )


def _applied_at(url: str) -> dict[str, object]:
    return dict(query(url, "SELECT name, applied_at FROM schema_repeatables"))


def test_a_changed_file_is_applied_again_and_an_unchanged_one_is_not(fresh_db: str, sql_copy: Path) -> None:
    migrations.migrate(fresh_db, sql_copy)
    before = _applied_at(fresh_db)
    assert migrations.migrate(fresh_db, sql_copy) == []
    assert _applied_at(fresh_db) == before
    view = sql_copy / "views" / "quarantined_bars.sql"
    view.write_text("-- a reworded comment only\n" + view.read_text())
    assert migrations.migrate(fresh_db, sql_copy) == []
    # a column renamed: CREATE OR REPLACE could not; the views are dropped and created again
    view.write_text(view.read_text().replace("at AS quarantined_at", "at AS refused_at"))
    function = sql_copy / "functions" / "asof.sql"
    function.write_text(function.read_text().replace("as known at known_at", "as the store knew it at known_at"))
    assert migrations.migrate(fresh_db, sql_copy) == ["functions/asof", "views/quarantined_bars"]
    after = _applied_at(fresh_db)
    assert [n for n in before if after[n] != before[n]] == ["asof", "quarantined_bars"]
    assert columns_of(fresh_db, "quarantined_bars") == ["symbol", "interval", "ts", "reason", "refused_at", "run_id"]
    assert query(fresh_db, "SELECT has_table_privilege('mfs_reader', 'quarantined_bars', 'SELECT')") == [(True,)]
    # both twins come from the one template
    comments = query(
        fresh_db,
        """SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p
           WHERE proname IN ('features_asof', 'bars_asof') ORDER BY proname""",
    )
    assert [c[0].split(" as the store knew it at ")[0] for c in comments] == [
        "Per (symbols[i], at[i]): the newest row of market_data whose bar closed by at,",
        "Per (symbols[i], at[i]): the newest row of features whose bar closed by at,",
    ]


def test_a_view_a_numbered_migration_dropped_comes_back_from_its_file(fresh_db: str, sql_copy: Path) -> None:
    migrations.migrate(fresh_db, sql_copy)
    (sql_copy / "998_change_under_a_view.sql").write_text(
        "DROP VIEW pipeline_history;\nALTER TABLE pipeline_runs ALTER COLUMN flow SET NOT NULL;\n"
    )
    assert migrations.migrate(fresh_db, sql_copy) == ["998_change_under_a_view", "views/pipeline_history"]
    assert query(fresh_db, "SELECT has_table_privilege('mfs_reader', 'pipeline_history', 'SELECT')") == [(True,)]
    assert migrations.migrate(fresh_db, sql_copy) == []


def test_a_failed_file_changes_nothing(fresh_db: str, sql_copy: Path) -> None:
    migrations.migrate(fresh_db, sql_copy)
    before = _catalog(fresh_db), _applied_at(fresh_db)
    view = sql_copy / "views" / "pipeline_history.sql"
    view.write_text(view.read_text().replace("FROM pipeline_runs", "FROM no_such_table"))
    with pytest.raises(StorageError, match=r"repeatable views failed and was rolled back.*no_such_table"):
        migrations.migrate(fresh_db, sql_copy)
    assert (_catalog(fresh_db), _applied_at(fresh_db)) == before


def test_order_follows_names_and_after_lines(tmp_path: Path) -> None:
    for kind, name, text in [
        ("views", "a_view", "-- mfs:after b_view\nCREATE VIEW a_view AS SELECT * FROM b_view;\n"),
        ("views", "b_view", "CREATE VIEW b_view AS SELECT 1 AS x;\n"),
        ("functions", "z_fn", "SELECT 1;\n"),
        ("functions", "only_apache.apache", "SELECT 1;\n"),
    ]:
        (tmp_path / kind).mkdir(exist_ok=True)
        (tmp_path / kind / f"{name}.sql").write_text(text)
    assert [r.label for r in repeatable.discover("apache", tmp_path)] == [
        "functions/only_apache",
        "functions/z_fn",
        "views/b_view",
        "views/a_view",
    ]
    assert [r.label for r in repeatable.discover("timescale", tmp_path)] == [
        "functions/z_fn",
        "views/b_view",
        "views/a_view",
    ]
    (tmp_path / "views" / "b_view.sql").write_text("-- mfs:after a_view\nSELECT 1;\n")
    with pytest.raises(StorageError, match="cycle"):
        repeatable.discover("apache", tmp_path)


def test_twin_values_must_be_identifiers(tmp_path: Path) -> None:
    (tmp_path / "functions").mkdir()
    path = tmp_path / "functions" / "twins.sql"
    path.write_text("-- mfs:twin t=market_data\n-- mfs:twin t=features\nSELECT count(*) FROM {{t}};\n")
    assert repeatable.discover("apache", tmp_path)[0].statements().count("FROM market_data;") == 1
    path.write_text(
        "-- mfs:twin edition=apache t=market_data\n-- mfs:twin edition=timescale t=features\nSELECT {{t}};\n"
    )
    assert [r.statements().count("SELECT") for r in repeatable.discover("apache", tmp_path)] == [1]
    assert "SELECT features;" in repeatable.discover("timescale", tmp_path)[0].statements()
    path.write_text("-- mfs:twin t=x;DROP\nSELECT count(*) FROM {{t}};\n")
    with pytest.raises(StorageError, match="key=identifier"):
        repeatable.discover("apache", tmp_path)[0].statements()


def test_edited_numbered_files_map_old_records_to_their_current_text() -> None:
    current = {m.path.name: m for edition in migrations.EDITIONS for m in migrations.discover(edition)}
    for name, (now, *olds) in EDITED.items():
        assert current[name].checksum == now, name
        assert all(current[name].accepts(old) for old in olds), name
