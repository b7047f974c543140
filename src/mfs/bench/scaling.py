"""How the store's costs grow with the universe: the same hourly pipeline at several numbers of
symbols (``mfs bench --scales 500,2000,8000``), each on its own scratch database, and every
phase's cost per symbol as a ratio to the smallest scale's (1.0 = linear growth).

The stores are built one after the other, two of the smallest scale before each larger one and
after the last (500, 500, 2000, 500, 500, 8000, 500, 500), and all are kept: the history is
generated and stored in batches of ``GENERATE_BATCH`` symbols, fewer for a deep history (the
generator's frames are one batch at a time, so they grow neither with the universe nor with the
depth), then the feature backfill, the first aggregate refresh and a ``VACUUM (ANALYZE)`` (as
after any bulk load). Then rounds of one new hour
(ingest, incremental features, refresh) go through every store in turn. Then, per store, a run
with nothing to do, in this process and as a fresh ``mfs features`` command. Last, every store
vacuumed again and a CHECKPOINT, then rounds of the serving queries through every store in turn
(mfs.bench.serving). The product's peak RSS (this process and its workers) is sampled from the
backfill on; a scale run more than once reports the medians of its runs and the highest peak.

The two ingest phases are timed batch by batch (GENERATE_BATCH symbols a call, in every store), and
their ratio to linear is that of the median cost per symbol of a batch: the same unit of work in
every store, so a 500-symbol store's one batch and an 8,000-symbol store's sixteen are compared
like for like, not one short sample against the sum of sixteen. A larger store's history is
stored in one window of the run, so each of its batches is followed by a control: the first
batch's symbols stored into a fresh scratch database. Its ratio is that of its median batch to
the median control, taken side by side (a 500-symbol store built minutes earlier or later can
stand on a busier or a quieter host: four builds of the same 8,000-symbol history, one after
the other, had median batches of 2.4-3.3 ms per symbol).
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mfs.bench import runner, serving
from mfs.bench.depths import vs_depth
from mfs.bench.memory import PeakRss
from mfs.bench.scratch import scratch_database, using_database
from mfs.features import compute
from mfs.storage.connection import connect

GENERATE_BATCH = 500
# ... and at most this many bars: 500 symbols of 60 days (~145,000 bars). A deeper history is
# generated and stored in fewer symbols a batch, so the bench process's own frames do not grow with
# the depth: they are sampled with the product's peak (this process), and 500 symbols of 730 days
# in one batch (1.75 million bars) left the process at ~400 MB where 60 days left it at ~150.
GENERATE_BARS = 150_000
HOURLY_BARS_PER_DAY = 7 * 252 / 365  # seven bars a session, 252 sessions a year
# Rounds of one new hour in every store; each phase's median is reported. Seven, not three: a
# 500-symbol hour's ingest is ~0.4 s, and five alternated hours of it took 0.54-1.06 ms per symbol.
# A larger scale has one store, so its figure is the median of its own hours alone: with five, one
# run put the 2,000-symbol hour's ingest at 1.14 x linear on one edition and 0.85 on the other.
NEW_HOURS = 7
# Stores of the smallest scale at each place in the order: every ratio divides by their figures,
# and such a store's history is a single batch. With one store per place, the history's ratio
# divided by three batches and moved by +-0.1 between runs (1.17 in one, 1.01 in the next).
SMALLEST_EACH_TIME = 2
# Phases whose cost should grow linearly with the symbols: their ratio to linear is printed.
LINEAR_PHASES = (
    "ingest_s",
    "features_backfill_s",
    "aggregate_backfill_refresh_s",
    "ingest_new_hour_s",
    "features_incremental_s",
    "aggregate_refresh_s",
)
# The phases timed per batch: each one's figure of median milliseconds per symbol in a batch.
PER_BATCH = {"ingest_s": "ingest_batch_ms_per_symbol", "ingest_new_hour_s": "ingest_new_hour_batch_ms_per_symbol"}
# A larger store's history: the median of the control batches stored beside its own batches.
HISTORY_CONTROL = "ingest_control_batch_ms_per_symbol"


@dataclass
class _Store:
    """One run of one scale: its scratch database, kept until every store has had its new hours."""

    url: str
    symbols: list[str]
    asof: pd.Timestamp
    last_ts: dict  # each symbol's newest bar
    figures: dict[str, Any]
    batch_ms: dict[str, list[float]]  # per PER_BATCH phase, each batch's ms per symbol
    hours: list[dict[str, Any]] = field(default_factory=list)
    peak_mb: float = 0.0  # the product's peak RSS so far
    days: int = 0  # the depth of its history


def run(
    scales: Sequence[int],
    days: int | Sequence[int],
    progress: Callable[[str], None] = lambda m: None,
    server: str | None = None,
) -> dict[str, Any]:
    """Every scale's figures, and per linear phase the ratio of its cost per symbol to the first
    scale's; with several depths (``days``), that per depth, and per scale each phase's ratio to
    the shallowest depth's (mfs.bench.depths).

    The first scale is built SMALLEST_EACH_TIME times before each larger one and after the last,
    and its figures are the medians of those runs (of all their batches, for the ingest); the new
    hours go round every store in turn, NEW_HOURS times — the stores of every depth, so the depths
    are compared hour by hour too. So every ratio divides by figures taken across the whole run,
    not in its first minutes: measured once at the start, the 500-symbol hour's ingest took 1.68 ms
    per symbol in one run and the 8,000-symbol 1.87 (1.11 x linear); with the two stores' hours
    alternated, both took 1.91.
    """
    depths = [days] if isinstance(days, int) else list(days)
    order = [(n, d) for d in depths for n in _interleaved(scales)]
    seen: dict[tuple[int, int], int] = {}
    with contextlib.ExitStack() as kept:
        stores = []
        for n, d in order:
            seen[n, d] = seen.get((n, d), 0) + 1
            label = _label(n, d if len(depths) > 1 else None, seen[n, d], order.count((n, d)))
            url = kept.enter_context(scratch_database(server=server))
            log = functools.partial(_labelled, progress, label)
            stores.append(_build(n, d, url, log, paired=n != scales[0]))
        _new_hours(stores, progress)
        for store in stores:
            with using_database(store.url):
                label = _label(len(store.symbols), store.days if len(depths) > 1 else None)
                _finish(store, functools.partial(_labelled, progress, label))
        _serve(stores, progress)
    by_depth = []
    for d in depths:
        results = [_combined([s for s in stores if s.figures["symbols"] == n and s.days == d]) for n in scales]
        for result in results:
            result["vs_linear"] = _vs_linear(result, results[0])
        by_depth.append({"days": d, "scales": results})
    if len(depths) == 1:
        return by_depth[0]
    return {"depths": by_depth, "vs_depth": vs_depth(by_depth)}


def _label(n: int, days: int | None, run: int = 1, runs: int = 1) -> str:
    """The progress lines' prefix naming a store: its symbols, its depth when several are run."""
    depth = f" x {days} days" if days is not None else ""
    return f"[{n} symbols{depth}, run {run} of {runs}] " if runs > 1 else f"[{n} symbols{depth}] "


