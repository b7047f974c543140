"""Backups, restores and the replica, measured (``mfs bench --backup``): on a throwaway local cluster
archiving to a pgBackRest repository of its own, the bench store (``n`` symbols × ``days`` of
hourly bars, features, aggregates, history compressed as the policy leaves it) is backed up in
full; then a simulated trading day of hourly runs (ingest, incremental features, refresh) streams
to an asynchronous replica while its lag is sampled; then a differential backup, and a restore of
the newest state into a fresh folder.

Figures: full backup seconds and bytes (data, repository), WAL bytes per trading day (written, and
archived compressed), the replica's lag during the hourly runs (bytes and seconds, maximum and
median) and its catch-up after each, differential backup seconds and bytes, restore seconds.
"""

from __future__ import annotations

import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from mfs import calendar
from mfs.bench.compression import compress_history
from mfs.bench.runner import _frames, _ingest, _refresh, bench_symbols, pinned_asof
from mfs.bench.scratch import using_database
from mfs.features import compute
from mfs.storage import backup, migrations, replica
from mfs.storage.connection import connect, dispose_pools
from mfs.storage.localdb import LocalCluster

SAMPLE_S = 0.1  # the replica's lag is read this often during a run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LagSampler(threading.Thread):
    """Reads the replica's lag as the primary sees it (pg_stat_replication) until stopped."""

    def __init__(self, primary: LocalCluster):
        super().__init__(daemon=True)
        self.primary = primary
        self.bytes: list[int] = []
        self.seconds: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        conn = connect(self.primary.url("postgres"), autocommit=True, application_name="mfs-bench-lag")
        try:
            with conn.cursor() as cur:
                while not self.done.is_set():
                    for standby in replica.standbys(cur):
                        self.bytes.append(standby["lag_bytes"])
                        self.seconds.append(standby["replay_lag_s"] or 0.0)
                    time.sleep(SAMPLE_S)
        finally:
            conn.close()


