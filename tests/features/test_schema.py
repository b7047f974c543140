"""The spec is the single source of truth: the migration, the live table and the README follow it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.features.feature_helpers import BUILTIN_SET, FEATURE_NAMES, FEATURES

ROOT = Path(__file__).resolve().parents[2]
SPEC_ORDER = [
    "return_1",
    "return_5",
    "return_20",
    "log_return_1",
    "sma_5",
    "sma_10",
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_12",
    "ema_26",
    "macd",
    "macd_signal",
    "macd_hist",
    "rsi_14",
    "bb_upper",
    "bb_lower",
    "bb_width",
    "bb_pctb",
    "atr_14",
    "natr_14",
    "adx_14",
    "plus_di_14",
    "minus_di_14",
    "stoch_k",
    "stoch_d",
    "willr_14",
    "cci_20",
    "obv",
    "mfi_14",
    "vwap_20",
    "roc_10",
    "volatility_20",
    "volume_sma_20",
    "volume_ratio_20",
    "range_pct",
    "hour_et",
    "dow_et",
]


def migration_columns() -> list[tuple[str, str]]:
    text = (ROOT / "sql" / "020_feature_columns.sql").read_text()
    return re.findall(r"ADD COLUMN (\w+)\s+(double precision|smallint)", text)


def test_spec_names_are_the_issue_list_in_order():
    assert FEATURE_NAMES == SPEC_ORDER
    assert len(FEATURES) >= 36
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert BUILTIN_SET.max_warmup == 199  # sma_200


def test_migration_adds_exactly_the_spec_columns_in_order_with_their_types():
    assert migration_columns() == [(f.name, f.sql_type) for f in FEATURES]


def test_live_features_table_has_the_spec_columns(conn):
    with conn.cursor() as cur:
        cur.execute(
            """SELECT column_name, data_type FROM information_schema.columns
               WHERE table_name = 'features' ORDER BY ordinal_position"""
        )
        cols = cur.fetchall()
    fixed = ["symbol", "interval", "ts", "feature_version", "computed_at"]
    assert [c for c, _ in cols[: len(fixed)]] == fixed
    # 021 appends bar_ingested_at (which version of the bar a row was computed from), 050 closes_at
    assert cols[len(fixed) :] == [(f.name, f.sql_type) for f in FEATURES] + [
        ("bar_ingested_at", "timestamp with time zone"),
        ("closes_at", "timestamp with time zone"),
    ]
