"""The feature expression language: a small arithmetic over bar arrays, parsed and checked, never eval'd.

A user defines a feature in YAML as text such as ``zscore(close, 60)`` or ``sum(typical * volume, 20) /
sum(volume, 20)``. ``parse`` reads it with ``ast.parse(mode="eval")`` and accepts only this grammar:

* numbers; names: the bar inputs ``open high low close volume``, ``typical`` = (high + low + close) / 3,
  and other features (the caller resolves them: see ``Expression.feature_names``);
* ``+ - * /``, unary ``-``, parentheses (no ``**``);
* ``log(x) abs(x) sqrt(x)``; log of x <= 0 and sqrt of x < 0 are NaN;
* shifts ``x[t-k]`` (k >= 1 bars back; ``x[t]`` is x; ``x[t+k]`` would look ahead and is refused);
* rolling windows of n >= 2 bars: ``mean sum min max`` (TA-Lib SMA, SUM, MIN, MAX), ``std`` (population,
  two-pass per window: ``rolling_std``) and ``zscore(x, n)`` = (x - window mean) / std.

Anything else raises ExpressionError naming the construct, its column and the text. A value that is
not finite (division by zero, log 0) becomes NaN right where it arises: a NaN never turns back into a
number further up (1 / (1 / 0) is NaN, not 0), and nothing infinite is ever returned.

Rolling functions skip the leading NaNs of their input (an inner warm-up) and give NaN for a window
holding a NaN inside the series: see mfs.features.rolling for why TA-Lib needs help there.
"""

from __future__ import annotations

import ast
import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np

from mfs.errors import ConfigError, FeatureError
from mfs.features.rolling import ROLLING, finite, rolling


class ExpressionError(ConfigError):
    """An expression that is not in the language, or refers to a name nobody provides."""


BAR_INPUTS = ("open", "high", "low", "close", "volume")
INPUTS = frozenset((*BAR_INPUTS, "typical"))  # names an expression never needs a feature for
MAX_LENGTH = 2_000  # characters: keeps the recursive checker and evaluator far from Python's recursion limit
MAX_WINDOW = 100_000  # TA-Lib's upper bound for a time period; also bounds shifts

_BINARY: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_REFUSED_BINARY = {
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
}
_REFUSED_UNARY = {ast.UAdd: "+", ast.Not: "not", ast.Invert: "~"}
_REFUSED_NODES = {
    ast.Attribute: "attribute access",
    ast.Compare: "a comparison",
    ast.BoolOp: "a boolean operator",
    ast.IfExp: "a conditional expression",
    ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension",
    ast.List: "a list",
    ast.Tuple: "a tuple",
    ast.Set: "a set",
    ast.Dict: "a dict",
    ast.NamedExpr: "an assignment",
    ast.JoinedStr: "an f-string",
    ast.Starred: "* unpacking",
    ast.Slice: "a slice",
}


_ELEMENTWISE: dict[str, Callable[[np.ndarray], np.ndarray]] = {"log": np.log, "abs": np.abs, "sqrt": np.sqrt}
FUNCTIONS = (*_ELEMENTWISE, *ROLLING)


# The checked tree: what parse() accepts, in a form evaluate/warmup/normalized walk without re-checking.
@dataclass(frozen=True)
class _Num:
    value: float


@dataclass(frozen=True)
class _Ref:
    name: str


@dataclass(frozen=True)
class _Neg:
    arg: _Node


@dataclass(frozen=True)
class _Bin:
    op: str
    left: _Node
    right: _Node


@dataclass(frozen=True)
class _Call:
    fn: str  # a key of _ELEMENTWISE
    arg: _Node


@dataclass(frozen=True)
class _Roll:
    fn: str  # a key of ROLLING
    arg: _Node
    n: int


@dataclass(frozen=True)
class _Shift:
    arg: _Node
    k: int


_Node = _Num | _Ref | _Neg | _Bin | _Call | _Roll | _Shift
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def _precedence(node: _Node) -> int:
    return _PRECEDENCE[node.op] if isinstance(node, _Bin) else 3 if isinstance(node, _Neg) else 4


