"""The version ``features_asof`` (sql/functions/asof.sql, the oracle) returns, chosen in numpy.

The SQL function walks a symbol's current rows back from ``at`` (``ts <= at``; ``closes_at <= at``
in known mode; within the tolerance) and returns, for the first row that qualifies, its current
version or the revision valid at K (K = known_at, or ``at`` itself; served mode: ``at``, partial
versions included). So the answer is the greatest ts that holds a qualifying version — a
predicate of that ts's own versions: two ranges of ts can be searched one after the other (the
reader does so when it reads the newer range first), and a ts whose rows were all deleted (only
revisions left) is never an answer.

How, per symbol, with the versions of a ts sorted by known_from:
 - fixed K: keep the complete versions valid at K (at most one per ts: the reader reads only those
   and the current rows), then one searchsorted on max(closes_at, ts), which grows with ts;
 - K = at: the versions of a ts are contiguous in time (each replaced by the next at once, the
   current row last) and a complete version is never followed by a partial one, so "a complete
   version of ts is valid at t" <=> t >= fck(ts), the known_from of its first complete version.
   The answer is the greatest ts with max(fck, closes_at, ts) <= at: a suffix minimum over ts
   and a searchsorted; then the version of that ts valid at ``at``. Served mode: the same with
   the first version's known_from and without closes_at.
A symbol where those assumptions fail (a gap or an overlap between versions — with a fixed K, two
complete versions valid at K —, a complete version followed by a partial one, closes_at not
growing with ts or NULL) is reported irregular: its entities go to the SQL function itself. Every
chosen version is checked to be valid at K too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mfs.dataset.versions import Records
from mfs.storage.records import PG_INF, PG_NINF

DAY_US = 86_400_000_000  # the SQL's `interval '1 day'` (sessions in UTC: a fixed 24 h)


@dataclass
class Grouped:
    """A batch's versions sorted by (k, ts, known_from), grouped by (k, ts) — ts without a current
    row dropped — with each group's facts, and the symbols (k) whose versions are irregular."""

    rec: Records
    starts: np.ndarray  # first version of each group
    ends: np.ndarray
    k: np.ndarray  # per group
    ts: np.ndarray
    closes_at: np.ndarray  # of the current row: what the SQL's walk filters on
    first_known: np.ndarray  # known_from of the first version (served mode)
    first_complete: np.ndarray  # known_from of the first complete version (PG_INF: none)
    valid: np.ndarray  # fixed K: the complete version valid at K (-1: none); else empty
    irregular: set[int]


def _sorted(rec: Records) -> Records:
    return rec.take(np.lexsort((rec.known_to, rec.known_from, rec.ts, rec.k)))


def _group_starts(rec: Records) -> np.ndarray:
    new = np.ones(len(rec), dtype=bool)
    new[1:] = (rec.k[1:] != rec.k[:-1]) | (rec.ts[1:] != rec.ts[:-1])
    return np.flatnonzero(new)


def group_versions(rec: Records, *, known_at: int | None, served: bool) -> Grouped:
    """Sort and group ``rec``, and find the irregular symbols for this kind of question: with a
    fixed K (known mode) ``rec`` may hold only the current rows and the versions valid at K."""
    rec = _sorted(rec)
    irregular: set[int] = set()
    if len(rec):
        starts = _group_starts(rec)
        ends = np.r_[starts[1:], len(rec)]
        current = rec.known_to == PG_INF
        # A current row that is not the newest version of its ts (a revision known from later):
        # not what the store writes.
        not_last = current.copy()
        not_last[ends - 1] = False
        irregular |= set(rec.k[not_last].tolist())
        keep = np.repeat(current[ends - 1], ends - starts)  # ts with a current row only
        if not keep.all():
            rec = rec.take(keep)
    none = np.zeros(0, dtype=np.int64)
    if not len(rec):
        return Grouped(rec, none, none, none, none, none, none, none, none, irregular)
    starts = _group_starts(rec)
    ends = np.r_[starts[1:], len(rec)]
    valid = none
    if known_at is not None and not served:
        valid, overlap = _valid_at(rec, starts, known_at)
        irregular |= set(rec.k[starts[overlap]].tolist())
    else:
        irregular |= _not_contiguous(rec, starts, ends, complete_stays=not served)
    g_k = rec.k[starts]
    g_closes = rec.closes_at[ends - 1]
    # closes_at must grow with ts for the searchsorted (and the tolerance) to hold.
    bad = np.flatnonzero((g_k[1:] == g_k[:-1]) & (g_closes[1:] < g_closes[:-1]))
    # A NULL closes_at (a hand-written row): the SQL reads it with bar_closes_at(); leave it to the SQL.
    irregular |= set(g_k[bad].tolist()) | set(rec.k[rec.closes_at == PG_NINF].tolist())
    first_complete = np.minimum.reduceat(np.where(rec.complete == 1, rec.known_from, PG_INF), starts)
    return Grouped(
        rec, starts, ends, g_k, rec.ts[starts], g_closes, rec.known_from[starts], first_complete, valid, irregular
    )


