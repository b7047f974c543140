"""Output helpers: rich on a terminal, plain lines or JSON when piped."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from mfs.runs import RunReport, SymbolResult


def is_terminal() -> bool:
    return sys.stdout.isatty()


def print_json(data: Any) -> None:
    """One JSON object on the last line of stdout (scripts read the last line)."""
    sys.stdout.write(json.dumps(data, default=str, sort_keys=True) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    if is_terminal():
        table = Table(title=title)
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)
        return
    print(title)
    print("\t".join(columns))
    for row in rows:
        print("\t".join("" if v is None else str(v) for v in row))


@contextmanager
def progress(label: str) -> Iterator[Callable[[str], None]]:
    """A status spinner on a terminal; plain stderr lines otherwise."""
    if sys.stderr.isatty():
        console = Console(stderr=True)
        with console.status(label) as status:
            yield lambda message: status.update(f"{label}: {message}")
        return
    yield lambda message: print(f"{label}: {message}", file=sys.stderr, flush=True)


def print_run_table(report: RunReport, columns: Sequence[str], outcome: Callable[[SymbolResult], Any]) -> None:
    """One row per symbol and stage of ``report``: symbol, stage, status, fetched, inserted,
    updated, the run's own ``outcome`` column, seconds and reason — under ``columns``' names."""
    rows = [
        (
            r.symbol,
            r.stage,
            r.status,
            r.fetched,
            r.inserted,
            r.updated,
            outcome(r),
            f"{r.duration_s:.2f}",
            r.reason or "",
        )
        for r in report.results
    ]
    print_table(f"{report.flow} run {report.run_id}", columns, rows)
