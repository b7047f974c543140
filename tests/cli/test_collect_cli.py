"""``mfs collect`` / ``mfs backfill`` argument handling (the runs themselves: tests/ingest)."""

from __future__ import annotations

import argparse

import pytest

from mfs.cli.collect import period_days
from mfs.cli.main import main


@pytest.mark.parametrize(("text", "days"), [("7", 7), ("7d", 7), ("2wk", 14), ("6mo", 180), ("1y", 365), ("2Y", 730)])
def test_periods(text: str, days: int) -> None:
    assert period_days(text) == days


@pytest.mark.parametrize("text", ["", "0d", "-1", "1h", "y", "1.5y", "1 year"])
def test_bad_periods_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a period"):
        period_days(text)


def test_bad_period_is_a_clear_cli_error(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["backfill", "--period", "forever", "--offline"])
    assert exit_info.value.code == 2
    assert "'forever' is not a period" in capsys.readouterr().err
