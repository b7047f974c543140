"""The connections a dataset reads on: one snapshot of the store, shared by parallel readers.

A large read is bound by the server's work (decompress, serialise the COPY) and the transfer, so
batches are read by ``readers`` connections at once. They all see the same state of the store:
the first opens a REPEATABLE READ, READ ONLY transaction and exports its snapshot, the others
import it (``SET TRANSACTION SNAPSHOT``), so a dataset read while runs write is one state even
across connections. With a connection of the caller's, only that one is used (another could not
see its uncommitted changes).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import TypeVar

import psycopg2

from mfs.logs import get_logger
from mfs.storage.connection import connect, reader_url
from mfs.storage.types import Connection, one_row

T = TypeVar("T")
log = get_logger("mfs.dataset")


class ReadSession:
    """``run(fn)`` calls ``fn(cursor)`` on a free connection (blocking until one is free)."""

    def __init__(self, *, url: str | None = None, conn: Connection | None = None, readers: int = 2):
        self.url = url or reader_url()  # MFS_READER_URL: the replica, when there is one
        self.given = conn
        self.readers = max(1, int(readers))
        self.conns: list = []
        self._free: queue.Queue = queue.Queue()

    def __enter__(self) -> ReadSession:
        if self.given is not None:
            self._add(self.given)
            return self
        try:
            main = connect(self.url, application_name="mfs dataset")
            main.set_session(isolation_level="REPEATABLE READ", readonly=True)
            self._add(main)
            if self.readers > 1:
                self._add_readers(main)
        except BaseException:
            self._close()
            raise
        return self

    def _add(self, conn: Connection) -> None:
        if conn is not self.given:
            self.conns.append(conn)
        self._free.put(conn.cursor())

    def _add_readers(self, main: Connection) -> None:
        with main.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = one_row(cur)[0]
        for _ in range(self.readers - 1):
            conn = connect(self.url, application_name="mfs dataset")
            self.conns.append(conn)
            conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
            try:
                with conn.cursor() as cur:
                    cur.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            except psycopg2.Error as exc:  # e.g. a pooler between us and the server: read on one connection
                log.warning("parallel dataset reads unavailable, reading on one connection", reason=str(exc).strip())
                self.conns.remove(conn)
                conn.close()
                return
            self._free.put(conn.cursor())

    @property
    def size(self) -> int:
        """How many connections read at once."""
        return len(self.conns) or 1

    def run(self, fn: Callable[..., T]) -> T:
        cur = self._free.get()
        try:
            return fn(cur)
        finally:
            self._free.put(cur)

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _close(self) -> None:
        while not self._free.empty():
            self._free.get_nowait().close()
        for conn in self.conns:
            try:
                conn.rollback()
            finally:
                conn.close()
        self.conns.clear()
