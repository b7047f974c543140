"""Security: symbols validated at every boundary and SQL parameterized (an injection-shaped symbol
is rejected end to end, tables intact); the read-only role cannot write nor read internal tables;
the local server listens on 127.0.0.1 only with password authentication; DSN passwords never
reach logs or run records; no credentials in tracked files."""

from __future__ import annotations

import ast
import os
import re
import secrets
import socket
import subprocess
from pathlib import Path

import psutil
import psycopg2
import pytest
from psycopg2 import errors
from sqlalchemy.engine import make_url

from mfs import provisioning
from mfs.config import get_config
from mfs.errors import ConfigError, RunFailedError, SymbolError
from mfs.features import compute
from mfs.ingest import backfill, collect
from mfs.orchestration.artifacts import summary_markdown, symbol_rows
from mfs.runs import SymbolResult, recorded_run
from mfs.storage.connection import connect
from tests.reliability.reliability_helpers import ASOF, error_lines, mfs_env, run_mfs

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
INJECTION = "AAPL'); DROP TABLE market_data;--"


def _intact(cur) -> tuple:
    cur.execute(
        "SELECT to_regclass('market_data') IS NOT NULL, (SELECT count(*) FROM market_data), "
        "(SELECT count(*) FROM pipeline_runs)"
    )
    return cur.fetchone()


@pytest.mark.slow
def test_an_injection_shaped_symbol_is_rejected_at_every_boundary(conn, fake_yahoo, config_env):
    collect(["AAPL"], "1d", days=10, session=fake_yahoo(asof=ASOF))
    with conn.cursor() as cur:
        before = _intact(cur)
    assert before[0] and before[1] > 0

    config_env(MFS_SYMBOLS=INJECTION)  # configuration: one ConfigError lists every wrong key
    with pytest.raises(ConfigError, match="not a valid ticker"):
        get_config()
    config_env(MFS_SYMBOLS=None)
    for call in (
        lambda: collect([INJECTION], "1d", session=fake_yahoo(asof=ASOF)),  # Python API
        lambda: collect(["AAPL", INJECTION], "1d", session=fake_yahoo(asof=ASOF)),
        lambda: backfill(INJECTION, days=5, session=fake_yahoo(asof=ASOF)),
        lambda: compute([INJECTION], "1d"),
        lambda: compute(["AAPL"], "1d", faults={INJECTION: "raise"}),
    ):
        with pytest.raises(SymbolError, match="not a valid ticker"):
            call()
    env = mfs_env(os.environ["MFS_DATABASE_URL"])
    for args in (
        ["collect", "--offline", "--symbols", INJECTION],
        ["backfill", "--offline", "--symbols", f"MSFT,{INJECTION}"],
        ["features", "--symbols", INJECTION],
    ):  # command line
        result = run_mfs(env, *args)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert len(error_lines(result.stderr)) == 1 and "not a valid ticker" in result.stderr, result.stderr
    result = run_mfs(dict(env, MFS_SYMBOLS=INJECTION), "collect", "--offline")  # configuration, from the CLI
    assert result.returncode != 0 and "not a valid ticker" in result.stderr
    with conn.cursor() as cur:
        assert _intact(cur) == before, "nothing ran, nothing was dropped"


def test_flow_parameters_reject_an_injection_shaped_symbol(conn, prefect_harness, config_env):
    from flows.collect import collect as collect_flow
    from flows.features import features as features_flow

    with conn.cursor() as cur:
        before = _intact(cur)
    for state in (
        collect_flow(symbols=[INJECTION], offline=True, market_hours_only=False, return_state=True),
        features_flow(symbols=[INJECTION], market_hours_only=False, wait_for_collect=False, return_state=True),
    ):
        assert state.is_failed() and "not a valid ticker" in state.message, state
    with conn.cursor() as cur:
        assert _intact(cur) == before


