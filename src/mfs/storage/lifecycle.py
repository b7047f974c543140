"""Bring the store up (local cluster or MFS_DATABASE_URL), tear it down, describe it."""

from __future__ import annotations

import time
from typing import Any

from mfs.errors import StorageError
from mfs.logs import get_logger
from mfs.storage import migrations
from mfs.storage.connection import connect, database_url, external_url, masked
from mfs.storage.localdb import default_cluster, ensure_server_installed

log = get_logger("mfs.storage.lifecycle")


def up(progress=lambda message: None) -> dict[str, Any]:
    """Idempotent: install/init/start the local cluster when no external URL, create the
    database, apply migrations. Returns what it did."""
    started = time.monotonic()
    actions: list[str] = []
    url = external_url()
    if url is None:
        cluster = default_cluster()
        progress("checking PostgreSQL + TimescaleDB installation")
        ensure_server_installed()
        if not cluster.initialized():
            progress(f"initialising local cluster in {cluster.data_dir}")
            cluster.init()
            actions.append("initialised cluster")
        if not cluster.running():
            progress(f"starting PostgreSQL on 127.0.0.1:{cluster.port}")
            cluster.start()
            actions.append("started server")
        url = cluster.url()
    progress("creating database and applying migrations")
    migrations.ensure_database(url)
    applied = migrations.migrate(url)
    actions += [f"applied {name}" for name in applied]
    # Role passwords from the environment, NYSE sessions table, community-license policies.
    from mfs.aggregates import after_migrate  # local import: aggregates builds on storage

    actions += after_migrate(url)
    return {"url": masked(url), "external": external_url() is not None, "actions": actions,
            "seconds": round(time.monotonic() - started, 2)}


def down() -> str:
    if external_url():
        return "MFS_DATABASE_URL is set: the external server is not ours to stop"
    cluster = default_cluster()
    if not cluster.running():
        return "local cluster is not running"
    cluster.stop()
    return "local cluster stopped"


def store_status(url: str | None = None) -> dict[str, Any]:
    """Server and TimescaleDB versions, edition, migrations, hypertables and row counts."""
    url = url or database_url()
    info: dict[str, Any] = {"url": masked(url), "external": external_url() is not None}
    if not info["external"]:
        cluster = default_cluster()
        info["local_cluster"] = {"data_dir": str(cluster.data_dir), "port": cluster.port, "running": cluster.running()}
        if not cluster.running():
            raise StorageError("the local cluster is not running: start it with `mfs db up`")
    conn = connect(url, application_name="mfs-status")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            info["server_version"] = cur.fetchone()[0]
            cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
            row = cur.fetchone()
            info["timescaledb"] = {"version": row[0] if row else None,
                                   "license": migrations.edition(conn) if row else None}
            info["migrations"] = [f"{v:03d}_{n}" for v, (n, _c) in migrations.applied(conn).items()]
            hypertables = []
            if row:
                cur.execute(
                    """SELECT h.hypertable_name, h.num_chunks,
                              (SELECT count(*) FROM show_chunks(format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass))
                       FROM timescaledb_information.hypertables h ORDER BY 1"""
                )
                hypertables = [{"name": name, "chunks": chunks} for name, chunks, _ in cur.fetchall()]
            info["hypertables"] = hypertables
            counts = {}
            for table in ("symbols", "market_data", "features", "quarantine", "pipeline_runs"):
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                if cur.fetchone()[0]:
                    cur.execute(f"SELECT count(*) FROM {table}")  # names from the fixed list above
                    counts[table] = cur.fetchone()[0]
            info["row_counts"] = counts
    finally:
        conn.close()
    return info
