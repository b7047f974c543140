"""Training-set reads: the features of an entity set — every stored hourly bar close of every
bench symbol — read three ways, alternately over rounds:

- the floor: a binary COPY of the same feature rows into a buffer (no parsing, no join);
- ``mfs.dataset.features_asof(entities)``: point in time, through the versions;
- by hand, as users write it: ``pandas.read_sql`` of the features table and ``pandas.merge_asof``
  on the bar close — which ignores revisions and ``known_at`` (the current rows only).

The benchmark backfilled its year in one go, so at each bar's own close nothing was known yet:
the point-in-time read asks as of the store's last write (``known_at``), today's values with no
look-ahead in bar time — the same answer as the hand-written join, which the figures check.
"""

from __future__ import annotations

import gc
import io
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from mfs.dataset import features_asof
from mfs.features import definitions
from mfs.storage.connection import connection, database_url, libpq_url

if TYPE_CHECKING:
    import sqlalchemy


def _select() -> str:
    columns = ["symbol", "ts", "closes_at", *definitions.load().names]
    return f"SELECT {', '.join(columns)} FROM features WHERE interval = '1h'"


MIB = 2**20


def _fetch(sql: str, params: tuple = ()) -> list[tuple]:
    with connection() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def entities() -> pd.DataFrame:
    """(symbol, at): the close of every stored hourly bar of every symbol."""
    frame = pd.DataFrame(
        _fetch("SELECT symbol, closes_at FROM market_data WHERE interval = '1h'"), columns=["symbol", "at"]
    )
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


def _floor() -> tuple[float, int]:
    """Seconds to binary-COPY the feature rows into a buffer, and the bytes read."""
    buf = io.BytesIO()
    with connection() as conn, conn.cursor() as cur:
        began = time.perf_counter()
        cur.copy_expert(f"COPY ({_select()}) TO STDOUT (FORMAT binary)", buf)
        seconds = time.perf_counter() - began
    return seconds, buf.tell()


def _asof(frame: pd.DataFrame, known_at: pd.Timestamp) -> tuple[float, int]:
    """Seconds for ``mfs.dataset.features_asof`` and the entities it matched."""
    began = time.perf_counter()
    result = features_asof(frame, known_at=known_at)
    seconds = time.perf_counter() - began
    return seconds, int(result["ts"].notna().sum())


def _by_hand(frame: pd.DataFrame, engine: sqlalchemy.Engine) -> tuple[float, int]:
    """Seconds for read_sql + merge_asof on the bar close, and the entities it matched
    (``engine``: a SQLAlchemy engine, as such code reads with)."""
    began = time.perf_counter()
    features = pd.read_sql(_select(), engine)
    features["closes_at"] = pd.to_datetime(features["closes_at"], utc=True)
    merged = pd.merge_asof(
        frame.sort_values("at"),
        features.sort_values("closes_at"),
        left_on="at",
        right_on="closes_at",
        by="symbol",
    )
    seconds = time.perf_counter() - began
    return seconds, int(merged["ts"].notna().sum())


def training_reads(rounds: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """The three reads, the order rotating every round; medians, rows/s and ratios to the floor."""
    frame = entities()
    (row,) = _fetch("SELECT count(*), max(computed_at) FROM features WHERE interval = '1h'")
    feature_rows, known_at = int(row[0]), pd.Timestamp(row[1])
    progress(
        f"training-set reads of {len(frame):,} entities: COPY floor, features_asof, read_sql + merge_asof ×{rounds}"
    )
    import sqlalchemy  # deferred: ~145 ms (importtime), the hand-written read's library: only this benchmark

    engine = sqlalchemy.create_engine(libpq_url(database_url()).replace("postgresql://", "postgresql+psycopg2://", 1))
    contenders: dict[str, Callable[[], tuple[float, int]]] = {
        "floor": _floor,
        "asof": lambda: _asof(frame, known_at),
        "by_hand": lambda: _by_hand(frame, engine),
    }
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    counts: dict[str, int] = {}
    names = list(contenders)
    try:
        for i in range(rounds):
            for name in names[i % 3 :] + names[: i % 3]:
                took, counts[name] = contenders[name]()
                seconds[name].append(took)
                gc.collect()  # the previous contender's frames are not the next one's memory
    finally:
        engine.dispose()
    floor = statistics.median(seconds["floor"])
    out: dict[str, Any] = {
        "dataset_entities": len(frame),
        "dataset_known_at": known_at.isoformat(),
        "dataset_floor_s": round(floor, 3),
        "dataset_floor_rows_per_s": round(feature_rows / floor),
        "dataset_floor_mb": round(counts["floor"] / MIB, 1),
    }
    for name in ("asof", "by_hand"):
        median = statistics.median(seconds[name])
        out |= {
            f"dataset_{name}_s": round(median, 3),
            f"dataset_{name}_rows_per_s": round(len(frame) / median),
            f"dataset_{name}_vs_floor": round(median / floor, 2),
            f"dataset_{name}_rows": counts[name],
        }
    if counts["asof"] != counts["by_hand"]:
        out["dataset_rows_note"] = (
            f"features_asof matched {counts['asof']:,} entities, merge_asof {counts['by_hand']:,}: merge_asof "
            "reads the current rows only (no revisions, no known_at, partial rows included)"
        )
    return out