# Every f-string/format/concatenated SQL statement in the code, with why its interpolation is safe
# (names from fixed lists, never a value). A new one fails this test until it is reviewed here.
REVIEWED_DYNAMIC_SQL = {
    ("src/mfs/aggregates/refresh.py", "column,extra,table"): "table/column/extra from a fixed tuple in the loop",
    ("src/mfs/aggregates/refresh.py", "key,ranges,rollup"): "rollup/key/ranges from a fixed tuple in the loop",
    ("src/mfs/aggregates/refresh.py", "aggregate,rollup"): "rollup names from a fixed tuple",
    ("src/mfs/storage/records.py", "cur.mogrify(query, params).decode()"): "values bound by mogrify",
    ("src/mfs/storage/lifecycle.py", "table"): "table names from a fixed tuple",
    ("src/mfs/dataset/versions.py", "source.table"): "market_data or features, from the two fixed Source constants",
    ("src/mfs/bench/pit.py", "', '.join(columns),complete,revisions,select,table,values['known_to']"): (
        "table names and conditions fixed in the benchmark, columns from the table's own catalog"
    ),
    ("src/mfs/bench/pit_reads.py", "_select()"): "the checked feature names of the configured file",
}
SQL_CALLS = {"execute", "executemany", "mogrify", "copy_expert", "execute_values"}


def _interpolations(node: ast.AST) -> str:
    parts = sorted({ast.unparse(v.value) for v in ast.walk(node) if isinstance(v, ast.FormattedValue)})
    return ",".join(parts) if parts else ast.unparse(node)


