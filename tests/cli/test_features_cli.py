"""`mfs features`: per-symbol summary, exit 0 when every symbol succeeded, non-zero otherwise."""

from __future__ import annotations

from mfs.cli.main import main
from tests.features.feature_helpers import insert_bars, make_bars


def test_features_command_prints_a_summary_and_exits_zero(conn, capsys):
    insert_bars(conn, "CLIA", "1d", make_bars(40, seed=1, interval="1d"))
    assert main(["features", "--symbols", "clia", "--interval", "1d"]) == 0
    out = capsys.readouterr().out
    assert "CLIA\tfeatures_1d\tok\t40\t40\t0\t40" in out
    assert "1 ok, 0 failed; 40 bars read, 40 feature rows written" in out
    assert main(["features", "--symbols", "CLIA", "--interval", "1d", "--full"]) == 0
    assert "CLIA\tfeatures_1d\tok\t40\t0\t0\t0" in capsys.readouterr().out


def test_a_failed_symbol_makes_the_command_fail(conn, capsys, monkeypatch):
    insert_bars(conn, "CLIB", "1h", make_bars(30, seed=2))
    monkeypatch.setenv("MFS_FEATURE_FAULTS", '{"CLIB": "sigkill"}')
    assert main(["features", "--symbols", "CLIB"]) == 1
    captured = capsys.readouterr()
    assert "worker killed by SIGKILL" in captured.out
    assert "CLIB (features_1h): worker killed by SIGKILL" in captured.err


def test_bad_arguments_are_clear_errors(db, capsys):
    assert main(["features", "--symbols", "NOT A TICKER"]) == 2
    assert "not a valid ticker" in capsys.readouterr().err


def test_a_symbol_without_bars_is_a_failure_not_a_green_run(conn, capsys):
    """A typo or a never-collected symbol computes nothing: it fails, per symbol, with the reason;
    a symbol with bars of one interval only is skipped for the other, not counted ok."""
    insert_bars(conn, "CLIC", "1d", make_bars(40, seed=3, interval="1d"))
    assert main(["features", "--symbols", "NOPE,CLIC"]) == 1
    captured = capsys.readouterr()
    assert "NOPE\tfeatures_1h\tfailed" in captured.out and "NOPE\tfeatures_1d\tfailed" in captured.out
    assert "CLIC\tfeatures_1d\tok\t40" in captured.out and "CLIC\tfeatures_1h\tskipped" in captured.out
    assert "no 1h bars stored" in captured.out
    assert "features: 1 ok, 2 failed, 1 skipped; 40 bars read" in captured.out
    assert "NOPE (features_1h): no bars stored for this symbol: it is not in the store" in captured.err


def test_features_audit_passes_then_fails_naming_symbol_and_feature(conn, capsys):
    insert_bars(conn, "CLID", "1d", make_bars(60, seed=4, interval="1d"))
    assert main(["features", "--symbols", "CLID", "--interval", "1d"]) == 0
    capsys.readouterr()
    assert main(["features", "audit", "--symbols", "clid"]) == 0
    out = capsys.readouterr().out
    assert "CLID\t1d\tok\t60" in out and "feature audit passed: 1 symbol(s)" in out
    with conn.cursor() as cur:
        cur.execute("UPDATE features SET ema_12 = ema_12 * (1 + 1e-6) WHERE symbol = 'CLID' AND ts = "
                    "(SELECT max(ts) FROM features WHERE symbol = 'CLID')")  # fmt: skip
    conn.commit()
    assert main(["features", "audit", "--sample", "5"]) == 1
    captured = capsys.readouterr()
    assert "feature audit FAILED: 1 row(s) differ" in captured.out
    assert "CLID (audit_1d): 1 row(s) differ from the recompute in ema_12" in captured.err


def test_features_audit_refuses_an_empty_sample(db, capsys):
    assert main(["features", "audit", "--sample", "0"]) == 2
    err = capsys.readouterr().err
    assert "--sample = 0: expected at least 1 symbol" in err and "Traceback" not in err