def _interleaved(scales: Sequence[int], smallest_each_time: int = SMALLEST_EACH_TIME) -> list[int]:
    """The order of the runs: ``smallest_each_time`` runs of the first scale before each of the
    others and after the last."""
    order = [scales[0]] * smallest_each_time
    for n in scales[1:]:
        order += [n] + [scales[0]] * smallest_each_time
    return order


def _combined(stores: list[_Store]) -> dict[str, Any]:
    """One scale's figures over its stores, with the per-batch medians of all their batches."""
    out = _median_of_runs([s.figures for s in stores])
    for figure in (*PER_BATCH.values(), HISTORY_CONTROL):
        batches = [ms for s in stores for ms in s.batch_ms.get(figure, [])]
        if batches:
            out[figure] = round(statistics.median(batches), 3)
    return out


def _vs_linear(result: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """Each linear phase's cost per symbol over ``base``'s: per batch where it is timed so, and
    the history's over its own control batches where it has them."""
    growth = result["symbols"] / base["symbols"]
    out = {}
    for k in LINEAR_PHASES:
        per_batch = PER_BATCH.get(k)
        if per_batch and k == "ingest_s" and result.get(HISTORY_CONTROL) and result.get(per_batch):
            out[k] = round(result[per_batch] / result[HISTORY_CONTROL], 2)
        elif per_batch and base.get(per_batch) and result.get(per_batch):
            out[k] = round(result[per_batch] / base[per_batch], 2)
        elif base.get(k) and result.get(k):
            out[k] = round(result[k] / base[k] / growth, 2)
    return out


def _median_of_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One scale's figures over its runs: each number's median, each peak memory's maximum (a
    claim of flat memory must hold for every run), and how many runs there were."""
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [run[key] for run in runs]
        if len(set(values)) == 1 or not isinstance(first, int | float):
            out[key] = first
        elif key.endswith("_rss_mb"):
            out[key] = max(values)
        else:
            out[key] = round(statistics.median(values), 3)
    return out | {"runs": len(runs)}


def _labelled(progress: Callable[[str], None], label: str, message: str) -> None:
    progress(label + message)


def _build(n: int, days: int, url: str, progress: Callable[[str], None], paired: bool = False) -> _Store:
    """A store of ``n`` symbols with ``days`` of history, its features and aggregates, vacuumed
    (``paired``: each history batch followed by a control batch, see _store_history)."""
    asof = runner.pinned_asof()
    start = asof - pd.Timedelta(days=days)
    symbols = runner.bench_symbols(n)
    out: dict[str, Any] = {"symbols": n, "edition": runner._license()}
    control = ", each batch followed by a control batch in a fresh database" if paired else ""
    batch = _history_batch(days)
    progress(f"generating and storing {days} days of hourly bars, {batch} symbols at a time{control}")
    with PeakRss() as ingest_peak:
        out["ingest_s"], last_ts, out["bars"], history_ms, control_ms = _store_history(
            symbols, start, asof, paired=paired
        )
    out["ingest_peak_rss_mb"] = round(ingest_peak.mb, 1)
    # Each phase's own peak too: the product's peak is the highest of them, and says which it was.
    with PeakRss() as backfill_peak:
        progress("full feature backfill")
        out["features_backfill_s"] = round(runner._timed(lambda: compute(symbols, "1h", full=True))[0], 3)
    out["features_backfill_peak_rss_mb"] = round(backfill_peak.mb, 1)
    with PeakRss() as refresh_peak:
        progress("first aggregate refresh")
        out["aggregate_backfill_refresh_s"] = round(runner._timed(runner._refresh)[0], 3)
        progress("VACUUM (ANALYZE) of the store after the backfill")
        out["vacuum_after_backfill_s"] = round(runner._timed(_vacuum_store)[0], 3)
    out["aggregate_backfill_peak_rss_mb"] = round(refresh_peak.mb, 1)
    batch_ms = {PER_BATCH["ingest_s"]: history_ms, PER_BATCH["ingest_new_hour_s"]: [], HISTORY_CONTROL: control_ms}
    peak_mb = max(backfill_peak.mb, refresh_peak.mb)
    return _Store(url, symbols, asof, last_ts, out, batch_ms, peak_mb=peak_mb, days=days)


def _new_hours(stores: list[_Store], progress: Callable[[str], None]) -> None:
    """NEW_HOURS rounds of one new hour (ingest, incremental features, aggregate refresh) in every
    store in turn; each phase's figure is its median over a store's hours."""
    autovacuums = {}
    for store in stores:
        with using_database(store.url):
            autovacuums[store.url] = _autovacuum_count()
    for round_ in range(NEW_HOURS):
        progress(f"new hours, round {round_ + 1} of {NEW_HOURS}: one in every store in turn")
        for store in stores:
            with using_database(store.url), PeakRss() as peak:
                store.asof = runner._next_hour(store.asof)
                hour, batch_ms = _one_hour(store.symbols, store.asof, store.last_ts)
                store.hours.append(hour)
                store.batch_ms[PER_BATCH["ingest_new_hour_s"]] += batch_ms
            store.peak_mb = max(store.peak_mb, peak.mb)
            store.figures["new_hour_peak_rss_mb"] = round(max(store.figures.get("new_hour_peak_rss_mb", 0), peak.mb), 1)
    for store in stores:
        out = store.figures
        out |= {k: round(statistics.median(h[k] for h in store.hours), 3) for k in store.hours[0]}
        out["new_hour_bars"] = store.hours[0]["new_hour_bars"]
        out["incremental_ms_per_symbol"] = round(out["features_incremental_s"] * 1000 / len(store.symbols), 3)
        with using_database(store.url):
            out["autovacuums_during_new_hours"] = _autovacuum_count() - autovacuums[store.url]


def _finish(store: _Store, progress: Callable[[str], None]) -> None:
    """The runs with nothing to do and the product's peak memory."""
    out = store.figures
    progress("a run with nothing to do")
    with PeakRss() as peak:
        out["noop_in_process_s"] = round(runner._timed(lambda: compute(store.symbols, "1h"))[0], 3)
    out["product_peak_rss_mb"] = round(max(store.peak_mb, peak.mb), 1)
    out["noop_command_s"] = _noop_command(store.symbols[0])


