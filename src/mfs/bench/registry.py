"""The benchmark's feature-registry phase: one feature added or changed, the store brought up to
date by filling only its column, side by side with bringing it up to date by a full recompute of
every feature (what a definition change meant before the registry), alternated.

Each round defines the extra feature anew (RSI with another period: the first round adds it, the
next ones change it), times the next run (``mfs features``: the column filled over every stored
symbol's history), defines it anew again and times ``mfs features --full`` over every symbol,
which computes every feature and rewrites every row (the changed column differs in each).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mfs.features import compute, registry
from mfs.features.definitions import definitions_path

EXTRA = "bench_rsi"


def _define(path: Path, base: list[dict], period: int | None) -> None:
    extra = [] if period is None else [{"name": EXTRA, "talib": "RSI", "params": {"timeperiod": period}}]
    path.write_text(yaml.safe_dump({"features": [*base, *extra]}, sort_keys=False))


def add_feature_vs_full(symbols: list[str], rounds: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Seconds until the store is current after one feature was added (then changed): its column
    filled, vs every feature recomputed."""
    progress(f"one feature added to {len(symbols)} symbols' history vs a full recompute, alternating ×{rounds}")
    previous = os.environ.get("MFS_FEATURES_FILE")
    base = yaml.safe_load(definitions_path().read_text())["features"]  # the store's definitions
    add, full, rows = [], [], 0
    with tempfile.TemporaryDirectory(prefix="mfs-bench-") as folder:
        path = Path(folder) / "features.yaml"
        os.environ["MFS_FEATURES_FILE"] = str(path)
        try:
            for i in range(rounds):
                _define(path, base, 7 + 2 * i)
                began = time.perf_counter()
                report = compute(symbols[:1], "1h")  # the fill covers every stored symbol
                add.append(time.perf_counter() - began)
                rows = sum(r.written for r in report.results if r.stage.startswith("fill_"))
                _define(path, base, 8 + 2 * i)
                began = time.perf_counter()
                compute(symbols, "1h", full=True)  # every symbol recomputed: nothing left to fill
                full.append(time.perf_counter() - began)
            _define(path, base, None)
            compute(symbols[:1], "1h")  # retires the extra feature
            registry.prune()  # and drops its column: the later phases see the built-in store
        finally:
            if previous is None:
                os.environ.pop("MFS_FEATURES_FILE", None)
            else:
                os.environ["MFS_FEATURES_FILE"] = previous
    out = {
        "add_feature_s": round(statistics.median(add), 2),
        "add_feature_rows": rows,
        "full_recompute_s": round(statistics.median(full), 2),
    }
    out["add_feature_vs_full"] = round(out["add_feature_s"] / out["full_recompute_s"], 3)
    return out
