"""No overlapping runs of a flow: a PostgreSQL advisory lock held for the run's duration.

Why not a Prefect deployment concurrency limit: a sharded run submits its shards to the same
deployment, and a limit of 1 would make the shards wait forever for their own parent. A session
advisory lock lives on one dedicated connection, so it is released when the run ends, crashes or
its process is killed — never left behind. Manual `mfs` CLI runs and flow runs share it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from mfs.errors import MfsError
from mfs.logs import get_logger
from mfs.storage.connection import connect
from mfs.storage.types import Connection, one_row

log = get_logger("mfs.orchestration.locks")
POLL_S = 2.0


class RunLockTimeout(MfsError):
    """Another run of the same flow held the lock for longer than we may wait."""


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(f"mfs-run:{name}".encode()).digest()[:8], "big", signed=True)


@contextmanager
def run_lock(name: str, wait_s: float) -> Iterator[None]:
    """Hold the run lock ``name``; wait up to ``wait_s`` for a previous run to release it."""
    conn = connect(autocommit=True, application_name=f"mfs-lock-{name}")
    try:
        _acquire(conn, name, wait_s)
        yield
    finally:
        conn.close()  # a session lock goes with its connection


def wait_for_release(name: str, wait_s: float) -> None:
    """Wait until no run holds ``name`` (features waits for a collection still writing bars)."""
    with run_lock(name, wait_s):
        pass


def _acquire(conn: Connection, name: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    announced = False
    with conn.cursor() as cur:
        while True:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),))
            if one_row(cur)[0]:
                if announced:
                    log.info("previous run finished; continuing", lock=name)
                return
            if time.monotonic() >= deadline:
                raise RunLockTimeout(f"another '{name}' run is still running after {wait_s:.0f} s of waiting")
            if not announced:
                log.info("another run holds the lock; waiting", lock=name, wait_s=wait_s)
                announced = True
            time.sleep(min(POLL_S, max(0.05, deadline - time.monotonic())))