def _serve(stores: list[_Store], progress: Callable[[str], None]) -> None:
    """The serving queries of every store, in rounds through all of them (see mfs.bench.serving),
    each store vacuumed before, and the server's pending writes flushed.

    The new hours leave every store's features_latest and its packed rows with several updates
    per symbol (seven hours: 7 x N dead rows, past autovacuum's threshold of 50 + 20% of N), and
    the stores' writes in the server's buffers; without the vacuum and the checkpoint first,
    autovacuum and the checkpointer would take their turns on the two cores while the serving
    queries are timed, which a store polled hourly has behind it minutes after its write.
    ``autovacuums_during_serving`` counts the runs that remain."""
    progress("VACUUM (ANALYZE) of every store and a CHECKPOINT before the serving queries")
    autovacuums = {}
    for store in stores:
        with using_database(store.url):
            _vacuum_store()
            autovacuums[store.url] = _autovacuum_count()
    with using_database(stores[0].url):
        _checkpoint()
    with contextlib.ExitStack() as opened:
        clients = []
        for store in stores:
            with using_database(store.url):
                clients.append(serving.ServingClient(store.symbols))
            opened.callback(clients[-1].close)
        for store, figures in zip(stores, serving.in_rounds(clients, progress), strict=True):
            store.figures |= figures
    for store in stores:
        with using_database(store.url):
            store.figures["autovacuums_during_serving"] = _autovacuum_count() - autovacuums[store.url]


