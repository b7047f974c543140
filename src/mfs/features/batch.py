"""A batch of symbols' feature update: find what is stale, read bars with their look-back,
compute, write.

Runs inside a worker process on that worker's single connection (see worker.py, which times the
batch as a whole: its symbols share the reads and the write, so they are not timed one by one); a
batch is one REPEATABLE READ transaction, so the stale-bar search, the bars, the running-sum
anchors and the write all see one snapshot of committed data, and a reader never sees half a symbol.

Incremental rule (documented in docs/features.md): recompute from the EARLIEST bar that has no feature
row of the current FEATURE_VERSION, or whose ``market_data.ingested_at`` differs from the
``bar_ingested_at`` stored with its feature row (the partial last bar that ingest overwrote, a
late correction, a backfilled older bar). Everything from that bar on is recomputed, reading
``lookback`` bars before it, counted in bars (not calendar time). Running sums (OBV, AD) are
continued from the stored value of the first look-back bar, so the rows written equal a full
recompute. The features computed are the run's (``FeatureSet``: its definitions file). Which bars
and feature rows a batch reads for that comparison: ``mfs.features.reads``. A series with a stored
state of its carried features (EMA/Wilder smoothing, ``mfs.features.carry``) continues those from
it and reads only the shorter look-back the other features need.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from mfs.features import carry, engine
from mfs.features.model import FeatureSet
from mfs.features.reads import Plan, read_plans
from mfs.features.version import FEATURE_VERSION
from mfs.storage import progress
from mfs.storage.bulk import insert_new_keys, upsert
from mfs.storage.clock import WriteContext, set_write_context
from mfs.storage.copy_binary import Column
from mfs.storage.progress import set_accounted_write
from mfs.storage.records import to_utc
from mfs.storage.types import Connection, Cursor

KEY = ["symbol", "interval", "ts"]
KEY_COLUMNS = [Column("symbol", "text"), Column("interval", "text"), Column("ts", "timestamptz")]
ROW_COLUMNS = [
    Column("feature_version", "int4"),
    Column("bar_ingested_at", "timestamptz"),
    Column("closes_at", "timestamptz"),
]


def write_columns(features: FeatureSet) -> list[Column]:
    """The columns a feature row is written with: key, row metadata, every feature of the set."""
    return KEY_COLUMNS + ROW_COLUMNS + [Column(d.name, d.pgtype) for d in features.columns]


@dataclass
class SymbolCounts:
    bars_read: int = 0
    staged: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    start: str | None = None  # first bar (re)computed, ISO UTC; None when nothing was stale
    anchored: bool = False  # OBV continued from a stored row (incremental window)


def bars_of(rec: np.ndarray) -> engine.Bars:
    """The engine's inputs from BAR_RECORD rows."""
    prices = (rec[name].astype(np.float64) for name in ("open", "high", "low", "close", "volume"))
    return engine.Bars(to_utc(rec["ts"]), *prices)


def compute_rows(
    rec: np.ndarray,
    features: FeatureSet,
    anchors: Mapping[str, float] | None = None,
    only: Collection[str] | None = None,
) -> dict[str, np.ndarray]:
    return engine.compute(*bars_of(rec), anchors=anchors, only=only, definitions=features.definitions)


def _row_columns(symbols: list[str], interval: str, rec: np.ndarray, keep: np.ndarray, rows: list[int]) -> dict:
    """The key and row metadata of the feature rows of ``rec[keep]``: ``rows[i]`` of ``symbols[i]``."""
    n = len(keep)
    return {
        "symbol": [symbol for symbol, count in zip(symbols, rows, strict=True) for _ in range(count)],
        "interval": [interval] * n,
        "ts": to_utc(rec["ts"][keep]),
        "feature_version": np.full(n, FEATURE_VERSION),
        "bar_ingested_at": to_utc(rec["ingested_at"][keep]),
        "closes_at": to_utc(rec["closes_at"][keep]),
    }


class _Todo(NamedTuple):
    """A symbol with feature rows to (re)compute: its bars from ``plan.first`` on."""

    symbol: str
    rec: np.ndarray
    plan: Plan
    counts: SymbolCounts  # its entry in the batch's result, completed here and by the write

    @property
    def rows(self) -> int:
        """Its feature rows to write: the bars from ``plan.start`` on."""
        assert self.plan.start is not None
        return len(self.rec) - (self.plan.start - self.plan.first)


class _Computed(NamedTuple):
    """The feature rows of a batch's symbols, to be written in one go."""

    todo: list[_Todo]  # the symbols, in the order of the rows
    data: dict  # the rows, column by column (the names of write_columns)
    states: dict  # per symbol, its carried features' states: {bar ts µs: values}


