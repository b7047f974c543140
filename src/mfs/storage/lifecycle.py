"""Stop the local cluster and describe the store (the bring-up is ``mfs.provisioning.up``, which
builds on storage and the aggregates)."""

from __future__ import annotations

from typing import Any

from mfs.errors import StorageError
from mfs.logs import get_logger
from mfs.storage import migrations
from mfs.storage.connection import connect, database_url, external_url, masked
from mfs.storage.localdb import default_cluster

log = get_logger("mfs.storage.lifecycle")


def edition_note(url: str) -> str | None:
    """One line when the store's schema edition differs from the server's license."""
    conn = connect(url, application_name="mfs-status")
    try:
        store, server = migrations.edition(conn), migrations.license(conn)
    finally:
        conn.close()
    if store == server:
        return None
    return ("note: this store was built on the Apache edition and keeps its trigger-maintained rollups "
            f"(the server offers the {server} license's continuous aggregates); to switch, load the data "
            "into a new store: `mfs db down`, move .mfs/pg aside, `mfs db up`, `mfs backfill`")


def down() -> str:
    if external_url():
        return "MFS_DATABASE_URL is set: the external server is not ours to stop"
    cluster = default_cluster()
    if not cluster.running():
        return "local cluster is not running"
    cluster.stop()
    return "local cluster stopped"


def _continuous_aggregates(cur) -> list[dict[str, Any]]:
    """Each continuous aggregate, real-time or not, and its refresh watermark (materialized up to)."""
    cur.execute(
        # A never-refreshed aggregate's watermark is the smallest timestamp: reported as NULL.
        """SELECT c.view_name, c.materialized_only,
                  CASE WHEN w.mark > 0 THEN _timescaledb_functions.to_timestamp(w.mark) END
           FROM timescaledb_information.continuous_aggregates c
           JOIN _timescaledb_catalog.hypertable h
             ON h.schema_name = c.materialization_hypertable_schema
            AND h.table_name = c.materialization_hypertable_name
           CROSS JOIN LATERAL (SELECT _timescaledb_functions.cagg_watermark(h.id) AS mark) w
           ORDER BY c.view_name"""
    )
    return [{"name": name, "real_time": not mat_only, "watermark": mark.isoformat() if mark else None}
            for name, mat_only, mark in cur.fetchall()]


def _jobs(cur) -> list[dict[str, Any]]:
    """TimescaleDB's scheduled jobs (refresh, compression, retention policies) and their last run."""
    cur.execute(
        """SELECT j.job_id, j.proc_name, coalesce(j.hypertable_name, ''), j.schedule_interval::text,
                  s.last_run_started_at, s.last_run_status, s.next_start, coalesce(s.total_failures, 0)
           FROM timescaledb_information.jobs j
           LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
           WHERE j.job_id >= 1000 ORDER BY j.proc_name, j.hypertable_name"""
    )
    kinds = {"policy_refresh_continuous_aggregate": "refresh", "policy_compression": "compression",
             "policy_columnstore": "compression", "policy_retention": "retention"}
    return [{"id": job_id, "kind": kinds.get(proc, proc), "relation": relation, "every": every,
             "last_run": last.isoformat() if last else None, "last_status": status or "never ran",
             "next_start": nxt.isoformat() if nxt else None, "failures": failures}
            for job_id, proc, relation, every, last, status, nxt, failures in cur.fetchall()]


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
                                   "license": migrations.license(conn) if row else None,
                                   "store_edition": migrations.edition(conn) if row else None}
            if row and info["timescaledb"]["store_edition"] == "timescale":
                info["continuous_aggregates"] = _continuous_aggregates(cur)
                info["jobs"] = _jobs(cur)
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