def _text(node: _Node, context: int = 0) -> str:
    """Canonical text: minimal parentheses, numbers as float literals, nested shifts folded."""
    match node:
        case _Num(value):
            text = repr(value)
        case _Ref(name):
            text = name
        case _Neg(arg):
            text = "-" + _text(arg, 3)
        case _Bin(op, left, right):  # left-associative: a right operand of equal precedence needs parentheses
            text = f"{_text(left, _PRECEDENCE[op])} {op} {_text(right, _PRECEDENCE[op] + 1)}"
        case _Call(fn, arg):
            text = f"{fn}({_text(arg)})"
        case _Roll(fn, arg, n):
            text = f"{fn}({_text(arg)}, {n})"
        case _Shift(arg, k):
            base = _text(arg) if isinstance(arg, _Ref | _Call | _Roll) else f"({_text(arg)})"
            text = f"{base}[t-{k}]"
    return f"({text})" if _precedence(node) < context else text


def _names(node: _Node) -> set[str]:
    match node:
        case _Num():
            return set()
        case _Ref(name):
            return {name}
        case _Bin(_, left, right):
            return _names(left) | _names(right)
        case _Neg(arg) | _Call(_, arg) | _Roll(_, arg, _) | _Shift(arg, _):
            return _names(arg)


class _Checker:
    """Turns a Python expression tree into a _Node, refusing everything outside the grammar."""

    def __init__(self, source: str, prefix: str) -> None:
        self.source, self.prefix = source, prefix

    def fail(self, node: ast.AST, reason: str) -> NoReturn:
        segment = ast.get_source_segment(self.source, node) or ""
        lineno, offset = getattr(node, "lineno", 1), getattr(node, "col_offset", 0)
        line = self.source.splitlines()[lineno - 1]
        column = len(line.encode()[:offset].decode(errors="replace")) + 1  # ast offsets count UTF-8 bytes
        at = f"line {lineno} column {column}" if "\n" in self.source else f"column {column}"
        whole = "" if segment == self.source else f" of {self.source!r}"
        raise ExpressionError(f"{self.prefix}{reason}: {segment!r} at {at}{whole}")

    def build(self, node: ast.expr) -> _Node:
        match node:
            case ast.Constant(value=bool()) | ast.Constant(value=complex()):
                self.fail(node, f"{node.value!r} is not a number this language knows")
            case ast.Constant(value=int() | float() as number):
                return _Num(self.number(node, number))
            case ast.Constant():
                self.fail(node, f"the literal {node.value!r} is not allowed (only numbers)")
            case ast.Name(id=name):
                return _Ref(self.name(node, name))
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                return _Neg(self.build(operand))
            case ast.UnaryOp(op=op):
                self.fail(node, f"unary {_REFUSED_UNARY.get(type(op), type(op).__name__)} is not allowed (only -)")
            case ast.BinOp(op=op, left=left, right=right) if type(op) in _BINARY:
                return _Bin(_BINARY[type(op)], self.build(left), self.build(right))
            case ast.BinOp(op=ast.Pow()):
                self.fail(node, "** is not allowed (write x * x, or sqrt(x) for a square root)")
            case ast.BinOp(op=op):
                self.fail(node, f"operator {_REFUSED_BINARY.get(type(op), type(op).__name__)} is not allowed")
            case ast.Call():
                return self.call(node)
            case ast.Subscript():
                return self.shift(node)
        self.fail(node, f"{_REFUSED_NODES.get(type(node), type(node).__name__)} is not allowed")

    def number(self, node: ast.Constant, number: float) -> float:
        try:
            value = float(number)
        except OverflowError:
            value = float("inf")
        if not np.isfinite(value):
            self.fail(node, "the number is too large")
        return value

    def name(self, node: ast.Name, name: str) -> str:
        if name == "t":
            self.fail(node, "t may only appear in a shift x[t-k]")
        if name in FUNCTIONS:
            self.fail(node, f"{name} is a function: call it, {name}(x{', n' if name in ROLLING else ''})")
        return name

    def call(self, node: ast.Call) -> _Node:
        if not isinstance(node.func, ast.Name):
            self.fail(node.func, f"only the functions {', '.join(FUNCTIONS)} can be called")
        fn = node.func.id
        if fn not in FUNCTIONS:
            hint = " (function names are lower-case)" if fn.lower() in FUNCTIONS else ""
            self.fail(node, f"unknown function {fn}{hint}; the functions are {', '.join(FUNCTIONS)}")
        if node.keywords:
            self.fail(node, f"{fn} takes no keyword arguments")
        arity = 1 if fn in _ELEMENTWISE else 2
        if len(node.args) != arity or any(isinstance(a, ast.Starred) for a in node.args):
            signature = "x" if arity == 1 else "x, n"
            self.fail(node, f"{fn} takes {arity} argument{'s' * (arity > 1)} ({signature}), got {len(node.args)}")
        if arity == 1:
            return _Call(fn, self.build(node.args[0]))
        window = node.args[1]
        if not (isinstance(window, ast.Constant) and type(window.value) is int and 2 <= window.value <= MAX_WINDOW):
            self.fail(window, f"the window of {fn} must be an integer literal from 2 to {MAX_WINDOW}")
        return _Roll(fn, self.build(node.args[0]), window.value)

    def shift(self, node: ast.Subscript) -> _Node:
        index = node.slice
        match index:
            case ast.Name(id="t"):
                return self.build(node.value)
            case ast.BinOp(left=ast.Name(id="t"), op=ast.Sub(), right=ast.Constant(value=int() as k)) if (
                type(k) is int and 1 <= k <= MAX_WINDOW
            ):
                arg = self.build(node.value)
                return _Shift(arg.arg, arg.k + k) if isinstance(arg, _Shift) else _Shift(arg, k)
            case ast.BinOp(left=ast.Name(id="t"), op=ast.Add()):
                self.fail(node, "would look ahead: x[t+k] is a later bar; only past bars x[t-k] are allowed")
        self.fail(node, f"a shift must be x[t-k] with k an integer literal from 1 to {MAX_WINDOW}")


