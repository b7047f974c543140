"""Point-in-time answers for many entities: windows of entity rows, batches of symbols, one read each.

A window (``window_rows`` entity rows, in their order) is answered batch by batch of
``batch_symbols`` symbols: every version of the batch's rows with ts in [min at - tolerance -
1 day, max at] is read in one binary COPY and the answers are chosen in numpy (asof.py). Without
a tolerance the read starts a week before the batch's first ``at``; the entities left without an
answer (a symbol with older rows only, a known_at long before at) are answered from one more read
of every older ts of their symbols. A symbol whose versions break the fast path's assumptions is
answered by the SQL function itself, in one call for its entities. Memory: one window's results
and the versions of as many batches as there are reading connections (session.py: they read the
next batches while this one is chosen, all in one snapshot of the store).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]

from mfs.dataset.asof import DAY_US, choose, group_versions
from mfs.dataset.request import NOW, RESULT_COLUMNS, TIME_COLUMNS, Entities, Request, to_pg_us
from mfs.dataset.session import ReadSession
from mfs.dataset.versions import NULL_INT, Records, read_function, read_versions, symbols_without_rows
from mfs.storage.clock import pinned_clock
from mfs.storage.copy_binary import PG_EPOCH_US
from mfs.storage.records import PG_INF, PG_NINF
from mfs.storage.types import Connection, Cursor, one_row

WINDOW_ROWS = 200_000
BATCH_SYMBOLS = 50
READERS = 2  # connections reading batches at once (one snapshot)
FIRST_READ_DAYS = 7  # without a tolerance: the first read's reach before a batch's earliest at


@dataclass
class Stats:
    rows: int = 0
    matched: int = 0
    fallback: int = 0  # entity rows answered by the SQL function
    symbols: set[str] = field(default_factory=set)
    matched_symbols: set[str] = field(default_factory=set)


@dataclass
class _Batch:
    names: list[str]  # the batch's symbols; entity i is names[k[i] - 1] at at[i]
    rows: np.ndarray  # the entities' rows in the window
    k: np.ndarray
    at: np.ndarray


class Outputs:
    """The result columns of one window, filled batch by batch: the time fields (PostgreSQL µs),
    complete, the float columns in one 2-D block (a DataFrame over it needs no copy) and the
    integer ones."""

    def __init__(self, n: int, request: Request):
        self.request = request
        self.answered = np.zeros(n, dtype=bool)
        self.times = {name: np.full(n, PG_NINF, dtype=np.int64) for name in TIME_COLUMNS}
        self.complete = np.full(n, -1, dtype=np.int8)
        kinds = {name: request.source.pgtype(name) for name in request.columns}
        self.floats = [name for name in request.columns if kinds[name] == "float8"]
        self.block = np.full((n, len(self.floats)), np.nan, order="F")
        self.ints = {
            name: np.full(n, NULL_INT[kind], dtype=np.dtype(f"i{kind[-1]}"))
            for name, kind in kinds.items()
            if kind != "float8"
        }

    def fill(self, rows: np.ndarray, rec: Records, index: np.ndarray) -> None:
        self.answered[rows] = True
        for name, arr in self.times.items():
            # An answer is the version as it stood at K: then it was current, so its known_to is
            # 'infinity' (sql/functions/asof.sql: what happened later must not leak into it).
            arr[rows] = PG_INF if name == "known_to" else getattr(rec, name)[index]
        self.complete[rows] = rec.complete[index]
        for j, name in enumerate(self.floats):
            self.block[rows, j] = rec.values(name, index)
        for name, arr in self.ints.items():
            arr[rows] = rec.values(name, index)

    def _time_us(self, name: str) -> np.ndarray:
        """Unix µs, NaT (INT64_MIN) without an answer and for ±infinity: known_to, 'infinity' in
        every answer, is NaT ("current as of known_at")."""
        arr = self.times[name]
        finite = self.answered & (arr != PG_INF) & (arr != PG_NINF)
        return np.where(finite, arr + PG_EPOCH_US, np.iinfo(np.int64).min)

    def _complete_null(self) -> np.ndarray:
        return ~self.answered | (self.complete < 0)

    def frame(self, entities: pd.DataFrame) -> pd.DataFrame:
        """The entity columns, then the result's, as one DataFrame (entity order)."""
        head = {
            name: pd.DatetimeIndex(self._time_us(name).view("datetime64[us]")).tz_localize("UTC")
            for name in TIME_COLUMNS
        }
        head["complete"] = pd.arrays.BooleanArray(self.complete == 1, self._complete_null())
        ints = {
            name: pd.arrays.IntegerArray(arr, arr == NULL_INT[self.request.source.pgtype(name)])
            for name, arr in self.ints.items()
        }
        parts = [
            entities.reset_index(drop=True),
            pd.DataFrame(head),
            pd.DataFrame(self.block, columns=self.floats, copy=False),
            pd.DataFrame(ints),
        ]
        out = pd.concat(parts, axis=1, copy=False)
        order = [*entities.columns, *RESULT_COLUMNS, *self.request.columns]
        return out if list(out.columns) == order else out[order]

    def arrow(self, entities: pa.Table, schema: pa.Schema) -> pa.Table:
        """The same as an Arrow table of ``schema`` (``entities``: the window's entity columns, Arrow)."""
        arrays = {}
        for name in TIME_COLUMNS:
            us = self._time_us(name)
            arrays[name] = pa.array(us, type=pa.timestamp("us", tz="UTC"), mask=us == np.iinfo(np.int64).min)
        arrays["complete"] = pa.array(self.complete == 1, mask=self._complete_null())
        for j, name in enumerate(self.floats):
            arrays[name] = pa.array(self.block[:, j], from_pandas=True)  # NaN (NULL, no answer) -> null
        for name, arr in self.ints.items():
            arrays[name] = pa.array(arr, mask=arr == NULL_INT[self.request.source.pgtype(name)])
        columns = [entities.column(name) for name in entities.column_names]
        columns += [arrays[name] for name in (*RESULT_COLUMNS, *self.request.columns)]
        return pa.Table.from_arrays(columns, schema=schema)


