"""Entities in (.csv or .parquet), a point-in-time dataset out (Parquet, streamed window by window).

The output is written to a temporary file next to ``out`` and renamed at the end: a failed or
interrupted run leaves no partial file behind (and no file at all when it wrote none before).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mfs.dataset.api import build_request
from mfs.dataset.reader import BATCH_SYMBOLS, WINDOW_ROWS, Reader
from mfs.dataset.request import RESULT_COLUMNS, DatasetInputError, Entities, parse_zoned_strings, prepare_entities
from mfs.dataset.versions import pg_literal
from mfs.errors import first_line
from mfs.storage.connection import connection

ENTITY_SUFFIXES = (".csv", ".parquet")


@dataclass
class DatasetSummary:
    rows: int
    matched: int
    missing_symbols: list[str]  # symbols without any row of the interval in the store
    seconds: float
    fallback: int = 0  # entity rows answered by the SQL function (irregular versions)
    known_at: str | None = None  # the known_at used ('now' resolved), None = each entity's at
    out: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NoMatchError(DatasetInputError):
    """Not one entity row has an answer (``require_match``): nothing is written."""

    exit_code = 1

    def __init__(self, message: str, summary: DatasetSummary):
        super().__init__(message)
        self.summary = summary


def read_entities(path: str | os.PathLike) -> pd.DataFrame:
    """Entity rows from a .csv (``at``: ISO timestamps with a zone, read as UTC) or a .parquet file."""
    p = Path(path)
    if p.suffix.lower() not in ENTITY_SUFFIXES:
        raise DatasetInputError(f"entities file must be .csv or .parquet: {p}")
    if not p.is_file():
        raise DatasetInputError(f"entities file not found: {p}")
    try:
        if p.suffix.lower() == ".parquet":
            frame = pq.read_table(p).to_pandas()
        else:
            options = pacsv.ConvertOptions(column_types={"symbol": pa.string()})
            frame = pacsv.read_csv(p, convert_options=options).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise DatasetInputError(f"cannot read entities from {p}: {first_line(exc)}") from None
    if "at" in frame.columns and pd.api.types.is_object_dtype(frame["at"].dtype) and len(frame):
        # A CSV column mixing zones or holding naive values is read as text: say which row is wrong.
        frame["at"] = parse_zoned_strings(frame["at"].astype(str), "at")
    return frame


def write_dataset(
    entities: pd.DataFrame | str | os.PathLike,
    out: str | os.PathLike,
    *,
    known_at: Any = None,
    tolerance: Any = None,
    columns: Sequence[str] | str | None = None,
    interval: str = "1h",
    mode: str = "known",
    kind: str = "features",
    url: str | None = None,
    progress: bool | None = None,
    require_match: bool = False,
    window_rows: int = WINDOW_ROWS,
    batch_symbols: int = BATCH_SYMBOLS,
) -> DatasetSummary:
    """``features_asof`` (``kind='bars'``: ``bars_asof``) of ``entities`` (a DataFrame or a
    .csv/.parquet path) written to the Parquet file ``out``, ``window_rows`` entity rows at a time
    (in entity order), so memory holds one window's results, never the whole dataset. A progress
    bar on stderr when it is a terminal (``progress`` None) or when asked. ``require_match``: raise
    NoMatchError, writing nothing, when not one entity row has an answer."""
    started = time.perf_counter()
    request = build_request(
        kind, columns=columns, interval=interval, mode=mode, known_at=known_at, tolerance=tolerance, url=url
    )
    target = _output_path(out)
    frame = entities if isinstance(entities, pd.DataFrame) else read_entities(entities)
    ents = prepare_entities(frame, [*RESULT_COLUMNS, *request.columns])
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with (
            _progress_bar(len(ents), progress) as advance,
            Reader(request, url=url, window_rows=window_rows, batch_symbols=batch_symbols, on_rows=advance) as reader,
        ):
            _write(reader, ents, tmp)
            missing = reader.missing_symbols()
        stats = reader.stats
        summary = DatasetSummary(
            rows=len(ents),
            matched=stats.matched,
            missing_symbols=missing,
            seconds=round(time.perf_counter() - started, 3),
            fallback=stats.fallback,
            known_at=None if reader.known_at is None else pg_literal(reader.known_at),
            out=str(target),
        )
        if require_match and not summary.matched:
            message = _no_match_message(summary, request.source.name, interval)
            if summary.known_at is None and summary.rows:
                message += _first_known_hint(url, request.source.name, ents, interval)
            raise NoMatchError(message, summary)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return summary


def _no_match_message(summary: DatasetSummary, what: str, interval: str) -> str:
    if not summary.rows:
        return "no entity rows: nothing written"
    missing = f"; no {what} rows of {interval} at all for {', '.join(summary.missing_symbols)}"
    why = missing if summary.missing_symbols else ""
    return f"not one of {summary.rows} entity rows has an answer{why}: nothing written"


# When the store first knew any version of a series' rows, and when its first bar closed.
_FIRST_KNOWN = {
    "features": "SELECT min(known_from), min(closes_at) FROM feature_versions WHERE symbol = ANY(%s) AND interval = %s",
    "bars": "SELECT min(known_from), min(closes_at) FROM bar_versions WHERE symbol = ANY(%s) AND interval = %s",
}


def _first_known_hint(url: str | None, what: str, ents: Entities, interval: str) -> str:
    """Why an empty answer is empty when the default known_at (each entity's moment) precedes
    everything the store knows — a store backfilled today knew nothing yesterday — and the flag
    that asks for today's knowledge instead; or that the series begin after every asked moment;
    "" when neither is why."""
    query = _FIRST_KNOWN.get(what)
    if query is None:
        return ""
    with connection(url) as conn, conn.cursor() as cur:
        cur.execute(query, (sorted(set(ents.frame["symbol"])), interval))
        row = cur.fetchone()
    first_known, first_close = row if row else (None, None)
    latest = pd.Timestamp(ents.frame["at"].max())
    if first_known is None or first_close is None:
        return ""
    if pd.Timestamp(first_close) > latest:
        return f". These symbols' first bar closed at {pd.Timestamp(first_close).isoformat()}, after every asked moment"
    if pd.Timestamp(first_known) <= latest:
        return ""
    return (
        f". Each row was asked as known at its own moment (the latest {latest.isoformat()}), but the store "
        f"first knew these symbols' {what} at {pd.Timestamp(first_known).isoformat()}: pass --known-at now (Python: "
        "known_at='now') for the values the store knows today, still without look-ahead"
    )


def _output_path(out: str | os.PathLike) -> Path:
    target = Path(out)
    if target.suffix.lower() != ".parquet":
        raise DatasetInputError(f"the output file must end in .parquet: {target}")
    if not target.parent.is_dir():
        raise DatasetInputError(f"the output folder does not exist: {target.parent}")
    if target.is_dir():
        raise DatasetInputError(f"the output is a folder: {target}")
    return target


def _write(reader: Reader, ents: Entities, tmp: Path) -> None:
    """Every window's results into the Parquet file ``tmp``, one row group per window, written
    by a thread while the next window is read (at most one window waits: bounded memory)."""
    # The entity columns' types from all entity rows (a window's own might be all-null); the pandas
    # metadata of the result's frame, so that pandas reads back its dtypes (boolean, Int16 …).
    entity_schema = pa.Schema.from_pandas(ents.frame, preserve_index=False)
    empty = reader.empty_frame(ents.frame)
    result_schema = pa.Schema.from_pandas(empty, preserve_index=False)
    fields = [entity_schema.field(n) for n in ents.frame.columns]
    fields += [result_schema.field(n) for n in empty.columns[len(fields) :]]
    schema = pa.schema(fields, metadata=result_schema.metadata)
    # Dictionary pages for the columns with few distinct values only: tried on every float column,
    # they double the writing time for nothing.
    few = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    few += [f.name for f in schema if pa.types.is_integer(f.type) and f.type.bit_width <= 16]
    with pq.ParquetWriter(tmp, schema, use_dictionary=few) as writer, ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for start, stop, out in reader.windows(ents):
            window = pa.Table.from_pandas(ents.frame.iloc[start:stop], schema=entity_schema, preserve_index=False)
            table = out.arrow(window, schema)
            if pending is not None:
                pending.result()
            pending = pool.submit(writer.write_table, table)
        if pending is not None:
            pending.result()
        if not len(ents):
            writer.write_table(pa.Table.from_pandas(empty, schema=schema, preserve_index=False))


@contextlib.contextmanager
def _progress_bar(total: int, show: bool | None) -> Iterator[Callable[[int], None] | None]:
    if not (sys.stderr.isatty() if show is None else show) or not total:
        yield None
        return
    with Progress(
        TextColumn("dataset"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("dataset", total=total)
        yield lambda n: bar.advance(task, n)