def _parse_tree(text: str, prefix: str) -> ast.Expression:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for "2[t-1]": the checker speaks for itself
            return ast.parse(text, mode="eval")
    except SyntaxError as e:
        lines = text.splitlines()
        line = lines[e.lineno - 1] if e.lineno and 0 < e.lineno <= len(lines) else ""
        column = f"column {e.offset}" if e.offset and 0 < e.offset <= len(line) else "the end"
        at = f"line {e.lineno} {column}" if "\n" in text and column != "the end" else column
        raise ExpressionError(f"{prefix}cannot parse {text!r}: {e.msg} at {at}") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise ExpressionError(f"{prefix}cannot parse {text!r}: {e}") from None


def parse(text: str, *, where: str = "") -> Expression:
    """Check ``text`` against the grammar; ``where`` (e.g. "feature close_z60, key expr") prefixes errors."""
    prefix = f"{where}: " if where else ""
    if not isinstance(text, str):
        raise ExpressionError(f"{prefix}an expression must be a string, got {type(text).__name__} {text!r}")
    source = text.strip()  # YAML block scalars end in a newline; ast refuses a leading indent
    if not source:
        raise ExpressionError(f"{prefix}empty expression")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"{prefix}expression of {len(source)} characters (at most {MAX_LENGTH}): {text[:40]!r}…")
    tree = _parse_tree(source, prefix)
    try:
        node = _Checker(source, prefix).build(tree.body)
    except RecursionError:
        raise ExpressionError(f"{prefix}expression nested too deeply: {text[:40]!r}…") from None
    return Expression(text, _text(node), frozenset(_names(node)), node, where)


def _shifted(values: np.ndarray, k: int, bounds: Sequence[int]) -> np.ndarray:
    """``values`` k bars later within each series (``bounds``, as ``rolling`` has them)."""
    out = np.full(len(values), np.nan)
    for lo, hi in itertools.pairwise(bounds):
        if k < hi - lo:
            out[lo + k : hi] = values[lo : hi - k]
    return out


def _evaluate(node: _Node, value: Callable[[str], np.ndarray], bounds: Sequence[int]) -> np.ndarray:
    """``node``'s values; never modifies an array ``value`` returned (those belong to the caller)."""
    match node:
        case _Num(number):
            return np.full(bounds[-1], number)
        case _Ref(name):
            return value(name)
        case _Neg(arg):
            return -_evaluate(arg, value, bounds)
        case _Bin(op, left, right):
            a, b = _evaluate(left, value, bounds), _evaluate(right, value, bounds)
            return finite(a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b)
        case _Call(fn, arg):
            return finite(_ELEMENTWISE[fn](_evaluate(arg, value, bounds)))
        case _Roll(fn, arg, window):
            return rolling(fn, _evaluate(arg, value, bounds), window, bounds)
        case _Shift(arg, k):
            return _shifted(_evaluate(arg, value, bounds), k, bounds)


