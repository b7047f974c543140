"""Database URLs and connections.

One pool per process and URL (SQLAlchemy's QueuePool, ``max_overflow=0``), so a process never
holds more than ``database.pool_size`` connections. ``connection()`` always gives the connection
back, on success and on error; psycopg2's own ``with conn:`` ends the transaction but leaves the
connection open, so a connection opened per such block leaks one per block.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from mfs.config import get_config
from mfs.errors import StorageError
from mfs.logs import mask_secrets

_engines: dict[tuple[str, int], Engine] = {}
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
    from mfs.storage.localdb import default_cluster  # local import: localdb imports this module

    return default_cluster().url()


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    return make_url(url).set(database=dbname).render_as_string(hide_password=False)


def masked(url: str) -> str:
    return mask_secrets(url)


def libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs (postgresql+psycopg2://) as well as libpq ones."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


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


def engine(url: str | None = None) -> Engine:
    """The process-wide bounded pool for ``url`` (psycopg2 underneath)."""
    url = libpq_url(url or database_url())
    pool_size = get_config().database.pool_size
    key = (url, os.getpid())
    with _lock:
        eng = _engines.get(key)
        if eng is None:
            eng = create_engine(
                url.replace("postgresql://", "postgresql+psycopg2://", 1),
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=60,
                pool_pre_ping=True,
                connect_args={
                    "connect_timeout": get_config().database.connect_timeout_s,
                    "application_name": "mfs",
                    "options": "-c timezone=UTC",
                },
            )
            _engines[key] = eng
    return eng


@contextmanager
def connection(url: str | None = None) -> Iterator[psycopg2.extensions.connection]:
    """A pooled psycopg2 connection; rolled back on error, always returned to the pool."""
    try:
        raw = engine(url).raw_connection()
    except Exception as exc:  # sqlalchemy wraps OperationalError; report one clear line
        raise StorageError(
            f"cannot connect to {masked(url or database_url())}: {mask_secrets(str(exc).splitlines()[0])}"
        ) from None
    driver = raw.driver_connection
    assert driver is not None  # a checked-out pool connection always has its DBAPI connection
    try:
        yield driver
        raw.commit()
    except BaseException as exc:
        if not driver.closed:
            raw.rollback()
        else:
            raw.invalidate()  # never hand a dead connection back to the pool (its reset would fail)
        if driver.closed and isinstance(exc, psycopg2.Error):
            # The server went away (restart, crash, network): nothing to roll back — the server
            # already discarded the transaction. One clear line instead of a chain of
            # "connection already closed" errors.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(
                f"lost the connection to {masked(url or database_url())} mid-transaction "
                f"(nothing of it was committed): {mask_secrets(first)}"
            ) from exc
        raise
    finally:
        raw.close()


def dispose_engines() -> None:
    """Close every pooled connection of this process (tests, forked workers, shutdown)."""
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
