"""Technical indicators per symbol and bar: spec (what), engine (maths), batch (one batch of
symbols' database work), worker (process isolation), run (the orchestrated run). Entry point:
``compute`` (``mfs.features.run.compute``), loaded on first use: the spec alone needs no
pebble or TA-Lib."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mfs.features.spec import FEATURE_VERSION, FEATURES

if TYPE_CHECKING:
    from mfs.features.run import compute

__all__ = ["FEATURES", "FEATURE_VERSION", "compute"]


def __getattr__(name: str) -> Any:
    if name == "compute":
        from mfs.features.run import compute

        return compute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
