"""Technical indicators per symbol and bar: spec (what), engine (maths), batch (one batch of
symbols' database work), worker (process isolation), run (the orchestrated run). Entry point:
``compute``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfs.features.spec import FEATURE_VERSION, FEATURES

if TYPE_CHECKING:
    from mfs.runs import RunReport

__all__ = ["FEATURES", "FEATURE_VERSION", "compute"]


def compute(
    symbols: list[str] | None = None,
    interval: str | None = None,
    *,
    full: bool = False,
    run_id: str | None = None,
    raise_on_failure: bool = True,
    faults: dict[str, str] | None = None,
) -> RunReport:
    """See ``mfs.features.run.compute`` (imported lazily: the spec alone needs no pebble/TA-Lib)."""
    from mfs.features.run import compute as _compute

    return _compute(symbols, interval, full=full, run_id=run_id, raise_on_failure=raise_on_failure, faults=faults)