def _store_history(
    symbols: list[str], start: pd.Timestamp, asof: pd.Timestamp, paired: bool = False
) -> tuple[float, dict, int, list[float], list[float]]:
    """Seconds spent storing (not generating), each symbol's last bar, bars stored, each batch's
    milliseconds per symbol, and with ``paired`` those of a control batch after each: the first
    batch's frames stored into a fresh scratch database on the same server."""
    seconds, bars, last_ts, batch_ms, control_ms = 0.0, 0, {}, [], []
    control: dict[str, pd.DataFrame] = {}
    batch = _history_batch(round((asof - start) / pd.Timedelta(days=1)))
    for i in range(0, len(symbols), batch):
        frames = runner._frames(symbols[i : i + batch], start, asof, asof)
        control = control or frames
        last_ts.update({s: f["ts"].max() for s, f in frames.items()})
        bars += sum(len(f) for f in frames.values())
        batch_s = runner._ingest(frames, asof)[0]
        seconds += batch_s
        batch_ms.append(batch_s * 1000 / len(frames))
        if paired:
            control_ms.append(_control_batch(control, asof))
    return round(seconds, 3), last_ts, bars, batch_ms, control_ms


def _history_batch(days: int) -> int:
    """Symbols per batch of a history of ``days``: GENERATE_BATCH, or fewer when their bars
    would pass GENERATE_BARS."""
    return max(1, min(GENERATE_BATCH, int(GENERATE_BARS / (days * HOURLY_BARS_PER_DAY))))


