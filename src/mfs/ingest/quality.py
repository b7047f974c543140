"""Market-aware quality checks of one fetched series: evidence, not thresholds, decides what is
held back.

Validation (``mfs.ingest.validate``) quarantines what cannot be a bar at all. What remains is
plausible, and a large move by itself is evidence of nothing: a market moves 70% in an hour. So
every such bar is **stored**, with an anomaly recording the doubt, unless the series itself shows
positive evidence of a defect — then the bar is **held back** (kept out of ``market_data``, so no
feature, aggregate or query can read it, and re-examined on every later run):

================== ========= ===== ==========================================================
kind               severity  held  evidence
================== ========= ===== ==========================================================
level_shift        warning   no    a close ≥ ``level_shift_min`` from the previous one (high
                   / high          when the move is a power of ten: a unit change?)
spike              warning   yes   a bar ≥ ``spike_min_ratio`` × both neighbours (or ≤ 1/×)
                                   while the neighbours agree within ``spike_agreement``
power_of_ten       high      yes   such a spike by a power of ten (×100: cents for dollars)
unadjusted_split   high      yes   the first bar on a split's ex-date is at 1/R of the bar
                                   before (± ``split_tolerance``): the history before it is
                                   not re-adjusted yet; the bars from the ex-date on wait
phantom_split      high      yes   the same bar is R × the bar before: a split the source
                                   announced and adjusted for that the prices do not show
stale              warning   no    ≥ ``stale_bars`` hourly bars in a row at the previous close
                                   with zero volume
gap                warning   no    a session's bar missing between two served bars
================== ========= ===== ==========================================================

The newest bar of a series has no right neighbour: a jump there cannot yet be told from the
first bar of a real crash. ``quality.newest_jump`` decides: ``store`` (the default: a live model
must see a real crash at once) stores it with a ``level_shift`` anomaly, and if the next run shows
it reverted it is held back then (its stored version kept as a revision) and that anomaly is
retracted; ``hold`` holds it back until a later bar confirms the new level (then it is stored and
the anomaly resolved as confirmed) or shows a spike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mfs.calendar import daily_bar_label
from mfs.config import QualityConfig
from mfs.ingest.validate import Finding, Validated, expected_labels, validate_bars
from mfs.market import NY


@dataclass(frozen=True)
class Split:
    """A split as served: ``ratio`` shares after per share before (4 for a 4-for-1)."""

    ex_label: pd.Timestamp  # the ex-date's daily label (New York midnight, UTC)
    ratio: float


@dataclass
class Examined:
    """A series after the checks: which bars are held back, and every finding."""

    held: np.ndarray  # bool per bar of the examined frame
    findings: list[Finding] = field(default_factory=list)


def _ratio_words(ratio: float) -> str:
    return f"{ratio - 1:+.0%}" if ratio < 10 else f"×{ratio:.4g}"


def _power_of_ten(log_ratio: float) -> int:
    """The power of ten a log ratio is (within 10%: a unit error plus a bar's own move), or 0."""
    k = round(log_ratio / math.log(10))
    return k if k != 0 and abs(log_ratio - k * math.log(10)) < math.log(1.1) else 0


def _split_checks(ns: np.ndarray, log_close: np.ndarray, splits: Sequence[Split], tol: float, out: Examined) -> None:
    """Hold back the bars from a split's ex-date on when the jump into it is the split itself
    (unadjusted history) or its inverse (a phantom split)."""
    for split in splits:
        log_r = math.log(split.ratio)
        if abs(log_r) < 2 * math.log1p(tol):
            continue  # too small to tell from a day's move
        k = int(np.searchsorted(ns, split.ex_label.value))
        if k == 0 or k >= len(ns):
            continue
        jump = log_close[k] - log_close[k - 1]
        if abs(jump + log_r) <= math.log1p(tol):
            kind, why = "unadjusted_split", "the bars before it are not re-adjusted for the split yet"
        elif abs(jump - log_r) <= math.log1p(tol):
            kind, why = "phantom_split", "the bars before it were divided by a split the prices do not show"
        else:
            continue
        day = split.ex_label.tz_convert(NY).date()
        for i in range(k, len(ns)):
            if out.held[i]:
                continue
            detail = (
                f"{_ratio_words(math.exp(jump))} on the ex-date of the {split.ratio:g}-for-1 split of {day}: {why}"
                if i == k
                else f"after the {kind.replace('_', ' ')} of {day}: held until the source re-adjusts the history"
            )
            out.held[i] = True
            out.findings.append(Finding(pd.Timestamp(ns[i], tz="UTC"), kind, "high", detail, held=True))


def _jump_checks(ns: np.ndarray, close: np.ndarray, rules: QualityConfig, out: Examined) -> None:
    """Spikes (held) and level shifts (stored) among the bars not held already. A bar is compared
    with the previous bar still standing, so a held spike does not make its revert a jump."""
    standing = np.flatnonzero(~out.held)
    if len(standing) < 2:
        return
    log_c = np.log(close[standing])
    steps = np.diff(log_c)
    level = math.log1p(rules.level_shift_min)
    if not (np.abs(steps) >= level).any():
        return  # the common case: no bar moved enough to look at
    spike, agree = math.log(rules.spike_min_ratio), math.log1p(rules.spike_agreement)
    previous = 0  # position in ``standing`` of the previous bar still standing
    for j in range(1, len(standing)):
        i = standing[j]
        step = log_c[j] - log_c[previous]
        if abs(step) < level:
            previous = j
            continue
        ts = pd.Timestamp(ns[i], tz="UTC")
        before = close[standing[previous]]
        move = f"close {close[i]:g} is {_ratio_words(math.exp(step))} from the previous close {before:g}"
        if j + 1 < len(standing):
            back = log_c[j + 1] - log_c[j]
            reverted = abs(log_c[j + 1] - log_c[previous]) <= agree
            if abs(step) >= spike and abs(back) >= spike and reverted:
                power = _power_of_ten((step - back) / 2)  # against both neighbours: their moves average out
                kind, severity = ("power_of_ten", "high") if power else ("spike", "warning")
                out.held[i] = True
                out.findings.append(
                    Finding(ts, kind, severity, f"{move} and the next bar returns to it: held back", held=True)
                )
                continue  # ``previous`` stays: the next bar is compared with the bar before the spike
        power = _power_of_ten(step)
        newest = j + 1 == len(standing)
        hold = newest and rules.newest_jump == "hold"
        unit = f"; a move of 10^{power}: a change of units?" if power else ""
        state = ""
        if newest:
            state = "; the newest bar: " + (
                "held until a later bar confirms it" if hold else "not yet confirmed by a later one"
            )
        out.held[i] |= hold
        out.findings.append(
            Finding(ts, "level_shift", "high" if power else "warning", f"{move}{state}{unit}", held=hold)
        )
        previous = j


def _stale_checks(bars: pd.DataFrame, rules: QualityConfig, out: Examined) -> None:
    """Runs of hourly bars frozen at the previous close with zero volume."""
    o, h, lo, c = (bars[k].to_numpy(float) for k in ("open", "high", "low", "close"))
    frozen = (bars["volume"].to_numpy() == 0) & (o == h) & (h == lo) & (lo == c)
    frozen[1:] &= c[1:] == c[:-1]
    frozen[0] = False
    if frozen.sum() < rules.stale_bars:
        return
    edges = np.diff(np.concatenate([[0], frozen.astype(np.int8), [0]]))
    for first, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        if end - first >= rules.stale_bars:
            out.findings.append(
                Finding(
                    pd.Timestamp(bars["ts"].iloc[first]),
                    "stale",
                    "warning",
                    f"{end - first} hourly bars in a row at {c[first]:g} with zero volume",
                )
            )


def _gap_checks(interval: str, served_ns: np.ndarray, out: Examined) -> None:
    """Session bars missing between the first and the last bar the source served."""
    if len(served_ns) < 2:
        return
    first, last = int(served_ns.min()), int(served_ns.max())
    expected = expected_labels(interval, first, last)
    expected = expected[(expected > first) & (expected < last)]
    missing = expected[~np.isin(expected, served_ns)]
    for label in missing.tolist():
        out.findings.append(
            Finding(pd.Timestamp(label, tz="UTC"), "gap", "warning", "the session's bar was not served by the source")
        )


def examine(
    bars: pd.DataFrame,
    interval: str,
    rules: QualityConfig,
    *,
    splits: Sequence[Split] = (),
    served_ns: np.ndarray | None = None,
) -> Examined:
    """Check a validated series (sorted by ``ts``, every bar plausible). ``splits``: the splits the
    source served with it; ``served_ns``: the labels of every bar served (quarantined ones too),
    for the gap check."""
    out = Examined(held=np.zeros(len(bars), dtype=bool))
    if bars.empty:
        return out
    ns = pd.DatetimeIndex(bars["ts"]).as_unit("ns").asi8
    close = bars["close"].to_numpy(float)
    if splits:
        _split_checks(ns, np.log(close), splits, rules.split_tolerance, out)
    _jump_checks(ns, close, rules, out)
    if interval == "1h":
        _stale_checks(bars, rules, out)
    _gap_checks(interval, ns if served_ns is None else served_ns, out)
    return out


def splits_of(actions: pd.DataFrame | None) -> list[Split]:
    """The splits among a source's actions (``kind``, ``ex_date``, ``value``)."""
    if actions is None or actions.empty:
        return []
    rows = actions[actions["kind"] == "split"]
    return [
        Split(daily_bar_label(day), float(value)) for day, value in zip(rows["ex_date"], rows["value"], strict=True)
    ]


def check_bars(
    bars: pd.DataFrame,
    interval: str,
    rules: QualityConfig,
    *,
    asof: pd.Timestamp | None = None,
    actions: pd.DataFrame | None = None,
) -> Validated:
    """Validate a response's bars, then examine what is plausible: the result's ``good`` bars
    are those to store, ``held`` those held back, ``findings`` every anomaly."""
    checked = validate_bars(bars, interval, asof=asof)
    checked.actions = actions
    if not rules.enabled or checked.good.empty:
        return checked
    served = pd.DatetimeIndex(bars["ts"]).dropna()
    served_ns = served.as_unit("ns").asi8
    checked.served = (served.min(), served.max())
    examined = examine(checked.good, interval, rules, splits=splits_of(actions), served_ns=served_ns)
    checked.findings = examined.findings
    if examined.held.any():
        checked.held = checked.good.loc[examined.held].reset_index(drop=True)
        checked.good = checked.good.loc[~examined.held].reset_index(drop=True)
    return checked
