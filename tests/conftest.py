"""Shared fixtures: a real PostgreSQL + TimescaleDB, a throwaway database per test session.

The local embedded cluster is brought up with the project's own code (``mfs db up`` logic). It
runs the community license; ``MFS_TEST_EDITION=apache`` runs the session against a second local
cluster with ``timescaledb.license = 'apache'`` (``./scripts/test`` runs the edition-specific
modules there too). With MFS_TEST_DATABASE_URL (or MFS_DATABASE_URL) set, tests use that server
instead. Each session creates its own database there and drops it at the end, so parallel sessions
never see each other's rows.

Tests that hold only on one edition carry ``@pytest.mark.edition("apache")`` (or "timescale")
and are deselected — not skipped — on the other.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from hypothesis import settings as hypothesis_settings

from mfs.config import get_config
from mfs import provisioning
from mfs.storage import migrations
from mfs.storage.connection import connect, dispose_engines, with_database
from mfs.storage.localdb import LocalCluster, default_cluster, ensure_server_installed, start_edition_cluster

# CI draws the same property-test examples on every run: a failure there is reproducible, not a
# one-off draw. Locally, each run explores new examples.
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

DATA_TABLES = ("market_data", "features", "quarantine", "symbol_runs", "pipeline_runs", "symbols")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Read once, at start: the db_url fixture later points MFS_DATABASE_URL at the session database.
_EXTERNAL_URL = os.environ.get("MFS_TEST_DATABASE_URL") or os.environ.get("MFS_DATABASE_URL") or None


def external_test_url() -> str | None:
    """The server named by the environment when the session started, if any."""
    return _EXTERNAL_URL


def target_edition() -> str:
    """The edition this session tests: MFS_TEST_EDITION, else the external server's license, else
    the one the local cluster is configured with."""
    chosen = os.environ.get("MFS_TEST_EDITION")
    if chosen:
        if chosen not in migrations.EDITIONS:
            raise pytest.UsageError(f"MFS_TEST_EDITION={chosen!r}: expected one of {', '.join(migrations.EDITIONS)}")
        return chosen
    url = external_test_url()
    if url:
        conn = connect(url)
        try:
            return migrations.license(conn)
        finally:
            conn.close()
    return get_config().database.edition


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests of the other edition (they run in that edition's session)."""
    marked = [item for item in items if item.get_closest_marker("edition")]
    if not marked:
        return
    edition = target_edition()
    other = [item for item in marked if edition not in item.get_closest_marker("edition").args]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item not in other]


@pytest.fixture(scope="session")
def server_url() -> str:
    """An admin URL of the server the tests use (the local cluster unless told otherwise)."""
    url = external_test_url()
    if url:
        return url
    if target_edition() != get_config().database.edition:
        return start_edition_cluster(target_edition())
    provisioning.up()
    return default_cluster().url()


@pytest.fixture(scope="session")
def password_server_url(server_url: str) -> Iterator[str]:
    """A server that requires passwords (scram-sha-256): the local test cluster, or — when the tests
    run against an external server, which may trust its clients — a throwaway local cluster."""
    if not external_test_url():
        yield server_url
        return
    root = Path(tempfile.mkdtemp(prefix="mfs-scram-"))  # pytest's temp root is private to root: postgres must reach it
    root.chmod(0o755)
    cluster = LocalCluster(root=root / "pg", port=free_port(), edition=target_edition())
    ensure_server_installed()
    cluster.init()
    cluster.start()
    try:
        yield cluster.url()
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def db_url(server_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test session; MFS_DATABASE_URL points at it."""
    name = f"mfs_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = with_database(server_url, name)
    migrations.ensure_database(url)
    migrations.migrate(url)
    previous = os.environ.get("MFS_DATABASE_URL")
    os.environ["MFS_DATABASE_URL"] = url
    get_config.cache_clear()
    yield url
    dispose_engines()
    if previous is None:
        os.environ.pop("MFS_DATABASE_URL", None)
    else:
        os.environ["MFS_DATABASE_URL"] = previous
    migrations.drop_database(url)


@pytest.fixture
def db(db_url: str) -> Iterator[str]:
    """The session database, emptied of data before the test."""
    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            present = {r[0] for r in cur.fetchall()}
            tables = [t for t in DATA_TABLES if t in present]
            if tables:
                cur.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        conn.commit()
    finally:
        conn.close()
    yield db_url


@pytest.fixture
def conn(db: str) -> Iterator[psycopg2.extensions.connection]:
    c = connect(db)
    yield c
    c.close()


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def _yfinance_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yfinance's timezone/cookie caches in a temp dir, never the user's ~/.cache."""
    import yfinance as yf

    path = tmp_path_factory.mktemp("yfinance-cache")
    yf.set_tz_cache_location(str(path))
    return path


@pytest.fixture
def fake_yahoo(_yfinance_cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Factory of offline Yahoo sessions: ``fake_yahoo(asof=..., faults={...})`` (see
    mfs.sources.fake_yahoo). Clears yfinance's in-memory response cache around each test and sets
    tiny retry backoffs so fault tests do not sleep."""
    from mfs.sources.fake_yahoo import synthetic_session
    from mfs.sources.yahoo import clear_request_cache

    monkeypatch.setenv("MFS_INGEST__BACKOFF_INITIAL_S", "0.001")
    monkeypatch.setenv("MFS_INGEST__BACKOFF_MAX_S", "0.005")
    get_config.cache_clear()
    clear_request_cache()
    yield synthetic_session
    clear_request_cache()
    monkeypatch.undo()
    get_config.cache_clear()


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A temporary Prefect server (SQLite) for flow tests, started once per session (~10 s).
    Telemetry off (mission.md §4); PREFECT_HOME in a temp dir whose parent exists."""
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = "mfs"
    # Once the harness attached Prefect's API handler to the mfs logger, an mfs log line outside a
    # flow run (every later non-flow test) warns, and filterwarnings=error turns that into a failure.
    os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield
