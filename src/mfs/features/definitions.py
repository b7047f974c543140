"""Feature definitions as data: ``config/features.yaml`` parsed, checked and normalised.

A feature is a name plus either a TA-Lib function — resolved through TA-Lib's abstract interface,
which knows every function's inputs, parameters, outputs and look-back — or an expression in the
safe language of ``mfs.features.expressions``. Nothing here is a table of signatures: a parameter
is valid when TA-Lib's abstract ``Function`` has it, the warm-up is its ``lookback`` (plus the
warm-up of a feature fed in as input), and a function whose output is path-dependent (OBV, AD:
running sums from the first bar) is anchored by the incremental runs.

Every mistake stops the whole file before anything changes, with one line naming the feature,
the key and the value. A definition's ``version`` is a hash of its normalised form and of the
versions of the features it reads, so changing a feature changes the version of everything that
depends on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import talib
import talib.abstract
import yaml

from mfs.errors import ConfigError
from mfs.features.expressions import BAR_INPUTS, Expression, parse
from mfs.paths import project_root

# Columns of the features table that are not features, and the built-in calendar features.
RESERVED_COLUMNS = frozenset(
    {
        "symbol",
        "interval",
        "ts",
        "feature_version",
        "computed_at",
        "bar_ingested_at",
        "closes_at",
        "known_from",
        "known_to",
        "reason",
        "run_id",
        "complete",
        "entity",
        "at",
        "known_at",
        "day",
        "last_ts",
    }
)
BUILTIN = ("hour_et", "dow_et")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_KEYS = {"name", "talib", "expr", "params", "output", "input", "description"}


@dataclass(frozen=True)
class Definition:
    """One feature column, resolved."""

    name: str
    description: str
    warmup: int  # leading bars of a symbol's history that are NULL
    normalized: dict[str, Any]  # what the version is computed from (JSON-serialisable)
    version: str
    function: str | None = None  # TA-Lib function
    inputs: tuple[str, ...] = ()  # bar columns or features fed to it, in its order
    args: tuple[Any, ...] = ()  # every parameter in TA-Lib's order (spec value or default)
    output: int = 0
    cumulative: bool = False  # a running sum from the first bar (OBV, AD): anchored incrementally
    expression: Expression | None = None
    depends_on: frozenset[str] = field(default_factory=frozenset)
    pgtype: str = "float8"


def _fail(name: str, key: str, value: object, why: str) -> ConfigError:
    return ConfigError(f"feature {name}: {key}: {value!r} {why}")


@lru_cache(maxsize=1)
def _talib_functions() -> frozenset[str]:
    return frozenset(talib.get_functions())


def _check_name(name: object, seen: set[str]) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ConfigError(
            f"feature {name!r}: name: not a safe SQL identifier (lower-case letter, then letters, digits, _; ≤ 63)"
        )
    if name in RESERVED_COLUMNS or name in BUILTIN or name in BAR_INPUTS or name == "typical":
        raise _fail(name, "name", name, "clashes with a column or input of the store")
    if name in seen:
        raise _fail(name, "name", name, "is defined twice")
    return name


def _talib_definition(name: str, entry: Mapping[str, Any], known: Mapping[str, Definition]) -> dict[str, Any]:
    function = entry["talib"]
    if not isinstance(function, str) or function.upper() != function or function not in _talib_functions():
        raise _fail(name, "talib", function, "is not a TA-Lib function (talib.get_functions())")
    info = talib.abstract.Function(function)  # type: ignore[attr-defined]  # absent from TA-Lib's .pyi
    params = entry.get("params") or {}
    if not isinstance(params, Mapping):
        raise _fail(name, "params", params, "must be a mapping of parameter: value")
    for key, value in params.items():
        if key not in info.parameters:
            raise _fail(
                name, f"params.{key}", value, f"is not a parameter of {function} ({', '.join(info.parameters)})"
            )
        default = info.parameters[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(default, int) and value != int(value))
        ):
            raise _fail(
                name, f"params.{key}", value, f"must be {'an integer' if isinstance(default, int) else 'a number'}"
            )
    try:
        info.parameters = {k: (int(v) if isinstance(info.parameters[k], int) else float(v)) for k, v in params.items()}
        lookback = int(info.lookback)
        # The abstract interface stores any value; the C function checks ranges (a period of 0, …).
        probe = np.ones(4)
        n_inputs = sum(len(s) if isinstance(s, list) else 1 for s in info.input_names.values())
        info.func_object(*([probe] * n_inputs), *info.parameters.values())
    except Exception as exc:
        raise _fail(name, "params", dict(params), f"refused by TA-Lib: {exc}") from None
    inputs = [n for series in info.input_names.values() for n in (series if isinstance(series, list) else [series])]
    source = entry.get("input")
    if source is not None:
        if len(inputs) != 1:
            raise _fail(
                name, "input", source, f"replaces the single input of a one-input function; {function} takes {inputs}"
            )
        if source not in BAR_INPUTS and source not in known:
            raise _fail(
                name, "input", source, "is not a bar column (open, high, low, close, volume) or an earlier feature"
            )
        inputs = [source]
    outputs = list(info.output_names)
    chosen = entry.get("output", 0 if len(outputs) == 1 else None)
    if chosen is None:
        raise _fail(name, "output", None, f"must name one of {function}'s outputs {outputs}")
    index = outputs.index(chosen) if chosen in outputs else chosen if isinstance(chosen, int) else -1
    if isinstance(index, bool) or not 0 <= index < len(outputs):
        raise _fail(name, "output", chosen, f"is not one of {function}'s outputs {outputs}")
    flags = info.info.get("function_flags") or []
    upstream = known[source].warmup if isinstance(source, str) and source in known else 0
    return {
        "function": function,
        "inputs": tuple(inputs),
        "args": tuple(info.parameters.values()),
        "output": index,
        "warmup": lookback + upstream,
        "cumulative": "Output is path-dependent" in flags and lookback == 0,
        "normalized": {"talib": function, "params": dict(info.parameters), "inputs": inputs, "output": outputs[index]},
        "depends_on": frozenset({source} & set(known)) if source else frozenset(),
    }


def _expression_definition(name: str, entry: Mapping[str, Any], known: Mapping[str, Definition]) -> dict[str, Any]:
    text = entry["expr"]
    if not isinstance(text, str):
        raise _fail(name, "expr", text, "must be a string")
    expression = parse(text, where=f"feature {name}: expr")
    unknown = sorted(expression.feature_names - set(known) - set(BUILTIN))
    if unknown:
        later = f"{unknown[0]} (a feature must be defined before an expression reads it; a cycle cannot be)"
        raise _fail(name, "expr", text, f"reads {later}" if unknown[0] == name else f"reads unknown {later}")
    return {
        "expression": expression,
        "warmup": expression.warmup({n: d.warmup for n, d in known.items()}),
        "normalized": {"expr": expression.normalized},
        "depends_on": frozenset(expression.feature_names & set(known)),
    }


def _version(normalized: Mapping[str, Any], depends_on: frozenset[str], known: Mapping[str, Definition]) -> str:
    payload = {"definition": normalized, "inputs": {n: known[n].version for n in sorted(depends_on)}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def resolve(entries: object, *, source: str = "config/features.yaml") -> list[Definition]:
    """The definitions of ``entries`` (the parsed ``features:`` list), checked and in order."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: `features` must be a non-empty list of feature definitions")
    known: dict[str, Definition] = {}
    for position, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: entry {position + 1} is not a mapping (name: …, talib: … or expr: …)")
        name = _check_name(entry.get("name"), set(known))
        extra = sorted(set(entry) - _KEYS)
        if extra:
            raise _fail(name, extra[0], entry[extra[0]], f"is not a key of a definition ({', '.join(sorted(_KEYS))})")
        if ("talib" in entry) == ("expr" in entry):
            raise _fail(name, "talib/expr", None, "exactly one of `talib` and `expr` is required")
        if "expr" in entry and ({"params", "output", "input"} & set(entry)):
            key = sorted({"params", "output", "input"} & set(entry))[0]
            raise _fail(name, key, entry[key], "belongs to a TA-Lib definition, not an expression")
        parts = (
            _talib_definition(name, entry, known) if "talib" in entry else _expression_definition(name, entry, known)
        )
        description = entry.get("description") or ""
        if not isinstance(description, str):
            raise _fail(name, "description", description, "must be a string")
        version = _version(parts["normalized"], parts["depends_on"], known)
        known[name] = Definition(name=name, description=description, version=version, **parts)
    return list(known.values())


def definitions_path() -> Path:
    return project_root() / "config" / "features.yaml"


@lru_cache(maxsize=1)
def current() -> tuple[Definition, ...]:
    """The definitions of ``config/features.yaml``, read once per process."""
    return tuple(load())


def load(path: Path | None = None) -> list[Definition]:
    """The definitions in ``path`` (default ``config/features.yaml``)."""
    path = path or definitions_path()
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the feature definitions: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, Mapping) or set(document) != {"features"}:
        raise ConfigError(f"{path}: expected one key, `features`, holding the list of definitions")
    return resolve(document["features"], source=str(path))
