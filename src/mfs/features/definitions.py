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

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import talib
import talib.abstract
import yaml

from mfs.errors import ConfigError, first_line
from mfs.features import probes, state
from mfs.features.expressions import BAR_INPUTS, parse
from mfs.features.model import BUILTIN, CALENDAR, Definition, FeatureSet
from mfs.paths import features_path

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
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_KEYS = {"name", "talib", "expr", "params", "output", "input", "description"}


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
    own_inputs = list(inputs)
    source = entry.get("input")
    unknown = [n for n in inputs if n not in BAR_INPUTS]
    if unknown and not (source is not None and len(inputs) == 1):
        raise _fail(
            name, "talib", function, f"reads {unknown[0]!r}, which is not a bar column ({', '.join(BAR_INPUTS)})"
        )
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
    upstream = known[source] if isinstance(source, str) and source in known else None
    # A function fed another feature is probed on the close: its own behaviour, plus its input's memory.
    found = probes.behaviour(
        function, [n if n in BAR_INPUTS else "close" for n in inputs], info.parameters.values(), index, lookback
    )
    found = _checked(name, function, source, upstream, found)
    shown: dict[str, Any] = dict(info.parameters)
    if len(outputs) > 1:
        shown["output"] = outputs[index]
    if upstream is not None or inputs != own_inputs:
        shown["input"] = inputs[0]
    return {
        "function": function,
        "inputs": tuple(inputs),
        "args": tuple(info.parameters.values()),
        "output": index,
        "warmup": lookback + (upstream.warmup if upstream else 0),
        "lookback": lookback,
        "from_integer": "integer" in (info.info.get("output_flags") or {}) or bool(upstream and upstream.from_integer),
        "anchoring": found.kind,
        "memory": found.memory + (upstream.memory if upstream else 0),
        "normalized": {"talib": function, "params": dict(info.parameters), "inputs": inputs, "output": outputs[index]},
        "depends_on": frozenset({source} & set(known)) if source else frozenset(),
        "shown_params": shown,
    }


def _checked(
    name: str, function: str, source: object, upstream: Definition | None, found: probes.Behaviour | None
) -> probes.Behaviour:
    """``found``, unless an incremental run could not reproduce the values (mfs.features.probes)."""
    if found is None:
        raise _fail(
            name,
            "talib",
            function,
            "depends on the whole history from the first bar in a way a stored value cannot continue",
        )
    if upstream is not None and upstream.from_integer and not found.finite:
        raise _fail(
            name,
            "input",
            source,
            f"derives from an integer series (a pattern: 0, ±100, or a position); {function} smooths without "
            "end and would not forget where a computation started: feed it a price-like feature",
        )
    if found.kind == "index" and upstream is not None:
        raise _fail(
            name,
            "input",
            source,
            f"is a computed feature: {function} returns a position, which a rounding "
            "difference in its input can move; it reads bar columns only",
        )
    return found


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
        "memory": expression.warmup({n: d.memory for n, d in known.items()}),
        "from_integer": any(known[n].from_integer for n in expression.feature_names & set(known)),
        "normalized": {"expr": expression.normalized},
        "depends_on": frozenset(expression.feature_names & set(known)),
        "shown_params": {"expr": expression.text},
    }


def _measured_through_inputs(d: Definition, known: Mapping[str, Definition]) -> Definition:
    """A TA-Lib function fed another feature: its look-back measured through the whole chain (a
    function probed on the close may behave otherwise on a computed series)."""
    needed, todo = set(), list(d.depends_on)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(known[name].depends_on)
    memory = probes.chain_memory([*(k for n, k in known.items() if n in needed), d], d.name)
    if memory is None:
        raise _fail(
            d.name,
            "input",
            d.inputs[0],
            f"as input of {d.function} gives values that depend on where a computation starts beyond any look-back",
        )
    # Twice the measured look-back: the probe's computed input is one series, a store's differ
    # more than its prices do (KAMA of a volume average needed 1.3 times the measured 500).
    return dataclasses.replace(d, memory=max(2 * memory, d.memory))


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
        definition = Definition(name=name, description=description, version=version, **parts)
        if definition.function is not None and definition.depends_on:
            definition = _measured_through_inputs(definition, known)
        known[name] = definition
    return list(known.values())


def definitions_path() -> Path:
    return features_path()


def load(path: Path | None = None) -> FeatureSet:
    """The feature set of ``path`` (default ``config/features.yaml`` or ``MFS_FEATURES_FILE``)."""
    path = path or definitions_path()
    return from_text(read_source(path), str(path))


def read_source(path: Path | None = None) -> str:
    """The text of the definitions file (one line naming it when it cannot be read)."""
    path = path or definitions_path()
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the feature definitions: {exc.strerror}") from None


@lru_cache(maxsize=8)
def from_text(text: str, source: str = "config/features.yaml") -> FeatureSet:
    """The feature set of the YAML ``text`` (cached: a worker resolves its run's text once)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {first_line(exc)}") from None
    if not isinstance(document, Mapping) or set(document) != {"features"}:
        raise ConfigError(f"{source}: expected one key, `features`, holding the list of definitions")
    return FeatureSet(tuple(resolve(document["features"], source=source)), text)


def markdown_table(features: FeatureSet) -> str:
    """The indicator table of docs/features.md (tests/features/test_docs.py keeps the document equal
    to it for the shipped file; regenerate with
    ``python -c "from mfs.features.definitions import load, markdown_table; print(markdown_table(load()))"``)."""
    carried = {d.name for d in state.carried(features)}
    lines = [
        "| column | computed by | parameters | definition | warm-up bars (NULL) | next hour from |",
        "|---|---|---|---|---|---|",
    ]
    for d in features.columns:
        fn = f"TA-Lib `{d.computed_by}`" if d.computed_by not in ("expr", "calendar") else d.computed_by
        params = ", ".join(f"{k}={v}" for k, v in d.shown_params.items() if k != "expr") or "—"
        if "expr" in d.shown_params:
            params = f"`{d.shown_params['expr']}`" + (f"; {params}" if params != "—" else "")
        description = d.description.replace("|", "\\|")
        source = "stored state" if d.name in carried else "bar" if d in CALENDAR else "look-back"
        lines.append(
            f"| `{d.name}` | {fn} | {params.replace('|', chr(92) + '|')} | {description} | {d.warmup} | {source} |"
        )
    return "\n".join(lines)
