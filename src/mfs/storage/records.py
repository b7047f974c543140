"""Reads of fixed-width rows through binary COPY into numpy record arrays.

When every field a query selects is fixed-width and never NULL (a NULL is sent as length -1 with
no bytes, which would change the row's length), the COPY payload after its header is a plain
array of records: numpy views it without parsing, exact bits, no Python object per value (far
faster than a cursor's tuples). Callers send NULLs as sentinels (NaN, the type's minimum,
'-infinity') and say so where they decode them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mfs.errors import StorageError
from mfs.storage.copy_binary import PG_EPOCH_US
from mfs.storage.types import Cursor

COPY_HEADER_LEN = 19  # signature (11) + flags (4) + header extension length (4), extension empty
PG_INF = np.iinfo(np.int64).max  # timestamptz 'infinity' in binary COPY
PG_NINF = np.iinfo(np.int64).min  # '-infinity'


def record_dtype(fields: Sequence[tuple[str, str]]) -> np.dtype:
    """The record of a binary COPY row of ``fields`` (name, numpy wire type such as '>f8'): the
    field count, then each field's length and value."""
    layout = [("n", ">i2")]
    for i, (name, kind) in enumerate(fields):
        layout += [(f"l{i}", ">i4"), (name, kind)]
    return np.dtype(layout)


def copy_records(cur: Cursor, query: str, params: tuple | dict, dtype: np.dtype) -> np.ndarray:
    """The rows of ``query`` (bound with ``params``) as records of ``dtype`` (big-endian, as sent)."""
    buf = io.BytesIO()
    cur.copy_expert(f"COPY ({cur.mogrify(query, params).decode()}) TO STDOUT WITH (FORMAT binary)", buf)
    body = buf.getbuffer()[COPY_HEADER_LEN:-2]  # minus the header and the -1 trailer
    if len(body) % dtype.itemsize:
        raise StorageError("unexpected binary COPY layout (a NULL or a changed column type?)")
    return np.frombuffer(body, dtype=dtype)


def native(values: np.ndarray) -> np.ndarray:
    """``values`` in the machine's byte order (a copy)."""
    return values.astype(values.dtype.newbyteorder("="))


def to_utc(pg_us: np.ndarray) -> pd.DatetimeIndex:
    """PostgreSQL binary timestamptz (µs since 2000-01-01) as UTC times."""
    return pd.DatetimeIndex((pg_us.astype(np.int64) + PG_EPOCH_US).astype("datetime64[us]")).tz_localize("UTC")


def to_utc_or_nat(pg_us: np.ndarray) -> pd.DatetimeIndex:
    """The same, with ±infinity (a NULL's sentinel) as NaT."""
    us = pg_us.astype(np.int64)
    finite = (us != PG_INF) & (us != PG_NINF)
    return pd.DatetimeIndex(np.where(finite, us + PG_EPOCH_US, PG_NINF).view("datetime64[us]")).tz_localize("UTC")
