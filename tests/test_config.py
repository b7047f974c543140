"""Configuration: YAML + MFS_* overrides, validated with messages naming key and value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfs.config import load_config
from mfs.errors import ConfigError
from mfs.symbols import normalize_symbols


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
        with pytest.raises(ConfigError):
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
    result = subprocess.run([sys.executable, "-m", "mfs.cli.main", "db", "url"], env=dict(os.environ, **env),
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
