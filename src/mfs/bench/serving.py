"""The serving queries of the scaling benchmark, as a polling client sees them: through the reader
role, on one connection per store kept open, each timed many times (p50/p99 in ms).

The repetitions come in ROUNDS, and each round goes through every store in turn, so that a busy
spell of this shared host falls on every store and every query a little instead of on one
store's whole window. Measured in one window per store, one symbol's p99 moved from 0.40 to
2.59 ms between runs of the same code; a quiet 4,000-symbol store answered 10,000 such queries
at a p50 of 0.10-0.21 ms in windows of 250, but 0-4 of each 250 took over a millisecond.
"""

from __future__ import annotations

import functools
import io
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mfs.dataset import latest_features
from mfs.errors import MfsError
from mfs.storage.connection import connect
from mfs.storage.types import Cursor

# Each query and its repetitions per round. round_trip is the floor under latest_one: the same
# parameter, no table (the host's own latency: psycopg2, the socket, the server's reply).
QUERIES = {
    "latest_one": ("SELECT * FROM latest_features WHERE symbol = %s AND interval = '1h'", 400),
    "round_trip": ("SELECT %s::text", 400),
    "latest_list_100": ("SELECT * FROM latest_features WHERE symbol = ANY(%s) AND interval = '1h'", 40),
    "latest_all": ("SELECT * FROM latest_features WHERE interval = '1h'", 40),
}
# The same rows of every symbol by binary COPY (the bytes without Python objects) and through
# mfs.dataset.latest_features (the packed rows into a DataFrame), as often as latest_all.
COPY_ALL = f"COPY ({QUERIES['latest_all'][0]}) TO STDOUT (FORMAT binary)"
ROUNDS = 5


class ServingClient:
    """One store's polling client: an autocommit connection as ``mfs_reader`` to the store named
    by MFS_DATABASE_URL when it is made, and every query's times so far."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = list(symbols)
        self.times: dict[str, list[float]] = {}
        self._rng = np.random.default_rng(0)
        self._conn = connect(autocommit=True, application_name="mfs bench serving")
        try:
            with self._conn.cursor() as cur:
                cur.execute("SET ROLE mfs_reader")
            rows = len(latest_features(conn=self._conn))
        except BaseException:
            self._conn.close()
            raise
        if rows != len(self.symbols):
            self._conn.close()
            raise MfsError(f"latest_features returned {rows} rows for {len(self.symbols)} symbols")

    def round(self) -> None:
        """One round of every query's repetitions."""
        with self._conn.cursor() as cur:
            for name, (query, repeat) in QUERIES.items():
                for _ in range(repeat):
                    params = self._params(name)
                    self._time(name, functools.partial(_fetch_all, cur, query, params))
            repeat = QUERIES["latest_all"][1]
            for _ in range(repeat):
                self._time("latest_all_binary_copy", lambda: cur.copy_expert(COPY_ALL, io.BytesIO()))
        for _ in range(repeat):
            self._time("latest_all_dataframe", lambda: latest_features(conn=self._conn))

    def percentiles(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, times in self.times.items():
            out[f"{name}_p50_ms"] = round(statistics.median(times), 3)
            out[f"{name}_p99_ms"] = round(float(np.percentile(times, 99)), 3)
        return out

    def close(self) -> None:
        self._conn.close()

    def _time(self, name: str, call: Callable[[], object]) -> None:
        began = time.perf_counter()
        call()
        self.times.setdefault(name, []).append((time.perf_counter() - began) * 1000)

    def _params(self, name: str) -> tuple:
        if name in ("latest_one", "round_trip"):
            return (self.symbols[int(self._rng.integers(len(self.symbols)))],)
        if name == "latest_list_100":
            return (list(self._rng.choice(self.symbols, size=min(100, len(self.symbols)), replace=False)),)
        return ()


def _fetch_all(cur: Cursor, query: str, params: tuple) -> list[tuple]:
    cur.execute(query, params)
    return cur.fetchall()


def in_rounds(
    clients: Sequence[ServingClient], progress: Callable[[str], None] = lambda m: None
) -> list[dict[str, Any]]:
    """Every client's percentiles after ROUNDS rounds through all of them in turn."""
    for round_ in range(ROUNDS):
        progress(f"serving queries, round {round_ + 1} of {ROUNDS}: every store in turn")
        for client in clients:
            client.round()
    return [client.percentiles() for client in clients]
