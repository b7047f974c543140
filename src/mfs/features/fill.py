"""Filling feature columns over the whole history: a feature that was added or whose definition
changed is computed for every stored bar of a batch of symbols, and only its columns are written.

Runs in a worker like ``batch.update_batch`` (one REPEATABLE READ transaction per batch). Each
symbol's bars are read from its first bar, so running sums need no anchor and the values equal a
full recompute. Rows whose value is unchanged are not rewritten; a changed row gets the new
``computed_at`` (it is a new version: as of an earlier moment the old one is what was known) and
its previous version is kept as a revision with reason ``definition_change``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mfs.features.batch import KEY, KEY_COLUMNS, SymbolCounts, compute_rows, concat, refresh_latest, symbol_failure
from mfs.features.model import FeatureSet
from mfs.features.reads import BAR_RECORD, BAR_SELECT, batch_rows, split_by_symbol
from mfs.storage.clock import WriteContext, set_write_context
from mfs.storage.copy_binary import Column
from mfs.storage.progress import set_accounted_write
from mfs.storage.records import copy_records, to_utc
from mfs.storage.types import Connection
from mfs.storage.updates import update_existing


def fill_batch(
    conn: Connection,
    symbols: list[str],
    interval: str,
    names: Sequence[str],
    *,
    features: FeatureSet,
    before_symbol: Callable[[str], None] | None = None,
    context: WriteContext | None = None,
) -> dict[str, SymbolCounts | str]:
    """Recompute the columns ``names`` of every stored feature row of ``symbols``; per symbol its
    counts (``updated`` = rows whose value changed) or why it failed."""
    by_name = features.by_name()
    columns = KEY_COLUMNS + [Column(n, by_name[n].pgtype) for n in names]
    try:
        with conn.cursor() as cur:
            recorded: WriteContext = {**(context or {}), "reason": "definition_change"}
            set_write_context(cur, **recorded)
            set_accounted_write(cur)  # a column fill changes no bar: nothing to recompute after it
            windows = split_by_symbol(
                copy_records(
                    cur,
                    BAR_SELECT + batch_rows("market_data"),
                    (list(symbols), interval),
                    BAR_RECORD,
                ),
                len(symbols),
            )
            out, parts = _computed(symbols, windows, interval, names, features, before_symbol)
            data = {c.name: concat([p[c.name] for p in parts]) for c in columns} if parts else {}
            updated = update_existing(
                cur,
                "features",
                columns,
                data,
                key=KEY,
                touch={"computed_at": "mfs_now()"},
                count_by="symbol",
                revisions="features_revisions",
            )
            for symbol, counts in out.items():
                if isinstance(counts, SymbolCounts):
                    counts.updated = updated.get(symbol, 0)
            if any(updated.values()):
                refresh_latest(cur, symbols, interval)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return out


def _computed(
    symbols: Sequence[str],
    windows: Sequence,
    interval: str,
    names: Sequence[str],
    features: FeatureSet,
    before_symbol: Callable[[str], None] | None,
) -> tuple[dict[str, SymbolCounts | str], list[dict]]:
    """Per symbol its counts or why its maths failed, and the column values of those that did not."""
    out: dict[str, SymbolCounts | str] = {}
    parts: list[dict] = []
    for symbol, rec in zip(symbols, windows, strict=True):
        try:
            if before_symbol:
                before_symbol(symbol)
            values = compute_rows(rec, features, only=names)
        except Exception as exc:
            out[symbol] = symbol_failure(exc)
            continue
        out[symbol] = SymbolCounts(bars_read=len(rec), staged=len(rec))
        parts.append(
            {
                "symbol": [symbol] * len(rec),
                "interval": [interval] * len(rec),
                "ts": to_utc(rec["ts"]),
                **{n: values[n] for n in names},
            }
        )
    return out, parts
