"""mfs_reader reads every serving relation and nothing else, and cannot write anything;
mfs_writer can run the write path. Tested by really connecting as the roles with passwords
from the environment."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import errors
from sqlalchemy.engine import make_url

from mfs import aggregates, provisioning
from mfs.storage.connection import connect
from tests.aggregates.aggregate_helpers import execute, make_bars, query, write_bars

SERVING = {
    "market_data",
    "features",
    "symbols",
    "market_sessions",
    "ohlcv_1d",
    "ohlcv_1w",
    "features_1d",
    "latest_features",
    "latest_features_packed",
    "data_freshness",
    "missing_sessions",
    "stored_series",
    "expected_bars",
    # point in time: every version of a bar or feature row, and the row types of the asof functions
    "market_data_revisions",
    "features_revisions",
    "bar_versions",
    "feature_versions",
    "bars_asof_row",
    "features_asof_row",
    # what each feature column holds and since when
    "feature_registry",
    # data quality: the splits and dividends served, and the anomalies found (not the held bars' raw values)
    "corporate_actions",
    "data_quality",
    # feature monitoring: statistics per run, drift checks and verdicts, served vs final, audits
    "feature_stats",
    "feature_drift_checks",
    "feature_drift",
    "feature_skew_rows",
    "feature_skew",
    "feature_audits",
    # the dashboard: the run history (shell runs too) and which bars were quarantined (no raw values)
    "pipeline_history",
    "quarantined_bars",
}


def _as_role(url: str, role: str, password: str) -> str:
    return make_url(url).set(username=role, password=password).render_as_string(hide_password=False)


@pytest.fixture
def role_urls(agg_db, monkeypatch) -> Iterator[dict[str, str]]:
    passwords = {"mfs_reader": secrets.token_urlsafe(16), "mfs_writer": secrets.token_urlsafe(16)}
    monkeypatch.setenv("MFS_READER_PASSWORD", passwords["mfs_reader"])
    monkeypatch.setenv("MFS_WRITER_PASSWORD", passwords["mfs_writer"])
    assert provisioning.sync_role_passwords(agg_db) == ["mfs_reader", "mfs_writer"]
    yield {role: _as_role(agg_db, role, pw) for role, pw in passwords.items()}
    # Roles are the cluster's: give mfs_reader back the password every other session logs in with.
    monkeypatch.delenv("MFS_READER_PASSWORD")
    provisioning.sync_role_passwords(agg_db)


def test_without_variables_only_the_reader_gets_the_generated_password(agg_db, monkeypatch) -> None:
    """On this machine's clusters `mfs db up` gives mfs_reader a generated password (readers such as
    the dashboard log in as the role); the writer keeps none unless MFS_WRITER_PASSWORD says."""
    monkeypatch.delenv("MFS_READER_PASSWORD", raising=False)
    monkeypatch.delenv("MFS_WRITER_PASSWORD", raising=False)
    assert provisioning.sync_role_passwords(agg_db) == ["mfs_reader"]
    monkeypatch.setenv("MFS_DATABASE_URL", "postgresql://mfs@db.example.invalid/mfs")
    assert provisioning.sync_role_passwords(agg_db) == [], "another host's reader password is never guessed"


def materialized_rows(url: str, aggregate: str) -> int:
    """Rows a continuous aggregate has materialized (its real-time part not counted)."""
    ((table,),) = query(
        url,
        """SELECT quote_ident(materialization_hypertable_schema) || '.' || quote_ident(materialization_hypertable_name)
                              FROM timescaledb_information.continuous_aggregates WHERE view_name = %s""",
        (aggregate,),
    )
    return query(url, f"SELECT count(*) FROM {table}")[0][0]  # a name from TimescaleDB's catalog


def internal_relations(url: str, edition: str) -> list[str]:
    """The aggregates' internal state, which only the owner side may read."""
    if edition == "apache":
        return ["aggregate_invalidations", "ohlcv_1d_rollup", "features_1d_rollup", "features_1d_last"]
    return ["features_1d_last", "ohlcv_1d_cagg", "ohlcv_1w_cagg"] + [
        r[0]
        for r in query(
            url,
            """SELECT quote_ident(materialization_hypertable_schema) || '.'
                                               || quote_ident(materialization_hypertable_name)
                                        FROM timescaledb_information.continuous_aggregates ORDER BY 1""",
        )
    ]


