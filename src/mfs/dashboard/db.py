"""The dashboard's connections: the ``mfs_reader`` role and nothing else.

It logs in as mfs_reader with the role's own password: ``MFS_READER_PASSWORD``, or on the local
store the one `mfs db up` generated for the role (``.mfs/pg/reader-password``). It never holds the
store's owner credentials, so every statement has the reader's privileges and a write is refused
by the database.
The dashboard runs only its own statements (bound parameters, names checked against the
registry), never SQL from a request. Each connection is checked to be mfs_reader when opened.

The server is ``MFS_READER_URL`` when set (a streaming replica), else the store.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import psycopg2
import psycopg2_pool
from sqlalchemy.engine import make_url

from mfs.config import get_config
from mfs.errors import StorageError
from mfs.logs import mask_secrets
from mfs.storage.clock import pinned_clock
from mfs.storage.connection import libpq_url, reader_password, reader_url
from mfs.storage.types import Connection, one_row

READER_ROLE = "mfs_reader"
# A page's query that runs longer than this is cut (a dashboard must never pile load on the store).
STATEMENT_TIMEOUT_MS = 15_000


def reader_dsn() -> tuple[str, str]:
    """(libpq URL, server options) of a connection that runs as mfs_reader."""
    base = libpq_url(reader_url())
    options = f"-c timezone=UTC -c statement_timeout={STATEMENT_TIMEOUT_MS}"
    clock = pinned_clock()
    if clock:  # the store's clock pinned (tests, drills): "now" of the grid is the writers' now
        options += f" -c mfs.clock={clock}"
    password = reader_password()
    if not password:
        raise StorageError(
            f"dashboard: it logs in as {READER_ROLE}: set MFS_READER_PASSWORD (and run `mfs db up` so the role has it)"
        )
    url = make_url(base).set(username=READER_ROLE, password=password).render_as_string(hide_password=False)
    return url, options


class Reader:
    """A bounded pool of mfs_reader connections, one per WSGI thread at most."""

    def __init__(self, size: int | None = None) -> None:
        self.url, self.options = reader_dsn()
        self.size = size or get_config().dashboard.threads
        self._pool = psycopg2_pool.ThreadSafeConnectionPool(
            minconn=0,
            maxconn=self.size,
            idle_timeout=600,
            dsn=self.url,
            options=self.options,
            connect_timeout=get_config().database.connect_timeout_s,
            application_name="mfs dashboard",
        )
        self._checked: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        try:
            conn = self._pool.getconn()
        except psycopg2.OperationalError as exc:
            raise StorageError(
                f"dashboard: cannot connect as {READER_ROLE}: {mask_secrets(str(exc).strip())}"
            ) from None
        try:
            conn.autocommit = True
            self._check_role(conn)
            yield conn
        except psycopg2.OperationalError:
            conn.close()  # the pool discards a closed connection
            raise
        finally:
            self._pool.putconn(conn)

    def _check_role(self, conn: Connection) -> None:
        if conn in self._checked:
            return
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            user = one_row(cur)[0]
        if user != READER_ROLE:
            raise StorageError(f"dashboard: the connection runs as {user!r}, not {READER_ROLE}")
        with self._lock:
            self._checked.add(conn)

    def frame(self, query: Any, params: Any = None) -> pd.DataFrame:
        """The rows of ``query`` as a DataFrame (column names from the cursor)."""
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(query, params)
            columns = [c.name for c in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=columns)

    def scalar(self, query: Any, params: Any = None) -> Any:
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute(query, params)
            row = cur.fetchone()
            return None if row is None else row[0]

    def close(self) -> None:
        self._pool.clear()
