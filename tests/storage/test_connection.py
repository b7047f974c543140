"""The store's connection pool: at most ``database.pool_size`` connections per process, a wait
for a free one (then one clear error), and a connection the server dropped replaced before it is
handed out."""

from __future__ import annotations

import threading
import time

import pytest

from mfs.errors import StorageError
from mfs.storage import connection as connections
from mfs.storage.connection import connect, connection, dispose_pools, libpq_url, with_database


def _backend_pid(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])


@pytest.fixture
def pool_of_two(db, config_env):
    dispose_pools()
    config_env(MFS_DATABASE__POOL_SIZE=2)
    yield db
    dispose_pools()


def test_a_third_connection_waits_for_one_of_the_two_to_come_back(pool_of_two) -> None:
    first, second = connection(), connection()
    first_pid = _backend_pid(first.__enter__())
    second.__enter__()
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(_held_pid()), daemon=True)
    waiter.start()
    time.sleep(0.5)
    assert got == []  # both connections are in use: the third caller waits
    first.__exit__(None, None, None)
    waiter.join(timeout=10)
    second.__exit__(None, None, None)
    assert got == [first_pid]  # the returned connection, not a new one


def _held_pid() -> int:
    with connection() as conn:
        return _backend_pid(conn)


def test_no_free_connection_within_the_timeout_is_one_clear_error(pool_of_two, monkeypatch) -> None:
    monkeypatch.setattr(connections, "POOL_TIMEOUT_S", 0.2)
    wanted = r"no free database connection within 0\.2 s: all 2 .* are in use"
    with connection(), connection(), pytest.raises(StorageError, match=wanted), connection():
        pass
    with connection() as conn:  # both came back
        assert _backend_pid(conn) > 0


def test_a_connection_the_server_dropped_is_replaced_before_it_is_handed_out(pool_of_two) -> None:
    with connection() as conn:
        dropped = _backend_pid(conn)
    admin = connect(autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (dropped,))
            for _ in range(100):
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (dropped,))
                if cur.fetchone()[0] == 0:
                    break
                time.sleep(0.05)
    finally:
        admin.close()
    with connection() as conn:
        assert _backend_pid(conn) != dropped
        with conn.cursor() as cur:
            cur.execute("SHOW timezone")
            assert cur.fetchone()[0] == "UTC"


def test_urls_keep_their_credentials_and_options() -> None:
    url = "postgresql+psycopg2://u%40x:s3cret@127.0.0.1:5432/mfs?sslmode=disable"
    assert libpq_url(url) == "postgresql://u%40x:s3cret@127.0.0.1:5432/mfs?sslmode=disable"
    assert with_database(url, "other") == "postgresql+psycopg2://u%40x:s3cret@127.0.0.1:5432/other?sslmode=disable"