def test_reader_reads_serving_relations_only(role_urls, agg_db, edition) -> None:
    write_bars(agg_db, make_bars("AAPL", "2024-03-04", "2024-03-08"))
    aggregates.refresh()
    reader = connect(role_urls["mfs_reader"], autocommit=True)
    try:
        with reader.cursor() as cur:
            for relation in sorted(SERVING):
                cur.execute(f"SELECT count(*) FROM {relation}")  # names from the fixed set above
            cur.execute("SELECT count(*) FROM ohlcv_1d")
            assert cur.fetchone()[0] == 5
            # the session columns, whose partial flag reads the hourly bars with the reader's rights
            cur.execute("SELECT min(session_date), bool_or(partial) FROM ohlcv_1d")
            assert cur.fetchone() == (dt.date(2024, 3, 4), False)
            cur.execute("SELECT week_start, partial FROM ohlcv_1w")
            assert cur.fetchall() == [(dt.date(2024, 3, 4), False)]
            cur.execute("SELECT count(*) FROM universe_asof(current_date)")  # the reader may call it
            # Exactly the serving relations are readable: a new internal table must be revoked.
            cur.execute("""SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
                             AND has_table_privilege(c.oid, 'SELECT')""")
            assert {r[0] for r in cur.fetchall()} == SERVING
            cur.execute("""SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname IN ('public', '_timescaledb_internal') AND c.relkind IN ('r', 'v', 'm', 'p')
                             AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE')
                                  OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE'))""")
            assert cur.fetchone()[0] == 0
            internal = [f"SELECT * FROM {name}" for name in internal_relations(agg_db, edition)]
            for statement in (
                "SELECT * FROM quarantine",
                "SELECT * FROM pipeline_runs",
                "SELECT * FROM symbol_runs",
                "SELECT * FROM schema_migrations",
                "SELECT * FROM feature_schema_changes",
                *internal,
            ):
                with pytest.raises(errors.InsufficientPrivilege):
                    cur.execute(statement)
            for statement in (
                "INSERT INTO market_data (symbol, interval, ts, open, high, low, close, volume) "
                "VALUES ('AAPL', '1h', now(), 1, 1, 1, 1, 1)",
                "UPDATE market_data SET volume = 0",
                "DELETE FROM features",
                "INSERT INTO market_sessions (day_start, day_end, open_utc, close_utc, half_day) "
                "VALUES ('2030-01-01', '2030-01-02', '2030-01-01 14:00', '2030-01-01 20:00', false)",
                "CREATE TABLE mine (x int)",
                "CREATE TEMP TABLE mine (x int)",
                "SELECT drop_chunks('market_data', older_than => now())",
            ):
                with pytest.raises((errors.InsufficientPrivilege, psycopg2.errors.lookup("42501"))):
                    cur.execute(statement)
    finally:
        reader.close()


def test_writer_runs_the_write_path_and_refresh(role_urls, agg_db, edition, monkeypatch) -> None:
    counts = write_bars(role_urls["mfs_writer"], make_bars("MSFT", "2024-03-04", "2024-03-05"))
    assert counts.inserted == 14
    result = aggregates.refresh(url=role_urls["mfs_writer"])
    if edition == "apache":
        assert result["buckets"]["ohlcv_1d"] == 2
    else:  # the refresh materialized the two days (a continuous aggregate owned by a role the writer is in)
        assert materialized_rows(agg_db, "ohlcv_1d_cagg") == 2
        assert materialized_rows(agg_db, "ohlcv_1w_cagg") == 1
    assert query(agg_db, "SELECT count(*) FROM ohlcv_1d WHERE symbol = 'MSFT'") == [(2,)]


def test_a_refused_refresh_is_one_line_from_the_shell(agg_db, edition) -> None:
    """A database error no verb expects (here: a role that may not refresh) ends as one line."""
    import os
    import subprocess
    import sys

    password = secrets.token_urlsafe(16)
    role = f"mfs_test_nobody_{secrets.token_hex(3)}"
    query_admin = connect(agg_db, autocommit=True)
    try:
        with query_admin.cursor() as cur:
            cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s IN ROLE mfs_reader", (password,))  # generated name
        env = dict(os.environ, MFS_DATABASE_URL=_as_role(agg_db, role, password))
        result = subprocess.run(
            [sys.executable, "-m", "mfs.cli.main", "aggregates", "refresh"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        with query_admin.cursor() as cur:
            cur.execute(f"DROP ROLE IF EXISTS {role}")
        query_admin.close()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("mfs: error: the database refused:"), result.stderr
    assert "insufficient_privilege" in lines[0] and password not in result.stderr


@pytest.mark.slow
def test_the_writer_runs_every_pipeline_step_from_the_shell(role_urls, agg_db, edition) -> None:
    """The extra-worker setup: every verb a worker machine runs, connected as mfs_writer, on
    history that lies in compressed chunks on the community edition."""
    import os
    import subprocess
    import sys

    asof = "2025-11-25 21:10Z"  # after the close: every bar final
    env = dict(
        os.environ,
        MFS_DATABASE_URL=role_urls["mfs_writer"],
        MFS_SYNTHETIC_ASOF=asof,
        MFS_INGEST__BACKOFF_INITIAL_S="0.001",
        MFS_INGEST__BACKOFF_MAX_S="0.005",
    )

    def mfs(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "mfs.cli.main", *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (args, done.stderr[-2000:])

    mfs("backfill", "--offline", "--symbols", "AAPL,MSFT", "--days", "60")
    if edition == "timescale":
        compressed = execute(
            agg_db,
            """SELECT count(compress_chunk(c, if_not_compressed => true))
               FROM show_chunks('market_data', older_than => %s::timestamptz - interval '8 days') c""",
            (asof,),
        )
        assert compressed[0][0] >= 1
    for verb in (
        ("collect", "--offline", "--symbols", "AAPL,MSFT"),
        ("features", "--symbols", "AAPL,MSFT"),
        ("aggregates", "refresh"),
    ):
        mfs(*verb)
    assert query(agg_db, "SELECT count(DISTINCT symbol) FROM features_1d") == [(2,)]
    assert (
        query(agg_db, "SELECT count(*) FROM timescaledb_information.chunks WHERE is_compressed")[0][0] >= 1
        or edition == "apache"
    )
    if edition == "timescale":
        assert materialized_rows(agg_db, "features_1d_last") > 0
