"""Technical indicators per symbol and bar: spec (what), engine (maths), batch (one batch of
symbols' database work), worker (process isolation), pool (the workers of a run), run (the
orchestrated run). Entry point: ``compute`` (``mfs.features.run.compute``). Everything is loaded
on first use: a run with nothing to do needs neither TA-Lib nor pandas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mfs.features.run import compute
    from mfs.features.spec import FEATURE_VERSION, FEATURES

__all__ = ["FEATURES", "FEATURE_VERSION", "compute"]


def __getattr__(name: str) -> Any:
    if name == "compute":
        from mfs.features.run import compute

        return compute
    if name == "FEATURE_VERSION":
        from mfs.features.version import FEATURE_VERSION

        return FEATURE_VERSION
    if name == "FEATURES":
        from mfs.features.spec import FEATURES

        return FEATURES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