def _lsn(cluster: LocalCluster) -> str:
    conn = connect(cluster.url("postgres"), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn()::text")
            return cur.fetchone()[0]  # type: ignore[index]
    finally:
        conn.close()


def _wal_between(cluster: LocalCluster, start: str, end: str) -> int:
    conn = connect(cluster.url("postgres"), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint", (end, start))
            return cur.fetchone()[0]  # type: ignore[index]
    finally:
        conn.close()


def _fill(symbols: list[str], days: int, progress: Callable[[str], None]) -> tuple[pd.Timestamp, dict]:
    """The bench store: a year of bars, every feature, the aggregates, the history compressed."""
    asof = pinned_asof()
    progress(f"generating and storing {len(symbols)} symbols × {days} days of hourly bars")
    frames = _frames(symbols, asof - pd.Timedelta(days=days), asof, asof)
    _ingest(frames, asof)
    last_ts = {s: f["ts"].max() for s, f in frames.items()}
    del frames
    progress("feature backfill, aggregate refresh, compression of the history")
    compute(symbols, "1h", full=True)
    _refresh()
    compress_history(asof)
    # A store that has run for a while: autovacuum has frozen its pages. Without this the first
    # vacuum after the bulk load rewrites nearly every page, and the first differential backup
    # copies nearly the whole store again (234 of 267 MB at 500 symbols, 2026-12-07).
    conn = connect(autocommit=True, application_name="mfs-bench-backup")
    try:
        with conn.cursor() as cur:
            cur.execute("VACUUM (FREEZE, ANALYZE)")
    finally:
        conn.close()
    return asof, last_ts


def _trading_day(
    primary: LocalCluster, symbols: list[str], asof: pd.Timestamp, last_ts: dict, progress: Callable[[str], None]
) -> dict[str, Any]:
    """The next session's hourly runs (ingest, features, refresh), with the replica's lag sampled."""
    starts = calendar.hourly_bar_starts(asof, asof + pd.Timedelta(days=10))
    starts = starts[starts > asof]
    day = starts[starts.normalize() == starts[0].normalize()]  # one session's bars (UTC day)
    first_lsn = _lsn(primary)
    sampler = LagSampler(primary)
    sampler.start()
    catch_up, run_s, previous = [], [], asof
    try:
        for bar in day:
            now = bar + pd.Timedelta(minutes=59)
            progress(f"hourly run for the {bar:%H:%M} UTC bar, replica lag sampled every {SAMPLE_S:g} s")
            began = time.perf_counter()
            new = _frames(symbols, previous - pd.Timedelta(hours=1), now, now)
            _ingest({s: f[f["ts"] > last_ts[s]] for s, f in new.items()}, now)
            last_ts = {s: max(last_ts[s], new[s]["ts"].max()) for s in symbols}
            compute(symbols, "1h")
            _refresh()
            run_s.append(time.perf_counter() - began)
            catch_up.append(replica.wait_for_catch_up(primary, 600))
            previous = now
    finally:
        sampler.done.set()
        sampler.join()
    wal = _wal_between(primary, first_lsn, _lsn(primary))
    return {
        "hourly_runs": len(day),
        "hourly_run_s_median": round(statistics.median(run_s), 2),
        "wal_bytes_per_trading_day": wal,
        "replica_lag_bytes_max": max(sampler.bytes, default=0),
        "replica_lag_bytes_median": int(statistics.median(sampler.bytes or [0])),
        "replica_replay_lag_s_max": round(max(sampler.seconds, default=0.0), 3),
        "replica_catch_up_s_max": round(max(catch_up), 3),
    }


def _cluster(home: Path, name: str) -> LocalCluster:
    return LocalCluster(root=home / name, port=_free_port(), dbname="bench")


def run(n_symbols: int = 500, days: int = 365, progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="mfs-bench-backup-"))
    home.chmod(0o755)  # the server's user must reach it
    primary, standby, restored = _cluster(home, "pg"), _cluster(home, "replica"), _cluster(home, "restored")
    repo = backup.Repository(home / "repo", "bench", 2, "zst", 2)
    out: dict[str, Any] = {"symbols": n_symbols, "days": days}
    try:
        primary.init()
        primary.start()
        backup.enable_archiving(primary, repo)
        url = primary.url()
        migrations.ensure_database(url)
        migrations.migrate(url)  # as the main bench's scratch store: no policies (their jobs would
        # refresh the aggregates concurrently with the runs' own refresh and fail it)
        with using_database(url):
            symbols = bench_symbols(n_symbols)
            asof, last_ts = _fill(symbols, days, progress)
            progress("full backup")
            started = time.perf_counter()
            full = backup.backup(primary, repo, full=True)
            out |= {
                "full_backup_s": round(time.perf_counter() - started, 2),
                "database_bytes": full.database_bytes,
                "full_backup_repo_bytes": full.repo_bytes,
            }
            progress("streaming replica (asynchronous)")
            replica.start(primary, standby, synchronous=False)
            _, archived_before = backup.archived_wal(primary, repo)
            out |= _trading_day(primary, symbols, asof, last_ts, progress)
            backup.pgbackrest(primary, repo, "check")  # the day's last segment closed and archived
            _, archived_after = backup.archived_wal(primary, repo)
            out["wal_archived_bytes_per_trading_day"] = archived_after - archived_before
            progress("differential backup")
            started = time.perf_counter()
            diff = backup.backup(primary, repo)
            out |= {"diff_backup_s": round(time.perf_counter() - started, 2), "diff_backup_repo_bytes": diff.repo_bytes}
            progress("restore of the newest state into a fresh folder")
            out["restore_s"] = backup.restore(primary, repo, target=restored).seconds
    finally:
        dispose_pools()
        for cluster in (restored, standby, primary):
            if cluster.initialized():
                cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    return out