def update_batch(
    conn: Connection,
    symbols: list[str],
    interval: str,
    *,
    full: bool,
    lookback: int,
    features: FeatureSet,
    before_symbol: Callable[[str], None] | None = None,
    context: WriteContext | None = None,
) -> dict[str, SymbolCounts | str]:
    """Recompute the stale feature rows of ``symbols`` in ONE transaction (a batch of up to
    ``features.batch_size`` symbols: a few reads and one write instead of ~10 round trips per symbol).

    A symbol whose computation raises (bad bars, MemoryError, an injected fault) gets its reason
    as a string and is not written; the others are. A database error fails the whole batch (the
    caller retries its symbols one by one). ``before_symbol`` runs before each symbol's maths.
    ``context`` is what the write records (``mfs.storage.clock.set_write_context``).
    """
    try:
        with conn.cursor() as cur:
            set_write_context(cur, **(context or {}))
            set_accounted_write(cur)  # the progress recorded below accounts for this batch's writes
            seen = progress.series_changes(cur, symbols, interval, FEATURE_VERSION)
            carried = carry.read(cur, symbols, interval, features, full=full, lookback=lookback)
            bars, plans = read_plans(
                cur,
                list(symbols),
                interval,
                seen.changed_from,
                full=full,
                lookback=lookback,
                cumulative=features.cumulative,
                lookbacks=carried.lookbacks(symbols, lookback),
                again_if=lambda i, plan: carried.misses(symbols[i], plan),
            )
            deleted = _delete_orphans(cur, symbols, interval, plans)
            out: dict[str, SymbolCounts | str] = {}
            todo: list[_Todo] = []
            for symbol, plan, rec in zip(symbols, plans, bars, strict=True):
                out[symbol] = counts = SymbolCounts(deleted=deleted[symbol])
                if plan.start is None:  # nothing stale
                    continue
                try:
                    if before_symbol:
                        before_symbol(symbol)
                except Exception as exc:
                    out[symbol] = symbol_failure(exc)
                    continue
                todo.append(_Todo(symbol, rec[plan.first :], plan, counts))
            computed = _compute(interval, todo, features, out, carried)
            if computed.todo:
                _write_features(cur, interval, computed, write_columns(features))
                carry.write(cur, interval, carried, computed.states)
            if computed.todo or any(deleted.values()):
                refresh_latest(cur, symbols, interval)
            current = [s for s in symbols if not isinstance(out[s], str)]
            progress.record_progress(cur, interval, seen, FEATURE_VERSION, current)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return out


def _delete_orphans(cur: Cursor, symbols: list[str], interval: str, plans: list[Plan]) -> Counter:
    """Delete the feature rows whose bar no longer exists; returns how many per symbol."""
    orphans = [(s, int(t)) for s, p in zip(symbols, plans, strict=True) if p.orphans is not None for t in p.orphans]
    if orphans:
        # A row whose bar no longer exists (deleted or relabelled) would be served forever.
        cur.execute(
            "DELETE FROM features f USING unnest(%s::text[], %s::bigint[]) AS o(symbol, us) "
            "WHERE f.symbol = o.symbol AND f.interval = %s "
            "AND f.ts = to_timestamp(o.us / 1e6::float8 + 946684800)",
            ([s for s, _ in orphans], [t for _, t in orphans], interval),
        )
    return Counter(s for s, _ in orphans)


