"""Configuration: YAML + MFS_* overrides, validated with messages naming key and value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfs.config import RUNTIME_ENV, SECRET_ENV, load_config
from mfs.errors import ConfigError, SymbolError
from mfs.market import normalize_symbols


def test_shipped_config_loads() -> None:
    cfg = load_config(environ={})
    assert cfg.symbols and all(s == s.upper() for s in cfg.symbols)
    assert cfg.features.lookback_bars >= 400


def test_env_overrides_nested_keys_and_symbols() -> None:
    cfg = load_config(environ={"MFS_FEATURES__TIMEOUT_S": "7.5", "MFS_SYMBOLS": "aapl, msft,BRK-B"})
    assert cfg.features.timeout_s == 7.5
    assert cfg.symbols == ["AAPL", "MSFT", "BRK-B"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MFS_SYMBOLS": "AAPL; DROP TABLE x"}, "symbols[0] = 'AAPL; DROP TABLE x'"),
        ({"MFS_FEATURES__TIMEOUT_S": "-5"}, "features.timeout_s = -5"),
        ({"MFS_FEATURES__TIMEOUTS": "5"}, "features.timeouts: unknown configuration key"),
        ({"MFS_INGEST__BATCH_SIZE": "many"}, "ingest.batch_size = 'many'"),
        ({"MFS_NOPE": "1"}, "nope: unknown configuration key (from environment variable MFS_NOPE)"),
    ],
)
def test_bad_values_name_key_and_value(env: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ=env)
    assert message in str(err.value)


def test_unknown_variable_is_named_in_the_one_message() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={"MFS_NOPE__DEEP": "1", "MFS_FEATURES__TIMEOUT_S": "-1"})
    text = str(err.value)
    assert "nope: unknown configuration key (from environment variable MFS_NOPE__DEEP)" in text
    assert "features.timeout_s = -1" in text and text.count("invalid configuration") == 1


def test_secret_and_runtime_variables_are_not_overrides() -> None:
    assert load_config(environ=dict.fromkeys([*SECRET_ENV, *RUNTIME_ENV], "x")) == load_config(environ={})


@pytest.mark.parametrize("raw", ["null", "~"])
def test_env_null_clears_retention(raw: str) -> None:
    assert load_config(environ={"MFS_AGGREGATES__RETENTION_DAYS": raw}).aggregates.retention_days is None


def test_env_overrides_one_key_of_a_mapping() -> None:
    cfg = load_config(environ={"MFS_RUNS__EXPECTED_RUNTIME_S__COLLECT": "5", "MFS_INTERVALS": "[1d]"})
    assert cfg.runs.expected_runtime_s == {"collect": 5.0, "features": 300.0, "full_backfill": 3600.0}
    assert cfg.intervals == ["1d"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # YAML true is a bool, and the sections stay strict: no lax coercion to 1
        ({"MFS_INGEST__MAX_ATTEMPTS": "true"}, "ingest.max_attempts = True: Input should be a valid integer"),
        (
            {"MFS_INTERVALS": "[1h"},
            "intervals = '[1h': Input should be a valid list (from environment variable MFS_INTERVALS)",
        ),
        ({"MFS_SYMBOLS": "A B"}, "symbols[0] = 'A B': not a valid ticker"),
        ({"MFS_SYMBOLS__X": "1"}, "symbols = {'x': '1'}"),
    ],
)
def test_env_values_are_strict_yaml_and_name_their_variable(env: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ=env)
    assert message in str(err.value) and f"(from environment variable {next(iter(env))})" in str(err.value)


def test_a_file_still_setting_max_jump_is_told_what_replaced_it_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "mfs.yaml"
    path.write_text("symbols: [AAPL]\ningest:\n  max_jump: 0.5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    text = str(err.value)
    assert "ingest.max_jump is no longer a setting: a large move is stored and recorded as an anomaly" in text
    assert "quality:" in text and str(path) in text and "\n" not in text


def test_bad_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "mfs.yaml"
    path.write_text("symbols: [AAPL]\nfeatures:\n  timeout_s: -1\n  colour: blue\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    text = str(err.value)
    assert "features.timeout_s = -1" in text and "features.colour: unknown configuration key" in text
    assert str(path) in text


def test_symbol_rules() -> None:
    assert normalize_symbols(["^gspc", "BRK-B", "EURUSD=X", "BRK-B"]) == ["^GSPC", "BRK-B", "EURUSD=X"]
    for bad in ["AAPL MSFT", "A'B", "X;", "", "TOOLONGSYMBOLNAME1"]:
        with pytest.raises(SymbolError):
            normalize_symbols([bad] if bad else [])


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MFS_SYMBOLS": "AAPL; DROP TABLE x"}, "'AAPL; DROP TABLE x'"),
        ({"MFS_FEATURES__TIMEOUT_S": "-3"}, "features.timeout_s = -3"),
        ({"MFS_INGEST__FOO": "1"}, "ingest.foo: unknown configuration key"),
    ],
)
def test_cli_exits_non_zero_on_bad_config(env: dict, needle: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mfs.cli.main", "db", "url"], env=dict(os.environ, **env), capture_output=True, text=True
    )
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
