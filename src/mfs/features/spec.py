"""The feature spec: the columns of the features table, from the definitions in
``config/features.yaml`` (``mfs.features.definitions``) plus the built-in calendar columns. The
engine, the schema check and docs/features.md read it.

Each entry names the column, what computes it (a TA-Lib function, an expression of the safe
language, or the calendar), its parameters, a one-line definition, and its warm-up: the number of
leading bars of a symbol's history for which the value is undefined and stored as NULL (never 0,
never filled), derived from TA-Lib's look-back or the expression. Degenerate input (a zero
denominator: constant prices, zero volume) also gives NULL, never inf.

FEATURE_VERSION is the version of the engine's own rules (the NULL rules, anchoring): every stored
row carries the version it was computed with, an incremental run recomputes a symbol whose rows
are of another version, and ``mfs features --full`` recomputes everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import talib.abstract

from mfs.features import definitions
from mfs.features.definitions import Definition
from mfs.features.version import FEATURE_VERSION  # noqa: F401  # re-exported
from mfs.market import NY


@dataclass(frozen=True)
class Feature:
    name: str
    function: str  # TA-Lib function (talib.<NAME>), "expr" or "calendar"
    params: dict[str, Any] = field(default_factory=dict)
    definition: str = ""
    warmup: int = 0  # leading bars that are NULL at the start of a symbol's history
    pgtype: str = "float8"  # a key of mfs.storage.bulk.PG_TYPES

    @property
    def sql_type(self) -> str:
        return "smallint" if self.pgtype == "int2" else "double precision"


def _feature(d: Definition) -> Feature:
    if d.expression is not None:
        return Feature(d.name, "expr", {"expr": d.expression.text}, d.description, d.warmup)
    params: dict[str, Any] = dict(d.normalized["params"])
    if len(talib.abstract.Function(d.function).output_names) > 1:  # type: ignore[attr-defined]
        params["output"] = d.normalized["output"]
    if d.depends_on or d.inputs != _default_inputs(d.function):
        params["input"] = d.inputs[0]
    return Feature(d.name, str(d.function), params, d.description, d.warmup)


def _default_inputs(function: str | None) -> tuple[str, ...]:
    names = talib.abstract.Function(function).input_names.values()  # type: ignore[attr-defined]
    return tuple(n for series in names for n in (series if isinstance(series, list) else [series]))


_CALENDAR = (
    Feature(
        "hour_et",
        "calendar",
        {"tz": NY},
        "hour of the bar's start in New York (0 for daily bars, labelled at NY midnight)",
        0,
        "int2",
    ),
    Feature("dow_et", "calendar", {"tz": NY}, "day of week of the bar in New York, 0 = Monday … 6 = Sunday", 0, "int2"),
)


@dataclass(frozen=True)
class FeatureSet:
    """The columns one run computes: the definitions of a file, in its order, then the built-in
    calendar columns. ``source`` is the file's text, which is what a worker is handed."""

    definitions: tuple[Definition, ...]
    source: str = ""

    @cached_property
    def features(self) -> tuple[Feature, ...]:
        return tuple(_feature(d) for d in self.definitions) + _CALENDAR

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def max_warmup(self) -> int:
        return max(f.warmup for f in self.features)

    @property
    def memory(self) -> int:
        """Bars of look-back an incremental run needs so that every feature equals a full
        recompute (measured per definition, mfs.features.probes)."""
        return max((d.memory for d in self.definitions), default=0)

    @property
    def cumulative(self) -> tuple[str, ...]:
        """Running sums from the first bar (OBV, AD): an incremental run continues their stored value."""
        return tuple(d.name for d in self.definitions if d.cumulative)


@lru_cache(maxsize=8)
def from_text(text: str, source: str = "config/features.yaml") -> FeatureSet:
    return FeatureSet(definitions.from_text(text, source), text)


def load(path: Path | None = None) -> FeatureSet:
    """The feature set of ``path`` (default: ``config/features.yaml`` or ``MFS_FEATURES_FILE``)."""
    path = path or definitions.definitions_path()
    return from_text(definitions.read_source(path), str(path))


# The built-in set (config/features.yaml as shipped, in its order): what the docs describe.
DEFAULT = FeatureSet(definitions.current())
FEATURES: list[Feature] = list(DEFAULT.features)
FEATURE_NAMES: list[str] = DEFAULT.names
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
# The longest warm-up; the configured look-back (features.lookback_bars ≥ 400) is far above it so
# that exponentially smoothed indicators (EMA, Wilder) forget their seed: on random-walk bars 400
# bars of look-back reproduce full-history values to ~4e-12 relative, 450 to ~3e-13, 300 to ~1e-8.
MAX_WARMUP = DEFAULT.max_warmup


def markdown_table() -> str:
    """The indicator table of docs/features.md, generated from FEATURES (tests/features/test_docs.py
    keeps the document equal to it; regenerate with
    ``python -c "from mfs.features.spec import markdown_table; print(markdown_table())"``)."""
    lines = ["| column | computed by | parameters | definition | warm-up bars (NULL) |", "|---|---|---|---|---|"]
    for f in FEATURES:
        fn = f"TA-Lib `{f.function}`" if f.function not in ("expr", "calendar") else f.function
        params = ", ".join(f"{k}={v}" for k, v in f.params.items() if k != "expr") or "—"
        if "expr" in f.params:
            params = f"`{f.params['expr']}`" + (f"; {params}" if params != "—" else "")
        definition = f.definition.replace("|", "\\|")
        lines.append(f"| `{f.name}` | {fn} | {params.replace('|', chr(92) + '|')} | {definition} | {f.warmup} |")
    return "\n".join(lines)