def test_sql_statements_are_parameterized():
    found = {}
    for path in sorted([*ROOT.joinpath("src/mfs").rglob("*.py"), *ROOT.joinpath("flows").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS
            ):
                continue
            args = node.args[1:] if node.func.attr == "execute_values" else node.args
            if not args:
                continue
            query = args[0]
            composed = (
                isinstance(query, ast.Call)
                and isinstance(query.func, ast.Attribute)
                and query.func.attr == "format"
                and "sql.SQL" in ast.unparse(query.func.value)
            )
            if composed:  # psycopg2.sql composition quotes identifiers and literals itself
                continue
            if isinstance(query, (ast.JoinedStr, ast.BinOp)) or (
                isinstance(query, ast.Call) and isinstance(query.func, ast.Attribute) and query.func.attr == "format"
            ):
                found[(str(path.relative_to(ROOT)), _interpolations(query))] = node.lineno
    unreviewed = {k: line for k, line in found.items() if k not in REVIEWED_DYNAMIC_SQL}
    assert not unreviewed, f"SQL built from strings, not reviewed (bind values with %s instead): {unreviewed}"


@pytest.fixture
def reader_url(db, monkeypatch) -> str:
    passwords = {"MFS_READER_PASSWORD": secrets.token_urlsafe(16), "MFS_WRITER_PASSWORD": secrets.token_urlsafe(16)}
    for name, value in passwords.items():
        monkeypatch.setenv(name, value)
    provisioning.sync_role_passwords(db)
    return (
        make_url(db)
        .set(username="mfs_reader", password=passwords["MFS_READER_PASSWORD"])
        .render_as_string(hide_password=False)
    )


def test_the_reader_role_cannot_write_nor_read_internal_tables(reader_url, conn, fake_yahoo):
    from mfs.ingest.write import MARKET_DATA_COLUMNS
    from mfs.storage.bulk import upsert

    collect(["AAPL"], "1d", days=10, session=fake_yahoo(asof=ASOF))
    # A writer mid-upsert: its staging table exists (a temp table of its session).
    with conn.cursor() as cur:
        cur.execute(
            "SELECT symbol, interval, ts, open, high, low, close, adj_close, volume, source, closes_at FROM market_data"
        )
        rows = cur.fetchall()
        data = {c.name: [r[i] for r in rows] for i, c in enumerate(MARKET_DATA_COLUMNS)}
        import pandas as pd

        data["ts"] = pd.DatetimeIndex(data["ts"]).tz_convert("UTC")
        data["closes_at"] = pd.DatetimeIndex(data["closes_at"]).tz_convert("UTC")
        upsert(cur, "market_data", MARKET_DATA_COLUMNS, data, key=["symbol", "interval", "ts"])
        cur.execute("""SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relpersistence = 't' AND c.relkind = 'r' AND n.nspname LIKE 'pg_temp%%'""")
        staging = cur.fetchall()
        assert staging, "the writer's staging table exists"
        conn.commit()  # the staging table lives on with the session (ON COMMIT DELETE ROWS)
        reader = connect(reader_url, autocommit=True)
        try:
            with reader.cursor() as rc:
                # TRUNCATE/DROP of a hypertable queue for its lock before the privilege check: never
                # let a refused statement wait behind someone else's transaction.
                rc.execute("SET lock_timeout = '5s'")
                rc.execute("SELECT count(*) FROM market_data")
                assert rc.fetchone()[0] == len(rows)  # it can read the serving tables
                denied = [
                    "SELECT * FROM quarantine",
                    "SELECT * FROM pipeline_runs",
                    "SELECT * FROM symbol_runs",
                    "INSERT INTO market_data (symbol, interval, ts, open, high, low, close, volume, source) "
                    "VALUES ('X', '1d', now(), 1, 1, 1, 1, 1, 'x')",
                    "UPDATE market_data SET close = close * 2",
                    "DELETE FROM features",
                    "TRUNCATE market_data",
                    "DROP TABLE market_data",
                    "CREATE TABLE public.reader_table (x int)",
                    *(f'SELECT * FROM "{schema}"."{name}"' for schema, name in staging),  # names from pg_class
                ]
                for statement in denied:
                    with pytest.raises(
                        (errors.InsufficientPrivilege, errors.FeatureNotSupported, errors.UndefinedTable)
                    ) as caught:
                        rc.execute(statement)
                    if statement.startswith('SELECT * FROM "pg_temp'):
                        assert "temporary tables of other sessions" in str(caught.value) or isinstance(
                            caught.value, errors.InsufficientPrivilege
                        )
                    else:
                        assert isinstance(caught.value, errors.InsufficientPrivilege), (statement, caught.value)
        finally:
            reader.close()


def test_the_local_server_listens_on_loopback_only_and_requires_passwords(server_url):
    if os.environ.get("MFS_TEST_DATABASE_URL"):
        pytest.skip("tests run against an external server")
    url = make_url(server_url)
    admin = connect(server_url, autocommit=True)
    with admin.cursor() as cur:
        cur.execute("SHOW listen_addresses")
        assert cur.fetchone()[0] == "127.0.0.1"
        cur.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
        assert {r[0] for r in cur.fetchall()} == {"scram-sha-256"}
    admin.close()
    # Nothing answers on the machine's other addresses.
    others = [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]
    for address in others:
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex((address, url.port)) != 0, f"the server answers on {address}:{url.port}"
    # A wrong password and no password are refused.
    for password in ("wrong-" + secrets.token_hex(4), ""):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(
                host="127.0.0.1",
                port=url.port,
                user=url.username,
                dbname="postgres",
                password=password,
                connect_timeout=5,
            )


@pytest.mark.slow
def test_dsn_passwords_never_reach_logs_or_run_records(conn, db_url, password_server_url, monkeypatch):
    # The runs connect as the writer with a password made here (the server may not ask for one:
    # the wrong-password case goes to a server that does).
    password = secrets.token_urlsafe(16)
    monkeypatch.setenv("MFS_WRITER_PASSWORD", password)
    provisioning.sync_role_passwords(db_url)
    writer_url = make_url(db_url).set(username="mfs_writer", password=password).render_as_string(hide_password=False)
    env = mfs_env(writer_url, MFS_LOG_LEVEL="DEBUG")
    env.pop("MFS_WRITER_PASSWORD")
    outputs = [
        run_mfs(env, "backfill", "--offline", "--symbols", "AAPL,ZZZZ", "--days", "5"),  # one failed symbol
        run_mfs(env, "features", "--symbols", "AAPL,ZZZZ"),
    ]
    wrong = "not-the-" + secrets.token_hex(6)
    bad_url = make_url(password_server_url).set(password=wrong).render_as_string(hide_password=False)
    outputs.append(run_mfs(dict(env, MFS_DATABASE_URL=bad_url), "collect", "--offline", "--symbols", "AAPL"))
    assert outputs[0].returncode == 1 and outputs[2].returncode == 1
    assert "cannot connect" in outputs[2].stderr
    for out in outputs:
        text = out.stdout + out.stderr
        assert password not in text and wrong not in text
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(string_agg(p::text, E'\\n'), '') FROM pipeline_runs p")
        runs = cur.fetchone()[0]
        cur.execute("SELECT coalesce(string_agg(s::text, E'\\n'), '') FROM symbol_runs s")
        symbols = cur.fetchone()[0]
    assert "ZZZZ" in symbols and runs
    assert password not in runs and password not in symbols
    # What the flows publish as artifacts is built from the same reports.
    report = collect(["AAPL", "ZZZZ"], "1d", days=5, offline=True, raise_on_failure=False)
    artifact = summary_markdown("collect", [report], "failed") + repr(symbol_rows([report]))
    assert "ZZZZ" in artifact and password not in artifact


def test_a_failure_reason_quoting_a_dsn_is_masked_in_run_records_and_artifacts(conn):
    # Whatever a library puts in an error message (here a DSN and a key=value password) is masked
    # where it is stored or shown, not only in our own messages.
    reason = "upstream: could not reach postgresql://mfs:hunter2@db.example/mfs (password=hunter2)"
    with recorded_run("collect", {}, raise_on_failure=False) as report:
        report.results.append(SymbolResult("ZZZZ", "collect_1h", "failed", reason=reason))
    shown = summary_markdown("collect", [report], "failed", error=reason) + repr(symbol_rows([report]))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT s.reason, p.error_summary FROM symbol_runs s JOIN pipeline_runs p USING (run_id) WHERE run_id = %s",
            (report.run_id,),
        )
        stored = " ".join(cur.fetchone())
    # The error a failing run raises (the CLI's stderr, the Prefect flow run's state message) and
    # the report itself (the CLI's per-symbol table) are built from the same reasons.
    with pytest.raises(RunFailedError) as raised, recorded_run("collect", {}) as failing:
        failing.results.append(SymbolResult("ZZZZ", "collect_1h", "failed", reason=reason))
    for text in (shown, stored, str(raised.value), failing.results[0].reason):
        assert "hunter2" not in text, text
        assert "postgresql://mfs:***@db.example/mfs" in text and "password=***" in text