def _valid_at(rec: Records, starts: np.ndarray, known_at: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group, its complete version valid at ``known_at`` (-1: none), and the groups with more
    than one (an overlap: irregular)."""
    valid = (rec.complete == 1) & (rec.known_from <= known_at) & (known_at < rec.known_to)
    count = np.add.reduceat(valid.astype(np.int64), starts)
    index = np.flatnonzero(valid)
    version = np.full(len(starts), -1, dtype=np.int64)
    version[np.searchsorted(starts, index, side="right") - 1] = index
    return version, np.flatnonzero(count > 1)


def _not_contiguous(rec: Records, starts: np.ndarray, ends: np.ndarray, complete_stays: bool) -> set[int]:
    """Symbols with an empty or reversed validity, or two successive versions of a ts that are not
    contiguous (or, with ``complete_stays``, complete then partial)."""
    bad = rec.known_from >= rec.known_to
    follows = np.ones(len(rec), dtype=bool)  # version i+1 is of the same ts as version i
    follows[ends - 1] = False
    pairs = np.flatnonzero(follows[:-1])
    gap = rec.known_to[pairs] != rec.known_from[pairs + 1]
    if complete_stays:
        gap |= (rec.complete[pairs] == 1) & (rec.complete[pairs + 1] != 1)
    return set(rec.k[bad].tolist()) | set(rec.k[pairs[gap]].tolist())


@dataclass
class Choice:
    """Per entity: the chosen version (index into ``Grouped.rec``, -1 = no answer) and whether
    its symbol must go to the SQL function instead."""

    version: np.ndarray
    fallback: np.ndarray


def choose(
    g: Grouped, k: np.ndarray, at: np.ndarray, *, known_at: int | None, served: bool, tolerance: int | None
) -> Choice:
    """The answer for entities (k[i], at[i]) (``at`` in PostgreSQL µs), as features_asof gives it."""
    n = len(k)
    group = np.full(n, -1, dtype=np.int64)
    fallback = np.isin(k, np.fromiter(g.irregular, dtype=np.int64, count=len(g.irregular)))
    fixed = known_at is not None and not served
    candidates = np.flatnonzero(g.valid >= 0) if fixed else None
    order = np.argsort(k, kind="stable")
    ks, bounds = np.unique(k[order], return_index=True)
    bounds = np.r_[bounds, n]
    firsts, lasts = np.searchsorted(g.k, ks), np.searchsorted(g.k, ks, side="right")
    for j, sym in enumerate(ks.tolist()):
        lo, hi = int(firsts[j]), int(lasts[j])
        if sym in g.irregular or lo == hi:
            continue
        ents = order[bounds[j] : bounds[j + 1]]
        if candidates is not None:
            cand = candidates[np.searchsorted(candidates, lo) : np.searchsorted(candidates, hi)]
            key = np.maximum(g.closes_at[cand], g.ts[cand])
            pos = np.searchsorted(key, at[ents], side="right") - 1
            group[ents] = np.where(pos >= 0, cand[np.maximum(pos, 0)], -1)
        else:
            first = g.first_known[lo:hi] if served else np.maximum(g.first_complete[lo:hi], g.closes_at[lo:hi])
            key = np.minimum.accumulate(np.maximum(first, g.ts[lo:hi])[::-1])[::-1]
            pos = np.searchsorted(key, at[ents], side="right") - 1
            group[ents] = np.where(pos >= 0, lo + pos, -1)
    if tolerance is not None:
        hit = group >= 0
        gi = group[hit]
        ok = (g.closes_at[gi] >= at[hit] - tolerance) & (g.ts[gi] >= at[hit] - tolerance - DAY_US)
        group[np.flatnonzero(hit)[~ok]] = -1
    if fixed:
        version = np.where(group >= 0, g.valid[np.maximum(group, 0)], -1) if len(g.valid) else group
    else:
        version = _version_of(g, group, at)
    return _checked(g, Choice(version, fallback), k, at, known_at=known_at, served=served)


def _version_of(g: Grouped, group: np.ndarray, when: np.ndarray) -> np.ndarray:
    """Per entity, the version of its group whose known_from is the last one <= ``when``."""
    version = np.full(len(group), -1, dtype=np.int64)
    hit = np.flatnonzero(group >= 0)
    if not len(hit):
        return version
    gi, t = group[hit], when[hit]
    idx, end = g.starts[gi].copy(), g.ends[gi]
    kf = g.rec.known_from
    for _ in range(int((g.ends - g.starts).max()) - 1):  # versions of one ts: a handful
        nxt = idx + 1
        step = nxt < end
        step[step] = kf[nxt[step]] <= t[step]
        if not step.any():
            break
        idx[step] += 1
    version[hit] = idx
    return version


def _checked(
    g: Grouped, choice: Choice, k: np.ndarray, at: np.ndarray, *, known_at: int | None, served: bool
) -> Choice:
    """Every chosen version valid at K (complete in known mode): otherwise the symbol was not what
    the fast path assumes and goes to the SQL function."""
    v = choice.version
    hit = np.flatnonzero(v >= 0)
    if not len(hit):
        return choice
    rec = g.rec
    kk = at[hit] if known_at is None or served else known_at
    ok = (rec.known_from[v[hit]] <= kk) & (kk < rec.known_to[v[hit]]) & (rec.ts[v[hit]] <= at[hit])
    if not served:
        ok &= rec.complete[v[hit]] == 1
    if not ok.all():
        choice.fallback |= np.isin(k, np.unique(k[hit[~ok]]))
    return choice
