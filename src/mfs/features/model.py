"""The feature model: one ``Definition`` per column of the features table, and the ``FeatureSet`` a
run computes. Plain values, no I/O and no TA-Lib: the resolve step (``mfs.features.definitions``)
builds them from a YAML file or text, the engine computes them, the registry records them.

FEATURE_VERSION (``mfs.features.version``) is the version of the engine's own rules; a
definition's ``version`` is the hash of its normalised form and of the versions it reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mfs.market import NY

if TYPE_CHECKING:
    from mfs.features.expressions import Expression

# The built-in calendar columns, computed by the engine from the bar's label: no definition names them.
BUILTIN = ("hour_et", "dow_et")


@dataclass(frozen=True)
class Definition:
    """One feature column, resolved: a TA-Lib function, an expression, or a built-in calendar column."""

    name: str
    description: str
    warmup: int  # leading bars of a symbol's history that are NULL (never 0, never filled)
    normalized: dict[str, Any]  # what the version is computed from (JSON-serialisable)
    version: str
    function: str | None = None  # TA-Lib function
    inputs: tuple[str, ...] = ()  # bar columns or features fed to it, in its order
    args: tuple[Any, ...] = ()  # every parameter in TA-Lib's order (spec value or default)
    output: int = 0
    lookback: int = 0  # the TA-Lib function's own look-back (its warm-up on bar columns)
    from_integer: bool = False  # computed from a TA-Lib integer output (patterns: 0, ±100; positions)
    # How a value depends on where a computation starts (mfs.features.probes): "none", "add" or
    # "scale" (running sums and products: re-based on the stored value of a window's first bar),
    # "index" (stored as bars since the position TA-Lib returns).
    anchoring: str = "none"
    memory: int = 0  # bars of look-back an incremental run needs to reproduce the full history
    expression: Expression | None = None
    depends_on: frozenset[str] = field(default_factory=frozenset)
    pgtype: str = "float8"  # a key of mfs.storage.copy_binary.PG_TYPES
    # What the docs show as its parameters: TA-Lib's, the output of a multi-output function, the
    # input when it is not the function's own; the text of an expression; the zone of a calendar column.
    shown_params: dict[str, Any] = field(default_factory=dict)

    @property
    def cumulative(self) -> bool:
        """A running sum or product from the first bar: an incremental run continues its stored value."""
        return self.anchoring in ("add", "scale")

    @property
    def computed_by(self) -> str:
        """The TA-Lib function's name, ``expr`` or ``calendar``."""
        if self.expression is not None:
            return "expr"
        return self.function or "calendar"

    @property
    def sql_type(self) -> str:
        return "smallint" if self.pgtype == "int2" else "double precision"


def _calendar(name: str, description: str) -> Definition:
    normalized = {"builtin": "calendar", "tz": NY}
    version = hashlib.sha256(json.dumps(normalized, sort_keys=True).encode()).hexdigest()[:12]
    return Definition(name, description, 0, normalized, version, pgtype="int2", shown_params={"tz": NY})


CALENDAR = (
    _calendar("hour_et", "hour of the bar's start in New York (0 for daily bars, labelled at NY midnight)"),
    _calendar("dow_et", "day of week of the bar in New York, 0 = Monday … 6 = Sunday"),
)


@dataclass(frozen=True)
class FeatureSet:
    """The columns one run computes: the definitions of a file, in its order, then the built-in
    calendar columns. ``source`` is the file's text, which is what a worker is handed."""

    definitions: tuple[Definition, ...]
    source: str = ""

    @property
    def columns(self) -> tuple[Definition, ...]:
        return self.definitions + CALENDAR

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.columns]

    def by_name(self) -> dict[str, Definition]:
        return {d.name: d for d in self.columns}

    @property
    def max_warmup(self) -> int:
        return max(d.warmup for d in self.columns)

    @property
    def memory(self) -> int:
        """Bars of look-back an incremental run needs so that every feature equals a full
        recompute (measured per definition, mfs.features.probes)."""
        return max((d.memory for d in self.definitions), default=0)

    @property
    def cumulative(self) -> tuple[str, ...]:
        """Running sums from the first bar (OBV, AD): an incremental run continues their stored value."""
        return tuple(d.name for d in self.definitions if d.cumulative)