CREDENTIAL_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key": re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}", re.I),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "quoted password literal": re.compile(r"""\b(?:password|passwd|pwd)\s*[=:]\s*(["'])(?P<v>[^"'\s]+)\1""", re.I),
    "password assignment": re.compile(r"""^\s*(?:export\s+)?[A-Z_]*PASSWORD[A-Z_]*\s*[=:]\s*(?P<v>[^\s#"']+)""", re.M),
    "DSN with an inline password": re.compile(r"""\b[a-z][a-z0-9+.-]*://[^:/\s@'"]+:(?P<v>[^@\s/'"]+)@""", re.I),
}
# Documented placeholders, and the fake secrets the masking tests feed in on purpose.
PLACEHOLDERS = {"change-me", "…", "...", "***", "password", "wrong", "unused", "hunter2", "s3cret", "abc"}


def credential_findings(name: str, text: str) -> list[str]:
    found = []
    for kind, pattern in CREDENTIAL_PATTERNS.items():
        if kind == "password assignment" and name.endswith(".py"):
            # env/config/shell syntax; in Python, `X_PASSWORD = expr` is code (quoted literals are caught above)
            continue
        for match in pattern.finditer(text):
            value = match.groupdict().get("v")
            if value is not None and (value in PLACEHOLDERS or value[0] in "${<%*"):
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{name}:{line}: {kind}")
    return found


def test_no_credentials_in_tracked_files():
    # The scanner itself finds what it must (assembled here so this file does not match).
    planted = (
        "-----BEGIN RSA " + "PRIVATE KEY-----\n" + "dsn = 'postgresql://u:" + "Xy7#kq@h/db'\nAKIA" + "ABCDEFGHIJKLMNOP"
    )
    assert len(credential_findings("planted", planted)) == 3
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    findings = []
    for name in filter(None, files.split("\0")):
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary files
        findings += credential_findings(name, text)
    assert findings == [], findings