def _control_batch(frames: dict[str, pd.DataFrame], asof: pd.Timestamp) -> float:
    """Milliseconds per symbol to store ``frames`` into a new, empty store (dropped after); then
    the store being built gets its connection back before its next batch is timed."""
    with scratch_database(prefix="mfs_bench_control"):
        batch_s = runner._ingest({s: f.copy() for s, f in frames.items()}, asof)[0]
    runner._execute("SELECT 1")  # the control's cleanup closed every pool
    return batch_s * 1000 / len(frames)


def _vacuum_store() -> None:
    """Vacuum and analyze the whole store now. Without it the new hours of a large universe are
    measured while autovacuum works through the backfill's chunks: at 8,000 symbols on Apache,
    autovacuum was busy for 67% and 38% of the first two hours, and they cost 1.87 and 1.81 ms per
    symbol to ingest against 1.62-1.71 once it was quiet. A 500-symbol store had no backlog left by
    then, so the overlap made only the larger scales look dearer per symbol."""
    conn = connect()
    try:
        conn.autocommit = True  # VACUUM cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE)")
    finally:
        conn.close()


def _checkpoint() -> None:
    """CHECKPOINT, where the store's role may (a superuser or a member of pg_checkpoint, as the
    local clusters' owner is); elsewhere the server's own schedule stands."""
    allowed = "SELECT rolsuper OR pg_has_role('pg_checkpoint', 'MEMBER') FROM pg_roles WHERE rolname = current_user"
    if runner._execute(allowed)[0][0]:
        runner._execute("CHECKPOINT")


def _autovacuum_count() -> int:
    """Autovacuum and autoanalyze runs completed on the store's tables so far."""
    return int(
        runner._execute("SELECT COALESCE(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_all_tables")[0][0]
    )


def _one_hour(symbols: list[str], next_asof: pd.Timestamp, last_ts: dict) -> tuple[dict, list[float]]:
    """One new hour's figures, and its ingest's milliseconds per symbol of each batch."""
    out: dict[str, Any] = {"ingest_new_hour_s": 0.0, "new_hour_bars": 0}
    batch_ms = []
    for i in range(0, len(symbols), GENERATE_BATCH):
        batch = symbols[i : i + GENERATE_BATCH]
        frames = runner._frames(batch, next_asof - pd.Timedelta(hours=2), next_asof, next_asof)
        frames = {s: f[f["ts"] > last_ts[s]] for s, f in frames.items()}
        last_ts.update({s: f["ts"].max() for s, f in frames.items() if len(f)})
        out["new_hour_bars"] += sum(len(f) for f in frames.values())
        batch_s = runner._ingest(frames, next_asof)[0]
        out["ingest_new_hour_s"] += batch_s
        batch_ms.append(batch_s * 1000 / len(batch))
    seconds, report = runner._timed(lambda: compute(symbols, "1h"))
    runner._expect_written(report, out["new_hour_bars"], "incremental feature run")
    out["features_incremental_s"] = seconds
    out["aggregate_refresh_s"] = runner._timed(runner._refresh)[0]
    return out, batch_ms


def _noop_command(symbol: str) -> float:
    """Wall seconds of a fresh ``mfs features`` process for one symbol with nothing new: imports,
    configuration, the registry and the decision that nothing is to be done."""
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mfs", "features", "--symbols", symbol, "--interval", "1h"],
        check=True,
        capture_output=True,
    )
    return round(time.perf_counter() - began, 3)
