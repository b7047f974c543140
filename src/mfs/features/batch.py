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
recompute. The features computed are the run's (``FeatureSet``: its definitions file).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from mfs.errors import FeatureError
from mfs.features import engine
from mfs.features.spec import FEATURE_VERSION, FeatureSet
from mfs.storage import progress
from mfs.storage.bulk import PG_EPOCH_US, Column, upsert
from mfs.storage.clock import WriteContext, set_write_context
from mfs.storage.progress import set_accounted_write

KEY = ["symbol", "interval", "ts"]
KEY_COLUMNS = [Column("symbol", "text"), Column("interval", "text"), Column("ts", "timestamptz")]
ROW_COLUMNS = [
    Column("feature_version", "int4"),
    Column("bar_ingested_at", "timestamptz"),
    Column("closes_at", "timestamptz"),
]


def write_columns(features: FeatureSet) -> list[Column]:
    """The columns a feature row is written with: key, row metadata, every feature of the set."""
    return KEY_COLUMNS + ROW_COLUMNS + [Column(f.name, f.pgtype) for f in features.features]


# Bars and row states are read with binary COPY: every column selected is fixed-width and NOT NULL,
# so the payload is a plain record array (far faster than building Python tuples row by row).
_COPY_HEADER_LEN = 19  # signature (11) + flags (4) + header extension length (4), extension empty


def _record(fields: list[tuple[str, str]]) -> np.dtype:
    layout = [("n", ">i2")]
    for i, (name, kind) in enumerate(fields):
        layout += [(f"l{i}", ">i4"), (name, kind)]
    return np.dtype(layout)


_BAR_STATE = _record([("k", ">i4"), ("ts", ">i8"), ("ingested_at", ">i8")])


def _row_state(cumulative: tuple[str, ...]) -> np.dtype:
    """A feature row's state, with the stored value of every running-sum feature (its anchor)."""
    fields = [("k", ">i4"), ("ts", ">i8"), ("feature_version", ">i4"), ("bar_ingested_at", ">i8")]
    return _record(fields + [(name, ">f8") for name in cumulative])


BAR_RECORD = _record(
    [
        ("k", ">i4"),
        ("ts", ">i8"),
        ("open", ">f8"),
        ("high", ">f8"),
        ("low", ">f8"),
        ("close", ">f8"),
        ("volume", ">i8"),
        ("ingested_at", ">i8"),
        ("closes_at", ">i8"),
    ]
)


def copy_records(cur, query: str, params: tuple, dtype: np.dtype) -> np.ndarray:
    buf = io.BytesIO()
    cur.copy_expert(f"COPY ({cur.mogrify(query, params).decode()}) TO STDOUT WITH (FORMAT binary)", buf)
    body = buf.getvalue()[_COPY_HEADER_LEN:-2]  # minus the header and the -1 trailer
    if len(body) % dtype.itemsize:
        raise FeatureError("unexpected binary COPY layout (a NULL or a changed column type?)")
    return np.frombuffer(body, dtype=dtype)


@dataclass
class SymbolCounts:
    bars_read: int = 0
    staged: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    start: str | None = None  # first bar (re)computed, ISO UTC; None when nothing was stale
    anchored: bool = False  # OBV continued from a stored row (incremental window)


