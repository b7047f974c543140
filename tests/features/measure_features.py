"""Measure a features run (not a test: timings are measured, never asserted).

    .venv/bin/python tests/features/measure_features.py --symbols 500 --bars 1750

Creates a throwaway database on the local cluster, loads ``--symbols`` random-walk series of
``--bars`` hourly bars, then times a full backfill and an incremental run (one new bar per
symbol) while sampling pg_stat_activity (connections) and psutil (RSS of the orchestrator and its
worker processes). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    from feature_helpers import insert_bars, make_bars

    from mfs.config import get_config
    from mfs.features import compute
    from mfs.storage import migrations
    from mfs.storage.connection import connect, dispose_engines, with_database
    from mfs.storage.localdb import default_cluster

    parser = argparse.ArgumentParser()
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--bars", type=int, default=1750)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    server = default_cluster().url()
    name = f"mfs_measure_{os.getpid()}"
    url = with_database(server, name)
    migrations.ensure_database(url)
    migrations.migrate(url)
    os.environ["MFS_DATABASE_URL"] = url
    get_config.cache_clear()
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    conn = connect(url)
    t0 = time.perf_counter()
    for i, s in enumerate(symbols):
        insert_bars(conn, s, "1h", make_bars(args.bars + 1, seed=i).iloc[: args.bars])
    load_s = time.perf_counter() - t0

    def measured(label: str, **kw) -> dict:
        peak = {"connections": 0, "worker_connections": 0, "rss_orchestrator_mb": 0.0, "rss_workers_mb": 0.0,
                "rss_worker_max_mb": 0.0, "live_workers": 0}
        stop = threading.Event()
        me = psutil.Process()
        watcher = connect(url, autocommit=True)

        def sample():
            with watcher.cursor() as cur:
                while not stop.is_set():
                    cur.execute("SELECT count(*), count(*) FILTER (WHERE application_name = 'mfs-features-worker') "
                                "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                    total, workers = cur.fetchone()
                    peak["connections"] = max(peak["connections"], total)
                    peak["worker_connections"] = max(peak["worker_connections"], workers)
                    kids = [p for p in me.children(recursive=True)]
                    rss = []
                    for p in kids:
                        try:
                            rss.append(p.memory_info().rss / 2**20)
                        except psutil.NoSuchProcess:
                            pass
                    peak["rss_orchestrator_mb"] = max(peak["rss_orchestrator_mb"], me.memory_info().rss / 2**20)
                    peak["rss_workers_mb"] = max(peak["rss_workers_mb"], sum(rss))
                    peak["rss_worker_max_mb"] = max(peak["rss_worker_max_mb"], max(rss, default=0))
                    peak["live_workers"] = max(peak["live_workers"], len(kids))
                    stop.wait(0.02)

        thread = threading.Thread(target=sample)
        thread.start()
        start = time.perf_counter()
        try:
            report = compute(symbols, "1h", **kw)
        finally:
            stop.set()
            thread.join()
            watcher.close()
        counts = report.counts()
        return {"run": label, "seconds": round(time.perf_counter() - start, 2),
                "worker_busy_seconds": round(sum(r.duration_s for r in report.results), 2),
                "symbols_ok": counts.get("symbols_ok", 0), "rows_written": counts.get("written", 0),
                "worker_processes": len(report.extra["worker_pids"]),
                **{k: round(v, 1) if isinstance(v, float) else v for k, v in peak.items()}}

    results = {"symbols": args.symbols, "bars": args.bars, "load_seconds": round(load_s, 1),
               "workers": get_config().features.workers, "cpu_count": os.cpu_count()}
    results["full"] = measured("full", full=True)
    for i, s in enumerate(symbols):  # one new hourly bar per symbol, as after an hourly collection
        insert_bars(conn, s, "1h", make_bars(args.bars + 1, seed=i).iloc[args.bars:])
    results["incremental"] = measured("incremental")
    results["noop"] = measured("incremental, nothing new")
    conn.close()
    dispose_engines()
    if not args.keep:
        migrations.drop_database(url)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
