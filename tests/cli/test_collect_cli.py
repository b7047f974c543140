"""``mfs collect`` / ``mfs backfill`` argument handling (the runs themselves: tests/ingest)."""

from __future__ import annotations

import argparse

import pytest

from mfs.cli.collect import period_days
from mfs.cli.main import main
from mfs.storage.connection import connect


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


def test_a_symbol_collected_by_hand_that_no_schedule_collects_is_called_out(db, config_env, capsys) -> None:
    """Shell runs land in pipeline_runs like scheduled ones (the dashboard's run history reads
    it); a symbol only a shell run collected is named by `mfs status`, since nothing refreshes it."""
    config_env(MFS_SYMBOLS="AAPL", MFS_SYNTHETIC_ASOF="2026-11-20T20:00:00Z")
    assert main(["collect", "--symbols", "AAPL,KO", "--days", "3", "--offline"]) == 0
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("unscheduled"))
    assert "1 symbol(s) in the store that no schedule collects: KO (newest bar 2026-11-20 " in line
    assert "AAPL" not in line
    with connect(db) as conn, conn.cursor() as cur:  # the shell run is recorded like a scheduled one
        cur.execute("SELECT flow, status, parameters->'symbols' FROM pipeline_runs")
        assert cur.fetchall() == [("collect", "completed", ["AAPL", "KO"])]
