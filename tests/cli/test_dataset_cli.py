"""`mfs dataset`: entities in (.csv or .parquet), Parquet out, one summary line; symbols without
rows reported on stderr; every bad input one line with exit code 2 and nothing written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mfs.cli.main import main
from mfs.dataset import bars_asof, features_asof
from tests.dataset.oracle import assert_same
from tests.dataset.store import build_store

SYMBOLS = ["AAPL", "MSFT"]
ATS = ["2026-11-24T15:06:00Z", "2026-11-24T16:06:00Z", "2026-11-24T11:30:00-05:00", "2026-11-20T20:00:00Z"]


@pytest.fixture(scope="module")
def store(db_url: str, _yfinance_cache_dir):
    return build_store(db_url, schedule=[("2026-11-24", [10, 11])], split_day=None, symbols=SYMBOLS, first_days=10)


def _entities(symbols=(*SYMBOLS, "NOPE")) -> pd.DataFrame:
    rows = [(s, t) for s in symbols for t in ATS]
    return pd.DataFrame({"symbol": [r[0] for r in rows], "at": [r[1] for r in rows]})


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "entities.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_csv_in_parquet_out_equals_features_asof(store, tmp_path, capsys) -> None:
    src = _csv(tmp_path, _entities())
    out = tmp_path / "train.parquet"
    assert main(["dataset", "--entities", str(src), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dataset: 12 entity rows, ")
    assert "1 symbol without features rows" in lines[0] and str(out) in lines[0]
    assert captured.err.strip() == "NOPE: no feature rows in the store (interval 1h)"
    got = pd.read_parquet(out)
    entities = _entities().assign(at=lambda f: pd.to_datetime(f["at"], utc=True))
    want = features_asof(entities)
    assert got["symbol"].tolist() == entities["symbol"].tolist()
    assert (got["at"] == entities["at"]).all()
    assert_same(got, want)
    # AAPL and MSFT on 24 November; nothing on the 20th (the store knew nothing yet), nor for NOPE.
    assert got["ts"].notna().tolist() == [True, True, True, False] * 2 + [False] * 4
    assert {p.name for p in tmp_path.iterdir()} == {"entities.csv", "train.parquet"}  # no temp file left


def test_parquet_in_with_options(store, tmp_path, capsys) -> None:
    entities = _entities(SYMBOLS).assign(at=lambda f: pd.to_datetime(f["at"], utc=True), label=range(8))
    src = tmp_path / "entities.parquet"
    entities.to_parquet(src)
    out = tmp_path / "served.parquet"
    argv = ["dataset", "--entities", str(src), "--out", str(out), "--mode", "served", "--tolerance", "90min"]
    assert main([*argv, "--columns", "rsi_14,sma_5", "--json"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert '"matched": ' in summary and '"missing_symbols": []' in summary
    got = pd.read_parquet(out)
    assert list(got.columns) == [
        "symbol",
        "at",
        "label",
        "ts",
        "closes_at",
        "known_from",
        "known_to",
        "complete",
        "rsi_14",
        "sma_5",
    ]
    assert_same(got, features_asof(entities, mode="served", tolerance="90min"), columns=["rsi_14", "sma_5"])
    out2 = tmp_path / "now.parquet"
    assert main(["dataset", "--entities", str(src), "--out", str(out2), "--known-at", "now", "--bars"]) == 0
    assert "known at " in capsys.readouterr().out
    bars = pd.read_parquet(out2)
    assert bars["close"].notna().all()  # known now, the 20th has its bars too
    assert_same(bars, bars_asof(entities, known_at="now"), columns=["open", "high", "low", "close", "volume"])


def test_no_entity_matching_anything_fails_and_writes_nothing(store, tmp_path, capsys) -> None:
    src = _csv(tmp_path, _entities(["NOPE", "ZZZZ"]))
    out = tmp_path / "none.parquet"
    assert main(["dataset", "--entities", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[:2] == [
        "NOPE: no feature rows in the store (interval 1h)",
        "ZZZZ: no feature rows in the store (interval 1h)",
    ]
    assert len(err) == 3 and err[2].startswith("mfs: error: not one of 8 entity rows has an answer")
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["entities.csv"]


def test_an_empty_answer_before_the_store_knew_anything_says_to_ask_known_at_now(store, tmp_path, capsys) -> None:
    # bars of the 19th and 20th, which the store learnt of only when it was built, after them
    # and a ticker the store has never heard of: it is named, and is not the whole story
    early = pd.DataFrame(
        {"symbol": [*SYMBOLS, "ZZZZ"], "at": ["2026-11-19T20:00:00Z", "2026-11-20T20:00:00Z", "2026-11-20T20:00:00Z"]}
    )
    out = tmp_path / "early.parquet"
    assert main(["dataset", "--entities", str(_csv(tmp_path, early)), "--out", str(out)]) == 1
    warning, err = capsys.readouterr().err.strip().splitlines()  # the unknown ticker's warning, then the error
    assert warning == "ZZZZ: no feature rows in the store (interval 1h)"
    assert err.startswith("mfs: error: not one of 3 entity rows has an answer")
    assert "no features rows of 1h at all for ZZZZ" in err
    assert "(the latest 2026-11-20T20:00:00+00:00), but the store first knew these symbols' features at 2026-11-" in err
    assert "pass --known-at now" in err
    assert not out.exists()
    assert main(["dataset", "--entities", str(_csv(tmp_path, early)), "--out", str(out), "--known-at", "now"]) == 0
    before = pd.DataFrame({"symbol": SYMBOLS, "at": ["2026-10-01T15:00:00Z", "2026-10-01T16:00:00Z"]})
    assert main(["dataset", "--entities", str(_csv(tmp_path, before)), "--out", str(out)]) == 1
    assert "first bar closed at" in capsys.readouterr().err  # nothing to know, now or then


BAD_CSV = {
    "naive.csv": ("symbol,at\nAAPL,2026-11-24T15:06:00\n", "column 'at' holds timestamps without a time zone"),
    "mixed.csv": (
        "symbol,at\nAAPL,2026-11-24T15:06:00Z\nMSFT,2026-11-24 10:00\n",
        "row 1: '2026-11-24 10:00' has no time zone",
    ),
    "noat.csv": ("symbol,when\nAAPL,2026-11-24T15:06:00Z\n", "entities have no column 'at'"),
    "nosymbol.csv": ("ticker,at\nAAPL,2026-11-24T15:06:00Z\n", "entities have no column 'symbol'"),
    "garbage.csv": ("symbol,at\nAAPL,tomorrow 3pm\n", "'tomorrow 3pm' has no time zone"),
}


@pytest.mark.parametrize("name", sorted(BAD_CSV))
def test_bad_entity_files_are_one_line(store, tmp_path, capsys, name) -> None:
    text, message = BAD_CSV[name]
    src = tmp_path / name
    src.write_text(text)
    out = tmp_path / "out.parquet"
    assert main(["dataset", "--entities", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mfs: error: ") and message in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tolerance", "two hours"], "tolerance 'two hours' is not a duration"),
        (["--tolerance=-2h"], "tolerance must not be negative"),
        (["--known-at", "2026-11-24 16:00"], "has no time zone"),
        (["--known-at", "later"], "known_at 'later' is not a timestamp"),
        (["--columns", "rsi_14,bogus"], "unknown features column(s) 'bogus'"),
        (["--mode", "live"], "mode must be one of known, served"),
        (["--interval", "5m"], "interval must be one of 1h, 1d"),
        (["--out", "x.csv"], "the output file must end in .parquet"),
        (["--out", "/nonexistent/dir/x.parquet"], "the output folder does not exist"),
        (["--entities", "e.json"], "entities file must be .csv or .parquet"),
        (["--entities", "missing.csv"], "entities file not found"),
    ],
)
def test_bad_options_are_one_line(store, tmp_path, capsys, monkeypatch, extra, message) -> None:
    monkeypatch.chdir(tmp_path)
    _csv(tmp_path, _entities(SYMBOLS))
    (tmp_path / "e.json").write_text("{}")
    argv = ["dataset", "--entities", "entities.csv", "--out", "out.parquet", *extra]  # repeated: the last wins
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mfs: error: ") and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.json", "entities.csv"]
