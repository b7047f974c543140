"""``features_asof`` / ``bars_asof``: the SQL functions' answers for a DataFrame of entities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from mfs.dataset.reader import BATCH_SYMBOLS, WINDOW_ROWS, Reader
from mfs.dataset.request import RESULT_COLUMNS, DatasetInputError, Request, make_request, prepare_entities
from mfs.dataset.versions import BAR_SOURCE, FEATURE_SOURCE, Source, feature_source, pg_literal
from mfs.storage.types import Connection

SOURCES = {"features": FEATURE_SOURCE, "bars": BAR_SOURCE}


def build_request(
    kind: str,
    *,
    columns: Sequence[str] | str | None,
    interval: str,
    mode: str,
    known_at: Any,
    tolerance: Any,
    url: str | None = None,
    conn: Connection | None = None,
    store: bool = True,
) -> Request:
    """The request for ``kind``; the features' columns are the store's (``store=False``: none yet,
    to check every other argument before connecting)."""
    source: Source | None = SOURCES.get(kind)
    if source is None:
        raise DatasetInputError(f"kind must be one of {', '.join(SOURCES)}, not {kind!r}")
    if source is FEATURE_SOURCE and store:
        source = feature_source(url, conn)
    return make_request(source, columns=columns, interval=interval, mode=mode, known_at=known_at, tolerance=tolerance)


def features_asof(
    entities: pd.DataFrame,
    *,
    known_at: Any = None,
    tolerance: Any = None,
    columns: Sequence[str] | None = None,
    interval: str = "1h",
    mode: str = "known",
    url: str | None = None,
    conn: Connection | None = None,
    batch_symbols: int = BATCH_SYMBOLS,
) -> pd.DataFrame:
    """Per entity row (``symbol``, tz-aware ``at``): the feature row version the SQL function
    ``features_asof`` returns for it, with the same arguments (see sql/functions/asof.sql and
    docs): the newest row whose bar had closed by ``at``, complete, as the store knew it at
    ``known_at`` (None: each entity's own ``at``; a tz-aware timestamp; ``'now'``: the store's
    current state). ``mode='served'``: what ``latest_features`` served at ``at`` (partial rows
    included; ``known_at`` does not apply). ``tolerance`` (2h, 90min, 1d, a timedelta): no answer
    when that bar closed more than this before ``at``.

    One row per entity row, in their order: the entity's columns (``at`` in UTC), then ``ts``,
    ``closes_at``, ``known_from``, ``known_to`` (always NaT: as the SQL function reports it, the
    version as it stood at known_at, when it was current — 'infinity'), ``complete``,
    then ``columns`` (default: every feature). Without an answer: NaT/NA/NaN. ``attrs`` carries
    ``missing_symbols`` (symbols without any row of ``interval``), the ``known_at`` used ('now'
    resolved) and ``fallback_rows`` (rows whose symbol's versions the fast path does not take,
    answered by the SQL function itself).
    ``conn``: an open psycopg2 connection to read on (its transaction is left as is); else a
    read-only connection to ``url`` (default: the store)."""
    return _asof(
        "features", entities, known_at, tolerance, columns, interval, mode, url=url, conn=conn, batch=batch_symbols
    )


def bars_asof(
    entities: pd.DataFrame,
    *,
    known_at: Any = None,
    tolerance: Any = None,
    columns: Sequence[str] | None = None,
    interval: str = "1h",
    mode: str = "known",
    url: str | None = None,
    conn: Connection | None = None,
    batch_symbols: int = BATCH_SYMBOLS,
) -> pd.DataFrame:
    """``features_asof`` for bars (the SQL function ``bars_asof``): open, high, low, close,
    adj_close, volume of the bar version known as of ``known_at``; complete = fetched after its close."""
    return _asof(
        "bars", entities, known_at, tolerance, columns, interval, mode, url=url, conn=conn, batch=batch_symbols
    )


def _asof(
    kind: str,
    entities: pd.DataFrame,
    known_at: Any,
    tolerance: Any,
    columns: Sequence[str] | None,
    interval: str,
    mode: str,
    *,
    url: str | None,
    conn: Connection | None,
    batch: int,
) -> pd.DataFrame:
    args = {"interval": interval, "mode": mode, "known_at": known_at, "tolerance": tolerance}
    # Arguments and entities are checked before the store is asked which feature columns it has.
    first = build_request(kind, columns=None, **args, store=False)
    ents = prepare_entities(entities, [*RESULT_COLUMNS, *first.columns])
    request = build_request(kind, columns=columns, **args, url=url, conn=conn)
    if request.columns != first.columns:
        ents = prepare_entities(entities, [*RESULT_COLUMNS, *request.columns])
    with Reader(request, url=url, conn=conn, window_rows=max(len(ents), WINDOW_ROWS), batch_symbols=batch) as reader:
        frames = list(reader.frames(ents)) or [reader.empty_frame(ents.frame)]
        missing = reader.missing_symbols()
        used = reader.known_at
        fallback = reader.stats.fallback
    result = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    result.attrs["missing_symbols"] = missing
    result.attrs["known_at"] = None if used is None else pg_literal(used)
    result.attrs["fallback_rows"] = fallback  # entity rows answered by the SQL function itself
    return result
