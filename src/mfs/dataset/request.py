"""The arguments of a point-in-time dataset, checked once: entities, known_at, tolerance, columns.

Every bad value is one InputError (exit code 2 in the CLI) naming it: a DateError for a bad known_at,
an IntervalError for an interval, a DatasetInputError for the rest.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mfs.dataset.versions import Source
from mfs.errors import DateError, InputError, first_line
from mfs.market import check_interval
from mfs.storage.copy_binary import PG_EPOCH_US

MODES = ("known", "served")
NOW = "now"
# The columns a result adds after the entity's own.
TIME_COLUMNS = ("ts", "closes_at", "known_from", "known_to")
RESULT_COLUMNS = (*TIME_COLUMNS, "complete")
# A time of day followed by a zone: Z, ±HH, ±HHMM, ±HH:MM or UTC/GMT.
_ZONED = re.compile(r"(?i)\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:z|[+-]\d{2}(?::?\d{2})?|utc|gmt)$")


class DatasetInputError(InputError):
    """A bad argument of a dataset (entities, tolerance, columns …): one line, exit 2."""


@dataclass(frozen=True)
class Request:
    source: Source
    columns: tuple[str, ...]
    interval: str
    served: bool
    known_at: int | str | None  # PostgreSQL µs, NOW (resolved by the reader) or None (each entity's at)
    tolerance: int | None  # µs

    @property
    def mode(self) -> str:
        return "served" if self.served else "known"


def make_request(
    source: Source,
    *,
    columns: Sequence[str] | None,
    interval: str,
    mode: str,
    known_at: Any,
    tolerance: Any,
) -> Request:
    check_interval(interval)
    if mode not in MODES:
        raise DatasetInputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return Request(
        source,
        check_columns(source, columns),
        interval,
        mode == "served",
        parse_known_at(known_at),
        parse_tolerance(tolerance),
    )


def check_columns(source: Source, columns: Sequence[str] | None) -> tuple[str, ...]:
    names = source.column_names
    if columns is None:
        return tuple(names)
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    chosen = list(dict.fromkeys(columns))
    if not chosen:
        raise DatasetInputError(f"columns: name at least one {source.name} column")
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise DatasetInputError(
            f"unknown {source.name} column(s) {', '.join(map(repr, unknown))}; known: {', '.join(names)}"
        )
    return tuple(chosen)


def to_pg_us(ts: pd.Timestamp) -> int:
    """A tz-aware timestamp as PostgreSQL µs (floored to the µs, as everywhere in the dataset)."""
    return int(ts.as_unit("ns").value // 1000) - PG_EPOCH_US


def parse_known_at(value: Any) -> int | str | None:
    """None (each entity's own at), 'now' (the store's current state) or a timestamp with a zone."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == NOW:
        return NOW
    if not isinstance(value, str | dt.datetime | np.datetime64):
        raise DateError(f"known_at must be a timestamp with a time zone or 'now', not {value!r}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DateError(f"known_at {value!r} is not a timestamp (e.g. 2026-11-24T16:00Z, or 'now')") from None
    if ts is pd.NaT:
        raise DateError("known_at is empty: give a timestamp with a time zone, or 'now'")
    if ts.tzinfo is None:
        raise DateError(f"known_at {value!r} has no time zone (e.g. 2026-11-24T16:00Z)")
    return to_pg_us(ts)


def parse_tolerance(value: Any) -> int | None:
    """None, or a non-negative duration: a pandas Timedelta string (2h, 90min, 1d) or a timedelta."""
    if value is None:
        return None
    if not isinstance(value, str | dt.timedelta | np.timedelta64):
        raise DatasetInputError(f"tolerance must be a duration such as 2h, 90min or 1d, not {value!r}")
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise DatasetInputError(f"tolerance {value!r} is not a duration (e.g. 2h, 90min, 1d)") from None
    if td is pd.NaT:
        raise DatasetInputError("tolerance is empty: give a duration such as 2h, 90min or 1d")
    if td < pd.Timedelta(0):
        raise DatasetInputError(f"tolerance must not be negative, not {value!r}")
    return int(td.as_unit("ns").value // 1000)


@dataclass
class Entities:
    """The entity rows: the frame as given (``at`` in UTC), the symbols and ``at`` (PostgreSQL µs)."""

    frame: pd.DataFrame
    symbols: np.ndarray
    at: np.ndarray

    def __len__(self) -> int:
        return len(self.at)


def prepare_entities(entities: Any, result_columns: Sequence[str]) -> Entities:
    if not isinstance(entities, pd.DataFrame):
        raise DatasetInputError(f"entities must be a pandas DataFrame with columns symbol and at, not {type(entities)}")
    for name in ("symbol", "at"):
        if name not in entities.columns:
            got = ", ".join(map(str, entities.columns)) or "none"
            raise DatasetInputError(f"entities have no column {name!r} (expected symbol and at; got: {got})")
    clash = [str(c) for c in entities.columns if c in result_columns]
    if clash:
        raise DatasetInputError(f"entity column(s) {', '.join(clash)} clash with the result's columns: rename them")
    frame = entities.reset_index(drop=True)
    at = entity_times(frame["at"], "at")
    frame = frame.assign(at=at)
    symbols = frame["symbol"].to_numpy(dtype=object)
    for value in pd.unique(symbols):  # checked once per distinct value
        if not isinstance(value, str) or not value:
            row = next(i for i, s in enumerate(symbols) if s is value or s == value)
            raise DatasetInputError(f"entities column 'symbol', row {row}: {value!r} is not a symbol")
    ns = at.to_numpy(dtype="datetime64[ns]").view(np.int64)
    return Entities(frame, symbols, ns // 1000 - PG_EPOCH_US)


def entity_times(values: pd.Series, column: str) -> pd.Series:
    """``values`` as tz-aware UTC timestamps; naive ones, empty ones or non-timestamps are refused."""
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        at = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(dtype):
        raise DatasetInputError(
            f"entities column {column!r} holds timestamps without a time zone: give them one "
            "(e.g. 2026-11-24T15:00Z, or Series.dt.tz_localize('UTC'))"
        )
    elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        at = _from_objects(values, column)
    else:
        raise DatasetInputError(f"entities column {column!r} must hold timestamps with a time zone, not {dtype}")
    empty = np.flatnonzero(at.isna().to_numpy())
    if len(empty):
        raise DatasetInputError(f"entities column {column!r}, row {empty[0]}: no timestamp")
    return at


def _from_objects(values: pd.Series, column: str) -> pd.Series:
    items = values.tolist()
    if all(isinstance(v, str) for v in items):
        return parse_zoned_strings(values.astype(str), column)
    naive = [i for i, v in enumerate(items) if not (isinstance(v, dt.datetime) and v.tzinfo is not None)]
    if naive:
        raise DatasetInputError(
            f"entities column {column!r}, row {naive[0]}: {items[naive[0]]!r} is not a timestamp with a time zone"
        )
    return pd.Series(pd.to_datetime(items, utc=True), index=values.index)


def parse_zoned_strings(values: pd.Series, column: str) -> pd.Series:
    """ISO timestamps that each carry a zone (Z, +01:00 …), as UTC; a naive one is refused."""
    stripped = values.str.strip()
    zoned = stripped.str.contains(_ZONED, regex=True).to_numpy(dtype=bool)
    if not zoned.all():
        i = int(np.flatnonzero(~zoned)[0])
        raise DatasetInputError(
            f"entities column {column!r}, row {i}: {values.iloc[i]!r} has no time zone (e.g. 2026-11-24T15:00Z)"
        )
    try:
        return pd.Series(pd.to_datetime(stripped, utc=True, format="ISO8601"), index=values.index)
    except (ValueError, TypeError) as exc:
        raise DatasetInputError(f"entities column {column!r}: {first_line(exc)}") from None
