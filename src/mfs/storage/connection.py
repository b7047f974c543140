"""Database URLs and connections.

One pool per process and URL (``psycopg2_pool``), so a process never holds more than
``database.pool_size`` connections: a thread that finds them all in use waits for one (up to
``POOL_TIMEOUT_S``), and every connection handed out has just answered a ``SELECT 1``, so one the
server dropped (a restart) is replaced, not handed out. ``connection()`` always gives the
connection back, on success and on error; psycopg2's own ``with conn:`` ends the transaction but
leaves the connection open, so a connection opened per such block leaks one per block.

SQLAlchemy is not imported here: it costs every command ~0.25 s of imports (``python -X
importtime``: 250 of 530 ms for ``mfs features`` with nothing to do), and the store needs only
connections from it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions
import psycopg2_pool

from mfs.config import get_config
from mfs.errors import StorageError, first_line
from mfs.logs import mask_secrets
from mfs.storage.localdb import default_cluster

POOL_TIMEOUT_S = 60.0  # how long a thread waits for a free connection of its process's pool
IDLE_TIMEOUT_S = 600  # an idle pooled connection older than this is closed, not reused


@dataclass
class _Pool:
    connections: psycopg2_pool.ThreadSafeConnectionPool
    free: threading.BoundedSemaphore  # one permit per connection the process may hold


_pools: dict[tuple[str, int], _Pool] = {}
_lock = threading.Lock()


def external_url() -> str | None:
    """MFS_DATABASE_URL when set: then the project uses that server and starts nothing locally."""
    url = os.environ.get("MFS_DATABASE_URL", "").strip()
    return url or None


def database_url() -> str:
    """The URL of the store: MFS_DATABASE_URL, or the local embedded cluster's."""
    url = external_url()
    if url:
        return url
    return default_cluster().url()


def reader_password() -> str | None:
    """mfs_reader's password: MFS_READER_PASSWORD, else on this machine's local clusters the one
    `mfs db up` generated for it (None before that, or on another host without the variable)."""
    password = os.environ.get("MFS_READER_PASSWORD", "").strip()
    if password:
        return password
    url = external_url()
    on_this_host = url is None or urlsplit(libpq_url(url)).hostname in ("127.0.0.1", "localhost")
    return default_cluster().reader_password() if on_this_host else None


def reader_url() -> str:
    """Where dataset reads and ``latest_features`` go: MFS_READER_URL (a streaming replica), else the store."""
    return os.environ.get("MFS_READER_URL", "").strip() or database_url()


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


def masked(url: str) -> str:
    return mask_secrets(url)


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs (postgresql+psycopg2://) as well as libpq ones."""
    parts = urlsplit(url)
    if parts.scheme.startswith(("postgresql+", "postgres+")):
        parts = parts._replace(scheme="postgresql")
    return urlunsplit(parts)


def connect(
    url: str | None = None, *, autocommit: bool = False, application_name: str = "mfs"
) -> psycopg2.extensions.connection:
    """A new, unpooled connection (migrations, admin work). The caller closes it."""
    url = libpq_url(url or database_url())
    try:
        conn = psycopg2.connect(
            url, connect_timeout=get_config().database.connect_timeout_s, application_name=application_name
        )
    except psycopg2.OperationalError as exc:
        raise StorageError(f"cannot connect to {masked(url)}: {mask_secrets(str(exc).strip())}") from None
    conn.autocommit = autocommit
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
    if not autocommit:
        conn.commit()
    return conn


def _pool(url: str) -> _Pool:
    """The process-wide bounded pool for ``url`` (a libpq URL). A forked child builds its own:
    the parent's connections are the parent's."""
    key = (url, os.getpid())
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            size = get_config().database.pool_size
            connections = psycopg2_pool.ThreadSafeConnectionPool(
                minconn=0,
                maxconn=size,
                idle_timeout=IDLE_TIMEOUT_S,
                dsn=url,
                connect_timeout=get_config().database.connect_timeout_s,
                application_name="mfs",
                options="-c timezone=UTC",
            )
            pool = _pools[key] = _Pool(connections, threading.BoundedSemaphore(size))
    return pool


def _checkout(pool: _Pool, url: str) -> psycopg2.extensions.connection:
    """A live connection of ``pool``. When an idle one does not answer, the server dropped it, and
    with it every other idle one (a restart): they are closed and a new connection is opened."""
    for _attempt in range(2):
        try:
            conn = pool.connections.getconn()
        except psycopg2.Error as exc:
            reason = mask_secrets(first_line(exc))
            raise StorageError(f"cannot connect to {masked(url)}: {reason}") from None
        try:
            _ping(conn)
            return conn
        except psycopg2.Error:
            conn.close()
            pool.connections.putconn(conn)
            pool.connections.clear()
    raise StorageError(f"cannot connect to {masked(url)}: a new connection did not answer SELECT 1")


def _ping(conn: psycopg2.extensions.connection) -> None:
    """``SELECT 1`` outside a transaction (the connection is handed out idle, and stays so)."""
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        if not conn.closed:
            conn.autocommit = False


@contextmanager
def connection(url: str | None = None) -> Iterator[psycopg2.extensions.connection]:
    """A pooled psycopg2 connection; committed on success, rolled back on error, always returned
    to the pool."""
    url = libpq_url(url or database_url())
    pool = _pool(url)
    if not pool.free.acquire(timeout=POOL_TIMEOUT_S):
        raise StorageError(
            f"no free database connection within {POOL_TIMEOUT_S:g} s: all "
            f"{get_config().database.pool_size} of this process's (database.pool_size) are in use"
        )
    try:
        driver = _checkout(pool, url)
        try:
            yield driver
            driver.commit()
        except BaseException as exc:
            if not driver.closed:
                driver.rollback()
            if driver.closed and isinstance(exc, psycopg2.Error):
                # The server went away (restart, crash, network): nothing to roll back — the server
                # already discarded the transaction. One clear line instead of a chain of
                # "connection already closed" errors.
                raise StorageError(
                    f"lost the connection to {masked(url)} mid-transaction "
                    f"(nothing of it was committed): {mask_secrets(first_line(exc))}"
                ) from exc
            raise
        finally:
            pool.connections.putconn(driver)  # a closed or broken one is discarded, never reused
    finally:
        pool.free.release()


def dispose_pools() -> None:
    """Close every idle pooled connection of this process and forget the pools (tests, scratch
    databases, shutdown). Another process's pools (inherited through a fork) are forgotten
    without closing: their connections are that process's."""
    with _lock:
        for (_, pid), pool in _pools.items():
            if pid == os.getpid():
                pool.connections.clear()
        _pools.clear()