def symbol_failure(exc: BaseException) -> str:
    """Why one symbol's maths failed, as its result records it."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _compute(
    interval: str, todo: list[_Todo], features: FeatureSet, out: dict[str, SymbolCounts | str], carried: carry.Carry
) -> _Computed:
    """The feature rows of every symbol of ``todo``, computed together (``engine.compute_many``);
    when that raises, each symbol alone, so that only a symbol whose bars or maths fail fails
    (its reason in ``out``)."""
    if not todo:
        return _Computed([], {}, {})
    try:
        computed = _merged(
            [
                _compute_together(
                    interval, [t for t in todo if carried.uses_state(t.symbol, t.plan) == on], features, carried
                )
                for on in (False, True)
            ]
        )
    except Exception:
        computed = _compute_one_by_one(interval, todo, features, out, carried)
    first = 0  # the symbol's first row among the computed rows
    for t in computed.todo:
        t.counts.bars_read, t.counts.staged = len(t.rec), t.rows
        t.counts.start, t.counts.anchored = computed.data["ts"][first].isoformat(), t.plan.anchors is not None
        first += t.rows
    return computed


def _compute_together(interval: str, todo: list[_Todo], features: FeatureSet, carried: carry.Carry) -> _Computed:
    """``todo`` computed together: all on the state path (their carried features continue their
    stored state, the rest from their windows), or none (everything from their windows, and
    their states recovered from that computation)."""
    if not todo:
        return _Computed([], {}, {})
    on_state = carried.uses_state(todo[0].symbol, todo[0].plan)
    rec = np.concatenate([t.rec for t in todo])
    bounds = [0, *itertools.accumulate(len(t.rec) for t in todo)]
    bars = bars_of(rec)
    anchors = [t.plan.anchors or {} for t in todo]
    rows = [t.rows for t in todo]
    keep = np.concatenate([np.arange(hi - n, hi) for n, hi in zip(rows, bounds[1:], strict=True)])
    only = carry.others(features, carried) if on_state else None
    values = engine.compute_many(bars, bounds, anchors=anchors, definitions=features.definitions, rows=keep, only=only)
    data = _row_columns([t.symbol for t in todo], interval, rec, keep, rows)
    data.update(values)
    if on_state:
        more, after = carry.advanced(carried, [(t.symbol, t.plan, t.rec) for t in todo], bars, keep)
        data.update(more)
    elif carried.definitions:
        after = [carry.recovered(carried, bars_of(t.rec)._asdict(), t.rec) for t in todo]
    else:
        return _Computed(todo, data, {})
    return _Computed(todo, data, {t.symbol: a for t, a in zip(todo, after, strict=True)})


def _merged(parts: list[_Computed]) -> _Computed:
    parts = [p for p in parts if p.todo]
    if not parts:
        return _Computed([], {}, {})
    if len(parts) == 1:
        return parts[0]
    return _Computed(
        [t for p in parts for t in p.todo],
        {name: concat([p.data[name] for p in parts]) for name in parts[0].data},
        {k: v for p in parts for k, v in p.states.items()},
    )


def _compute_one_by_one(
    interval: str, todo: list[_Todo], features: FeatureSet, out: dict[str, SymbolCounts | str], carried: carry.Carry
) -> _Computed:
    parts = []
    for t in todo:
        try:
            parts.append(_compute_together(interval, [t], features, carried))
        except Exception as exc:
            out[t.symbol] = symbol_failure(exc)
    return _merged(parts) if parts else _Computed([], {}, {})


def _write_features(cur: Cursor, interval: str, computed: _Computed, columns: list[Column]) -> None:
    """One write for the batch's computed rows; fills in each symbol's inserted/updated."""
    upsert_needed = any(t.plan.rows_from_start > 0 for t in computed.todo)
    data = {col.name: computed.data[col.name] for col in columns}
    if upsert_needed:
        upsert(cur, "features", columns, data, key=KEY, touch={"computed_at": "mfs_now()"})
        _split_counts(cur, interval, computed.todo)
    else:  # only new bars everywhere (a backfill, the next hour): a plain COPY, nothing to compare
        insert_new_keys(cur, "features", columns, data, key=KEY)
        for t in computed.todo:
            t.counts.inserted = t.counts.staged


def refresh_latest(cur: Cursor, symbols: Sequence[str], interval: str) -> None:
    """Make ``features_latest`` hold the newest feature row of each of ``symbols`` (none when it
    has no rows left), in the caller's transaction: what ``latest_features`` serves changes with
    the rows it is the newest of. One index probe per symbol (~10 µs)."""
    cur.execute("DELETE FROM features_latest WHERE symbol = ANY(%s) AND interval = %s", (list(symbols), interval))
    cur.execute(
        "INSERT INTO features_latest SELECT f.* FROM unnest(%s::text[]) AS s(symbol) CROSS JOIN LATERAL "
        "(SELECT * FROM features f WHERE f.symbol = s.symbol AND f.interval = %s ORDER BY f.ts DESC LIMIT 1) f",
        (list(symbols), interval),
    )


def concat(chunks: list) -> object:
    if isinstance(chunks[0], pd.DatetimeIndex):
        return chunks[0].append(chunks[1:]) if len(chunks) > 1 else chunks[0]
    if isinstance(chunks[0], list):
        return [x for c in chunks for x in c]
    return np.concatenate(chunks)


def _split_counts(cur: Cursor, interval: str, todo: list[_Todo]) -> None:
    """Per-symbol inserted/updated after one batch upsert. Bars without a row are inserts (the
    plan knows how many rows existed); rows this transaction touched carry computed_at = mfs_now()
    (unchanged rows keep their old computed_at), so touched - inserted = updated."""
    cur.execute(
        "SELECT symbol, count(*) FROM features WHERE symbol = ANY(%s) AND interval = %s "
        "AND computed_at = mfs_now() GROUP BY symbol",
        ([t.symbol for t in todo], interval),
    )
    touched = dict(cur.fetchall())
    for t in todo:
        t.counts.inserted = t.counts.staged - t.plan.rows_from_start
        t.counts.updated = touched.get(t.symbol, 0) - t.counts.inserted