class Reader:
    """Answers entities for one request, on ``conn`` or on ``readers`` read-only connections to ``url``."""

    def __init__(
        self,
        request: Request,
        *,
        url: str | None = None,
        conn: Connection | None = None,
        window_rows: int = WINDOW_ROWS,
        batch_symbols: int = BATCH_SYMBOLS,
        readers: int = READERS,
        on_rows: Callable[[int], None] | None = None,
    ) -> None:
        self.request = request
        self.session = ReadSession(url=url, conn=conn, readers=readers)
        self.window_rows = max(1, int(window_rows))
        self.batch_symbols = max(1, int(batch_symbols))
        self.on_rows = on_rows
        self.stats = Stats()
        self.known_at: int | None = None

    def __enter__(self) -> Reader:
        self.session.__enter__()
        try:
            self.known_at = self._resolve_known_at()
        except BaseException:
            self.session.__exit__(None, None, None)
            raise
        return self

    def _resolve_known_at(self) -> int | None:
        k = self.request.known_at
        if k != NOW:
            return None if k is None else int(k)
        pinned = pinned_clock()  # the store's clock: MFS_CLOCK when pinned, else the server's
        if pinned is not None:
            return to_pg_us(pd.Timestamp(pinned))

        def now(cur: Cursor) -> int:
            cur.execute("SELECT mfs_now()")
            return to_pg_us(pd.Timestamp(one_row(cur)[0]))

        return self.session.run(now)

    def __exit__(self, *exc: object) -> None:
        self.session.__exit__(*exc)

    def frames(self, entities: Entities) -> Iterator[pd.DataFrame]:
        """The result of each window of ``entities``, in entity order."""
        for start, stop, out in self.windows(entities):
            yield out.frame(entities.frame.iloc[start:stop])

    def windows(self, entities: Entities) -> Iterator[tuple[int, int, Outputs]]:
        """(start, stop, results) of each window of ``entities``."""
        for start in range(0, len(entities), self.window_rows):
            stop = min(start + self.window_rows, len(entities))
            yield start, stop, self._window(entities, start, stop)

    def empty_frame(self, entities: pd.DataFrame) -> pd.DataFrame:
        """The result's columns for no entity rows."""
        return Outputs(0, self.request).frame(entities.iloc[:0])

    def missing_symbols(self) -> list[str]:
        """The entities' symbols that have no row of the interval at all (never matched, and none stored)."""
        unmatched = sorted(self.stats.symbols - self.stats.matched_symbols)
        if not unmatched:
            return []
        req = self.request
        return self.session.run(lambda cur: symbols_without_rows(cur, req.source, unmatched, req.interval))

    def _window(self, entities: Entities, start: int, stop: int) -> Outputs:
        symbols, at = entities.symbols[start:stop], entities.at[start:stop]
        out = Outputs(stop - start, self.request)
        codes, names = pd.factorize(symbols)
        order = np.argsort(codes, kind="stable")
        step = self.batch_symbols
        bounds = np.searchsorted(codes[order], np.arange(0, len(names) + step, step))
        batches = []
        for j, b in enumerate(range(0, len(names), step)):
            rows = order[bounds[j] : bounds[j + 1]]
            batches.append(_Batch([str(s) for s in names[b : b + step]], rows, codes[rows] - b + 1, at[rows]))
        # The next batches' versions are read while this one is chosen (the server and the COPY's
        # transfer work meanwhile), by as many threads as there are connections.
        depth = self.session.size
        with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="mfs-dataset-read") as pool:
            ahead = [pool.submit(self._read_first, b) for b in batches[:depth]]
            for j, batch in enumerate(batches):
                first = ahead[j].result()
                if j + depth < len(batches):
                    ahead.append(pool.submit(self._read_first, batches[j + depth]))
                self._batch(batch, first, out)
                if self.on_rows:
                    self.on_rows(len(batch.rows))
        self.stats.rows += stop - start
        self.stats.matched += int(out.answered.sum())
        self.stats.symbols.update(str(s) for s in names)
        self.stats.matched_symbols.update(str(names[c]) for c in np.unique(codes[out.answered]))
        return out

    def _lower_bound(self, batch: _Batch) -> int:
        """The first read's lowest ts: no answer is older than at - tolerance - 1 day (the SQL's own
        bound); without a tolerance, a week before the earliest at (older ts: a second read)."""
        tol = self.request.tolerance
        return int(batch.at.min()) - (tol + DAY_US if tol is not None else FIRST_READ_DAYS * DAY_US)

    def _read(self, names: list[str], lo: int | None, hi: int) -> Records:
        req = self.request
        valid_at = None if req.served else self.known_at
        return self.session.run(
            lambda cur: read_versions(cur, req.source, req.columns, names, req.interval, lo, hi, valid_at=valid_at)
        )

    def _read_first(self, batch: _Batch) -> Records:
        return self._read(batch.names, self._lower_bound(batch), int(batch.at.max()))

    def _batch(self, batch: _Batch, first: Records, out: Outputs) -> None:
        """Answer the batch's entity rows into ``out``, from ``first`` (its versions from the lower bound on)."""
        names, rows, k, at = batch.names, batch.rows, batch.k, batch.at
        rest, fallback = self._answer(first, rows, k, at, out)
        if self.request.tolerance is None and rest.any():  # no answer in [lo, at]: one may be older
            need = np.unique(k[rest])
            older = self._read([names[i - 1] for i in need], None, self._lower_bound(batch) - 1)
            k2 = np.searchsorted(need, k[rest]) + 1
            _, to_sql = self._answer(older, rows[rest], k2, at[rest], out)
            fallback[np.flatnonzero(rest)[to_sql]] = True
        if fallback.any():
            self._fallback([names[i - 1] for i in k[fallback]], rows[fallback], at[fallback], out)

    def _answer(
        self, rec: Records, rows: np.ndarray, k: np.ndarray, at: np.ndarray, out: Outputs
    ) -> tuple[np.ndarray, np.ndarray]:
        """The fast path over the versions ``rec``; returns (unanswered, to the SQL function) per entity."""
        req = self.request
        grouped = group_versions(rec, known_at=self.known_at, served=req.served)
        choice = choose(grouped, k, at, known_at=self.known_at, served=req.served, tolerance=req.tolerance)
        hit = (choice.version >= 0) & ~choice.fallback
        out.fill(rows[hit], grouped.rec, choice.version[hit])
        return (choice.version < 0) & ~choice.fallback, choice.fallback

    def _fallback(self, symbols: list[str], rows: np.ndarray, at: np.ndarray, out: Outputs) -> None:
        req = self.request
        rec = self.session.run(
            lambda cur: read_function(
                cur,
                req.source,
                req.columns,
                symbols,
                at,
                known_at=self.known_at,
                interval=req.interval,
                tolerance_us=req.tolerance,
                mode=req.mode,
            )
        )
        out.fill(rows[rec.k - 1], rec, np.arange(len(rec)))
        self.stats.fallback += len(rows)
