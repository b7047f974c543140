"""features_1d follows the feature registry on both editions: a feature added to the definitions
appears in the daily rollup with its values, and what is materialized is only each day's last bar
(a database of the test's own: the test adds a column)."""

from __future__ import annotations

import yaml

from mfs import aggregates
from mfs.features import compute
from mfs.features.definitions import definitions_path
from tests.aggregates.aggregate_helpers import columns_of, features_reference, make_bars, query, write_bars


def test_features_1d_gains_an_added_feature_without_rematerializing(own_db, edition, tmp_path, config_env):
    path = tmp_path / "features.yaml"
    built_in = yaml.safe_load(definitions_path().read_text())["features"]
    path.write_text(yaml.safe_dump({"features": built_in}, sort_keys=False))
    config_env(MFS_FEATURES_FILE=str(path))
    for seed, symbol in enumerate(("AAPL", "MSFT")):
        write_bars(own_db, make_bars(symbol, "2024-01-02", "2024-03-28", seed=seed))
    compute(["AAPL", "MSFT"], "1h")
    aggregates.refresh()
    days = query(own_db, "SELECT count(*) FROM features_1d")[0][0]
    assert days > 100

    extra = {"name": "sma_3_of_rsi", "talib": "SMA", "input": "rsi_14", "params": {"timeperiod": 3}}
    path.write_text(yaml.safe_dump({"features": [*built_in, extra]}, sort_keys=False))
    assert compute(["AAPL"], "1h").extra["registry"]["filled"] == ["sma_3_of_rsi"]
    # Before any refresh: the daily rows already carry the new column (they join the bar's row).
    assert columns_of(own_db, "features_1d")[-1] == "sma_3_of_rsi"
    ((rows, filled),) = query(own_db, "SELECT count(*), count(sma_3_of_rsi) FROM features_1d")
    assert rows == days and filled == days - 4  # each symbol's first two days are in its warm-up
    aggregates.refresh()
    got = query(own_db, "SELECT * FROM features_1d ORDER BY symbol, day")
    assert got == query(own_db, features_reference(own_db))
    materialized = "features_1d_rollup" if edition == "apache" else "features_1d_last"
    assert columns_of(own_db, materialized) == ["symbol", "day", "last_ts"]