def _warmup(node: _Node, warmups: Callable[[str], int]) -> int:
    match node:
        case _Num():
            return 0
        case _Ref(name):
            return warmups(name)
        case _Bin(_, left, right):
            return max(_warmup(left, warmups), _warmup(right, warmups))
        case _Neg(arg) | _Call(_, arg):
            return _warmup(arg, warmups)
        case _Roll(_, arg, window):
            return _warmup(arg, warmups) + window - 1
        case _Shift(arg, k):
            return _warmup(arg, warmups) + k


@dataclass(frozen=True)
class Expression:
    """A checked expression; two are equal when their ``normalized`` forms are (they compute the same values)."""

    text: str = field(compare=False)  # as written
    normalized: str  # canonical text (minimal parentheses, float literals): what versions a definition
    names: frozenset[str]  # every name referenced: bar inputs, typical and features
    _node: _Node = field(repr=False, compare=False)
    where: str = field(default="", compare=False)  # the context errors name

    @property
    def feature_names(self) -> frozenset[str]:
        """The features this expression reads: the caller computes them first and passes them in.

        A name of ``INPUTS`` always means the bar input: the caller must not name a feature so."""
        return self.names - INPUTS

    def _error(self, message: str) -> ExpressionError:
        return ExpressionError(f"{self.where + ': ' if self.where else ''}{message} in {self.text.strip()!r}")

    def warmup(self, warmups: Mapping[str, int]) -> int:
        """Leading bars that are NaN, given each feature's warm-up (inputs have none): a shift by k adds k,
        a window of n adds n - 1, an operation takes the largest warm-up of its operands."""

        def of(name: str) -> int:
            if name in INPUTS:
                return 0
            if name not in warmups:
                raise self._error(f"unknown feature {name!r}")
            return int(warmups[name])

        return _warmup(self._node, of)

    def evaluate(
        self,
        inputs: Mapping[str, np.ndarray],
        features: Mapping[str, np.ndarray],
        bounds: Sequence[int] | None = None,
    ) -> np.ndarray:
        """The values, oldest bar first: float64, NaN where undefined (never ±inf).

        ``inputs``: bar arrays by name (open, high, low, close, volume); ``features``: arrays of the
        features in ``feature_names``, already computed. Every array has one value per bar.
        ``bounds``: the arrays are several series laid end to end, series i from ``bounds[i]`` to
        ``bounds[i + 1]``; each series gets the values an evaluation of it alone gives.
        """
        arrays = {name: self._resolve(name, inputs, features) for name in sorted(self.names)}
        sizes = {name: len(arr) for name, arr in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise FeatureError(f"expression {self.text.strip()!r}: arrays of different lengths {sizes}")
        if bounds is None:
            lengths = [len(arr) for arr in (*arrays.values(), *inputs.values(), *features.values())]
            if not lengths:
                raise FeatureError(f"expression {self.text.strip()!r}: no arrays to tell the number of bars")
            bounds = (0, lengths[0])
        with np.errstate(all="ignore"):
            # np.array copies: callers own the result
            out = np.array(_evaluate(self._node, arrays.__getitem__, bounds), dtype=np.float64)
        return finite(out)

    def _resolve(self, name: str, inputs: Mapping[str, np.ndarray], features: Mapping[str, np.ndarray]) -> np.ndarray:
        def array(source: Mapping[str, np.ndarray], key: str) -> np.ndarray:
            values = np.ascontiguousarray(source[key], dtype=np.float64)
            # ±inf would poison TA-Lib's running sums (inf - inf); a caller's array is never modified
            return values if np.isfinite(values).all() else finite(values.copy())

        if name == "typical":
            missing = [k for k in ("high", "low", "close") if k not in inputs]
            if missing:
                raise self._error(f"typical needs the bar input(s) {', '.join(missing)}")
            h, lo, c = array(inputs, "high"), array(inputs, "low"), array(inputs, "close")
            return (h + lo + c) / 3.0  # exactly as the engine computes it
        if name in BAR_INPUTS:
            if name not in inputs:
                raise self._error(f"the bar input {name!r} was not provided")
            return array(inputs, name)
        if name not in features:
            raise self._error(f"unknown name {name!r} (neither a bar input nor a computed feature)")
        return array(features, name)