def to_utc(pg_us: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex((pg_us.astype(np.int64) + PG_EPOCH_US).astype("datetime64[us]")).tz_localize("UTC")


# k = the symbol's 1-based position in the batch, from the batch's symbol array (an ORDER BY or
# array_position() in SQL costs more than the scan itself: measured 135 vs 55 ms for 44k rows);
# numpy sorts by (k, ts) instead. Each symbol's rows are read through its own index probe (a
# LATERAL subquery, kept from being flattened by OFFSET 0): as a plain join the planner hashed
# the batch's symbols against a scan of the whole hypertable, so every batch read every symbol's
# rows and a run's cost grew with the square of the universe (500 symbols × 60 days: 35 ms per
# batch for 14,250 of 142,500 rows read).
BATCH_JOIN = (
    "FROM unnest(%s::text[]) WITH ORDINALITY AS w(symbol, k) CROSS JOIN LATERAL "
    "(SELECT * FROM {table} t WHERE t.symbol = w.symbol AND t.interval = %s{since} OFFSET 0) t"
)
SINCE_US = " AND t.ts >= to_timestamp(%s / 1e6::float8 + 946684800)"


def batch_rows(table: str, since: bool = False) -> str:
    """The FROM clause of a batch read of ``table``: every row of the batch's symbols (params:
    the symbol array, the interval), from a ts in PostgreSQL µs on when ``since`` (one more param)."""
    return BATCH_JOIN.format(table=table, since=SINCE_US if since else "")


def split_by_symbol(rec: np.ndarray, n: int) -> list[np.ndarray]:
    """Records of a batch -> one slice per symbol, each ordered by ts."""
    rec = rec[np.lexsort((rec["ts"].astype(np.int64), rec["k"].astype(np.int32)))]
    bounds = np.searchsorted(rec["k"].astype(np.int32), np.arange(1, n + 2))
    return [rec[bounds[i] : bounds[i + 1]] for i in range(n)]


@dataclass
class Plan:
    """What one symbol needs: bars[start:] (re)computed, reading from bars[first]."""

    bar_ts: np.ndarray  # every bar's ts, PostgreSQL µs, ascending
    start: int | None  # first bar to (re)compute; None = nothing stale
    first: int = 0  # first bar read (start - lookback, or 0)
    anchors: dict[str, float] | None = None  # stored running sums of bars[first] when first > 0
    rows_from_start: int = 0  # feature rows that already exist for bars[start:]
    orphans: np.ndarray | None = None  # ts (µs) of feature rows whose bar no longer exists


def plan_symbol(
    bars: np.ndarray, rows: np.ndarray, *, full: bool, lookback: int, cumulative: tuple[str, ...] = ()
) -> Plan:
    """Compare each bar's ingested_at with the bar_ingested_at of its feature row, in numpy.

    Two ordered index scans instead of a join: the join's plan depends on the statistics of a
    freshly written hypertable and degraded to a nested loop (0.5 s per symbol, measured).
    """
    bar_ts, row_ts = bars["ts"].astype(np.int64), rows["ts"].astype(np.int64)
    if len(row_ts):
        pos = np.minimum(np.searchsorted(row_ts, bar_ts), len(row_ts) - 1)  # the row of each bar, if any
        has_row = row_ts[pos] == bar_ts
        current = (
            has_row
            & (rows["feature_version"][pos] == FEATURE_VERSION)
            & (rows["bar_ingested_at"][pos].astype(np.int64) == bars["ingested_at"].astype(np.int64))
        )
    else:
        pos = np.zeros(len(bar_ts), dtype=np.int64)
        has_row = current = np.zeros(len(bar_ts), dtype=bool)
    plan = Plan(bar_ts=bar_ts, start=None, orphans=row_ts[~np.isin(row_ts, bar_ts)])
    stale = np.flatnonzero(~current) if not full else np.arange(min(len(bar_ts), 1))
    if not len(stale):
        return plan
    plan.start = int(stale[0])
    plan.rows_from_start = int(has_row[plan.start :].sum())
    first = plan.start - lookback
    if first > 0:
        # Every bar before start has a current row (start is the first stale one): continue its
        # running sums. One not stored yet (a feature just added) means reading from the first bar.
        anchors = {name: float(rows[name][pos[first]]) for name in cumulative}
        if not any(np.isnan(v) for v in anchors.values()):
            plan.first, plan.anchors = first, anchors
    return plan


def compute_rows(rec: np.ndarray, features: FeatureSet, anchors=None, only=None) -> dict[str, np.ndarray]:
    return engine.compute(
        to_utc(rec["ts"]),
        rec["open"].astype(np.float64),
        rec["high"].astype(np.float64),
        rec["low"].astype(np.float64),
        rec["close"].astype(np.float64),
        rec["volume"].astype(np.float64),
        anchors=anchors,
        only=only,
        definitions=features.definitions,
    )


def _features_for(symbol: str, interval: str, rec: np.ndarray, plan: Plan, features: FeatureSet) -> dict:
    ts = to_utc(rec["ts"])
    values = compute_rows(rec, features, plan.anchors)
    assert plan.start is not None  # only symbols with something to compute get here
    keep = slice(plan.start - plan.first, None)
    n = len(rec) - (plan.start - plan.first)
    data = {
        "symbol": [symbol] * n,
        "interval": [interval] * n,
        "ts": ts[keep],
        "feature_version": np.full(n, FEATURE_VERSION),
        "bar_ingested_at": to_utc(rec["ingested_at"][keep]),
        "closes_at": to_utc(rec["closes_at"][keep]),
    }
    data.update({name: arr[keep] for name, arr in values.items()})
    return data


class _Computed(NamedTuple):
    """A symbol whose feature rows were computed and are to be written."""

    symbol: str
    columns: dict  # the feature rows, column by column (the names of WRITE_COLUMNS)
    plan: Plan
    counts: SymbolCounts  # its entry in the batch's result, completed by the write


def update_batch(
    conn,
    symbols: list[str],
    interval: str,
    *,
    full: bool,
    lookback: int,
    features: FeatureSet,
    before_symbol: Callable[[str], None] | None = None,
    context: WriteContext | None = None,
) -> dict[str, SymbolCounts | str]:
    """Recompute the stale feature rows of ``symbols`` in ONE transaction (a batch of a few dozen
    symbols: four reads and one write instead of ~10 round trips per symbol).

    A symbol whose computation raises (bad bars, MemoryError, an injected fault) gets its reason
    as a string and is not written; the others are. A database error fails the whole batch (the
    caller retries its symbols one by one). ``before_symbol`` runs before each symbol's maths.
    ``context`` is what the write records (``mfs.storage.clock.set_write_context``).
    """
    try:
        with conn.cursor() as cur:
            set_write_context(cur, **(context or {}))
            set_accounted_write(cur)  # the progress recorded below accounts for this batch's writes
            changes, unaccounted = progress.change_counts(cur, symbols, interval)
            key = (list(symbols), interval)
            bar_states, row_states = _read_states(cur, key, features.cumulative)
            plans = [
                plan_symbol(b, r, full=full, lookback=lookback, cumulative=features.cumulative)
                for b, r in zip(bar_states, row_states, strict=True)
            ]
            deleted = _delete_orphans(cur, symbols, interval, plans)
            windows = _read_windows(cur, key, plans)
            out: dict[str, SymbolCounts | str] = {}
            computed: list[_Computed] = []
            for symbol, plan, window in zip(symbols, plans, windows, strict=False):
                counts = SymbolCounts(deleted=deleted[symbol])
                out[symbol] = counts
                if plan.start is None or window is None:  # nothing stale
                    continue
                outcome = _compute_symbol(symbol, interval, window, plan, counts, features, before_symbol)
                if isinstance(outcome, str):
                    out[symbol] = outcome
                else:
                    computed.append(outcome)
            if computed:
                _write_features(cur, interval, computed, write_columns(features))
            if computed or any(deleted.values()):
                refresh_latest(cur, symbols, interval)
            current = [s for s in symbols if not isinstance(out[s], str)]
            progress.record_progress(cur, interval, changes, unaccounted, FEATURE_VERSION, current)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return out


def _read_states(
    cur, key: tuple[list[str], str], cumulative: tuple[str, ...]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per symbol: every bar's (ts, ingested_at) and every feature row's state, ordered by ts."""
    n = len(key[0])
    bar_states = split_by_symbol(
        copy_records(cur, "SELECT w.k::int4, t.ts, t.ingested_at " + batch_rows("market_data"), key, _BAR_STATE),
        n,
    )
    row_states = split_by_symbol(
        copy_records(
            cur,
            "SELECT w.k::int4, t.ts, t.feature_version, coalesce(t.bar_ingested_at, '-infinity')"
            # Feature names are checked SQL identifiers (mfs.features.definitions: [a-z][a-z0-9_]*).
            + "".join(f", coalesce(t.{name}, 'NaN')" for name in cumulative)
            + " "
            + batch_rows("features"),
            key,
            _row_state(cumulative),
        ),
        n,
    )
    return bar_states, row_states


def _delete_orphans(cur, symbols: list[str], interval: str, plans: list[Plan]) -> Counter:
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


def _read_windows(cur, key: tuple[list[str], str], plans: list[Plan]) -> list[np.ndarray] | list[None]:
    """Per symbol, its bars from the earliest bar any symbol of the batch must read (one query for
    the batch); all None when nothing is stale."""
    n = len(key[0])
    todo = [p for p in plans if p.start is not None]
    if not todo:
        return [None] * n
    since = min(p.bar_ts[p.first] for p in todo)
    return split_by_symbol(
        copy_records(
            cur,
            "SELECT w.k::int4, t.ts, t.open, t.high, t.low, t.close, t.volume, t.ingested_at, "
            "coalesce(t.closes_at, bar_closes_at(t.interval, t.ts)) " + batch_rows("market_data", since=True),
            (*key, int(since)),
            BAR_RECORD,
        ),
        n,
    )


def symbol_failure(exc: BaseException) -> str:
    """Why one symbol's maths failed, as its result records it."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _compute_symbol(
    symbol: str,
    interval: str,
    window: np.ndarray,
    plan: Plan,
    counts: SymbolCounts,
    features: FeatureSet,
    before_symbol: Callable[[str], None] | None,
) -> _Computed | str:
    """One symbol's feature rows from its bars (``counts`` filled in), or why they failed."""
    rec = window[np.searchsorted(window["ts"].astype(np.int64), plan.bar_ts[plan.first]) :]
    try:
        if before_symbol:
            before_symbol(symbol)
        data = _features_for(symbol, interval, rec, plan, features)
    except Exception as exc:
        return symbol_failure(exc)
    counts.bars_read, counts.staged = len(rec), len(data["ts"])
    counts.start, counts.anchored = data["ts"][0].isoformat(), plan.anchors is not None
    return _Computed(symbol, data, plan, counts)


def _write_features(cur, interval: str, computed: list[_Computed], columns: list[Column]) -> None:
    """One write for the batch's computed rows; fills in each symbol's inserted/updated."""
    upsert_needed = any(c.plan.rows_from_start > 0 for c in computed)
    data = {col.name: concat([c.columns[col.name] for c in computed]) for col in columns}
    # Only new bars everywhere (a backfill, the next hour): a plain INSERT, nothing to compare.
    touch = {"computed_at": "mfs_now()"}
    upsert(cur, "features", columns, data, key=KEY, touch=touch, new_keys_only=not upsert_needed)
    if upsert_needed:
        _split_counts(cur, interval, computed)
    else:
        for c in computed:
            c.counts.inserted = len(c.columns["ts"])


def refresh_latest(cur, symbols: Sequence[str], interval: str) -> None:
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


def _split_counts(cur, interval: str, computed: list[_Computed]) -> None:
    """Per-symbol inserted/updated after one batch upsert. Bars without a row are inserts (the
    plan knows how many rows existed); rows this transaction touched carry computed_at = mfs_now()
    (unchanged rows keep their old computed_at), so touched - inserted = updated."""
    cur.execute(
        "SELECT symbol, count(*) FROM features WHERE symbol = ANY(%s) AND interval = %s "
        "AND computed_at = mfs_now() GROUP BY symbol",
        ([c.symbol for c in computed], interval),
    )
    touched = dict(cur.fetchall())
    for c in computed:
        c.counts.inserted = len(c.columns["ts"]) - c.plan.rows_from_start
        c.counts.updated = touched.get(c.symbol, 0) - c.counts.inserted
