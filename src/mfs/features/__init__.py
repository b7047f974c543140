"""Technical indicators per symbol and bar.

Modules, from the leaf up (each imports only those above it in this list):

- ``version``: FEATURE_VERSION, the version of the engine's rules stored with every row.
- ``rolling``, ``expressions``: NaN-aware windows and the safe expression language.
- ``model``: the feature model — ``Definition`` (one column) and ``FeatureSet`` (a run's columns). No I/O.
- ``engine``: the maths, for the definitions it is given (TA-Lib, expressions, calendar columns).
- ``probes``: how a TA-Lib function depends on where a computation starts (runs the engine on probe bars).
- ``definitions``: the resolve step — YAML file or text → checked, probed ``FeatureSet``.
- ``reads``, ``batch``, ``fill``: one batch of symbols' database work (read bars, compute, write rows).
- ``registry``: the store's record of the feature set (versions, added/retired columns, generated DDL).
- ``worker``, ``pool``: process isolation of the maths; ``run``: the orchestrated run (``compute``).

Contract: a feature set is loaded once per run (CLI, flow, worker, ``mfs.dataset``) and passed down;
nothing reads a file or probes TA-Lib when imported. Entry point: ``compute``
(``mfs.features.run.compute``), loaded on first use: a run with nothing to do needs neither TA-Lib
nor pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mfs.features.version import FEATURE_VERSION

if TYPE_CHECKING:
    from mfs.features.run import compute

__all__ = ["FEATURE_VERSION", "compute"]


def __getattr__(name: str) -> Any:
    if name == "compute":
        # deferred: mfs.features.run brings psycopg2 and mfs.runs, ~22 ms (python -X importtime), to every
        # process that imports any mfs.features module (the workers among them)
        from mfs.features.run import compute

        return compute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
