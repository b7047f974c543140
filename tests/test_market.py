"""One error per condition: a bad interval, symbol or date raises the same type (exit code 2)
wherever it is detected — a library call, a source, the point-in-time reads, the CLI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from mfs.aggregates.refresh import refresh
from mfs.cli.main import main
from mfs.dataset import features_asof, latest_features
from mfs.errors import DateError, InputError, IntervalError, SymbolError
from mfs.features import compute
from mfs.ingest import collect
from mfs.market import normalize_symbols, parse_moment
from mfs.sources.yahoo import fetch_chart

NOWHERE = "postgresql://nowhere.invalid/none"  # every check happens before a connection
ENTITIES = pd.DataFrame({"symbol": ["AAPL"], "at": [pd.Timestamp("2026-11-24", tz="UTC")]})

CASES: list[tuple[type[InputError], Callable[[], object]]] = [
    (IntervalError, lambda: collect(["AAPL"], interval="5m")),
    (IntervalError, lambda: compute(["AAPL"], "5m")),
    (IntervalError, lambda: fetch_chart("AAPL", "5m", pd.Timestamp("2026-11-24", tz="UTC"))),
    (IntervalError, lambda: features_asof(ENTITIES, interval="5m", url=NOWHERE)),
    (IntervalError, lambda: latest_features(interval="5m", url=NOWHERE)),
    (SymbolError, lambda: collect(["DROP TABLE;"])),
    (SymbolError, lambda: compute(["A B"], "1h")),
    (SymbolError, lambda: latest_features(["AAPL", "x;y"], url=NOWHERE)),
    (SymbolError, lambda: normalize_symbols([])),
    (DateError, lambda: refresh("the day after tomorrow", url=NOWHERE)),
    (DateError, lambda: features_asof(ENTITIES, known_at="yesterday", url=NOWHERE)),
]


@pytest.mark.parametrize(("error", "call"), CASES)
def test_each_condition_is_one_error_type_wherever_it_is_detected(error, call) -> None:
    with pytest.raises(InputError) as caught:
        call()
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    assert caught.value.exit_code == 2 and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["collect", "--symbols", "A B"], "not a valid ticker"),
        (["features", "--symbols", "x;y"], "not a valid ticker"),
        (["aggregates", "refresh", "--from", "soon", "--to", "2026-12-01"], "not a date or timestamp"),
    ],
)
def test_the_cli_exits_2_with_one_line(argv, says, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err


def test_a_bare_date_is_the_new_york_day_and_an_aware_time_an_instant() -> None:
    assert parse_moment("2026-12-07", key="start") == datetime(2026, 12, 7, 5, tzinfo=UTC)
    assert parse_moment(date(2026, 7, 1), key="start") == datetime(2026, 7, 1, 4, tzinfo=UTC)
    assert parse_moment("2026-12-07T14:30Z", key="end") == datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
