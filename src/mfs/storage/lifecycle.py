"""Stop the local cluster and describe the store (the bring-up is ``mfs.provisioning.up``, which
builds on storage and the aggregates)."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from mfs.errors import StorageError
from mfs.logs import get_logger
from mfs.storage import migrations
from mfs.storage.clock import set_write_context
from mfs.storage.connection import connect, database_url, external_url, masked
from mfs.storage.localdb import default_cluster, edition_cluster, ensure_server_installed
from mfs.storage.replica import Standby, standbys
from mfs.storage.types import Connection, Cursor, one_row

log = get_logger("mfs.storage.lifecycle")


def start_edition_cluster(edition: str) -> str:
    """Install if needed, initialise and start the local cluster running ``edition`` (tests and
    side-by-side benchmarks use the second one) with its store database; its admin URL."""
    ensure_server_installed()
    cluster = edition_cluster(edition)
    cluster.init()
    cluster.start()
    migrations.ensure_database(cluster.url())
    return cluster.url()


# What ``store_status`` returns: dicts, as ``mfs status --json`` prints them (scripts read the keys).
class LocalCluster(TypedDict):
    data_dir: str
    port: int
    running: bool


class TimescaleInfo(TypedDict):
    version: str | None  # None: the extension is not installed
    license: str | None  # the server's timescaledb.license
    store_edition: str | None  # the edition this store's schema was built for


class Hypertable(TypedDict):
    name: str
    chunks: int


class ContinuousAggregate(TypedDict):
    name: str
    real_time: bool
    watermark: str | None  # materialized up to (ISO); None: never refreshed


class Job(TypedDict):
    id: int
    kind: str  # refresh, compression, retention
    relation: str
    every: str
    last_run: str | None
    last_status: str
    next_start: str | None
    failures: int


class StoreStatus(TypedDict):
    url: str  # password masked
    external: bool  # MFS_DATABASE_URL names a server that is not ours
    local_cluster: NotRequired[LocalCluster]  # only for the local cluster
    server_version: str
    timescaledb: TimescaleInfo
    continuous_aggregates: NotRequired[list[ContinuousAggregate]]  # the community edition's only
    jobs: NotRequired[list[Job]]  # likewise
    migrations: list[str]
    hypertables: list[Hypertable]
    row_counts: dict[str, int]
    feature_registry: NotRequired[dict[str, int]]  # registered feature versions per state
    data_quality: NotRequired[dict[str, int]]  # open anomalies by severity, bars held back, actions known
    feature_monitoring: NotRequired[dict[str, Any]]  # newest audit, drifting features, served-vs-final skew
    replication: NotRequired[list[Standby]]  # the standbys streaming from this server, with their lag


def edition_note(url: str) -> str | None:
    """One line when the store's schema edition differs from the server's license."""
    conn = connect(url, application_name="mfs-status")
    try:
        store, server = migrations.edition(conn), migrations.license(conn)
    finally:
        conn.close()
    if store == server:
        return None
    return (
        "note: this store was built on the Apache edition and keeps its trigger-maintained rollups "
        f"(the server offers the {server} license's continuous aggregates); to switch, load the data "
        "into a new store: `mfs db down`, move .mfs/pg aside, `mfs db up`, `mfs backfill`"
    )


def down() -> str:
    if external_url():
        return "MFS_DATABASE_URL is set: the external server is not ours to stop"
    cluster = default_cluster()
    if not cluster.running():
        return "local cluster is not running"
    cluster.stop()
    return "local cluster stopped"


def _continuous_aggregates(cur: Cursor) -> list[ContinuousAggregate]:
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
    return [
        {"name": name, "real_time": not mat_only, "watermark": mark.isoformat() if mark else None}
        for name, mat_only, mark in cur.fetchall()
    ]


def _jobs(cur: Cursor) -> list[Job]:
    """TimescaleDB's scheduled jobs (refresh, compression, retention policies) and their last run."""
    cur.execute(
        """SELECT j.job_id, j.proc_name, coalesce(j.hypertable_name, ''), j.schedule_interval::text,
                  s.last_run_started_at, s.last_run_status, s.next_start, coalesce(s.total_failures, 0)
           FROM timescaledb_information.jobs j
           LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
           WHERE j.job_id >= 1000 ORDER BY j.proc_name, j.hypertable_name"""
    )
    kinds = {
        "policy_refresh_continuous_aggregate": "refresh",
        "policy_compression": "compression",
        "policy_columnstore": "compression",
        "policy_retention": "retention",
    }
    return [
        {
            "id": job_id,
            "kind": kinds.get(proc, proc),
            "relation": relation,
            "every": every,
            "last_run": last.isoformat() if last else None,
            "last_status": status or "never ran",
            "next_start": nxt.isoformat() if nxt else None,
            "failures": failures,
        }
        for job_id, proc, relation, every, last, status, nxt, failures in cur.fetchall()
    ]


def _local_cluster() -> LocalCluster:
    cluster = default_cluster()
    if not cluster.running():
        raise StorageError("the local cluster is not running: start it with `mfs db up`")
    return {"data_dir": str(cluster.data_dir), "port": cluster.port, "running": True}


def _timescaledb(conn: Connection, cur: Cursor) -> TimescaleInfo:
    cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    row = cur.fetchone()
    if not row:
        return {"version": None, "license": None, "store_edition": None}
    return {"version": row[0], "license": migrations.license(conn), "store_edition": migrations.edition(conn)}


def _hypertables(cur: Cursor) -> list[Hypertable]:
    cur.execute(
        """SELECT h.hypertable_name, h.num_chunks,
                  (SELECT count(*) FROM show_chunks(format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass))
           FROM timescaledb_information.hypertables h ORDER BY 1"""
    )
    return [{"name": name, "chunks": chunks} for name, chunks, _ in cur.fetchall()]


def _row_counts(cur: Cursor) -> dict[str, int]:
    counts = {}
    tables = ("symbols", "market_data", "market_data_revisions", "features", "features_revisions", "quarantine")
    for table in (*tables, "pipeline_runs"):
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        if one_row(cur)[0]:
            cur.execute(f"SELECT count(*) FROM {table}")  # names from the fixed list above
            counts[table] = one_row(cur)[0]
    return counts


def _feature_registry(cur: Cursor) -> dict[str, int] | None:
    cur.execute("SELECT to_regclass('feature_registry') IS NOT NULL")
    if not one_row(cur)[0]:
        return None
    cur.execute(
        """SELECT CASE WHEN pruned_at IS NOT NULL THEN 'pruned' WHEN superseded_at IS NOT NULL THEN 'superseded'
                       WHEN retired_at IS NOT NULL THEN 'retired' WHEN filled_at IS NULL THEN 'unfilled'
                       ELSE 'active' END AS state, count(*)
           FROM feature_registry GROUP BY 1"""
    )
    counts = dict.fromkeys(("active", "unfilled", "retired", "superseded", "pruned"), 0)
    counts.update(dict(cur.fetchall()))
    return counts


def _data_quality(cur: Cursor) -> dict[str, int] | None:
    """Open anomalies by severity, bars held back and corporate actions currently known."""
    cur.execute("SELECT to_regclass('anomalies') IS NOT NULL")
    if not one_row(cur)[0]:
        return None
    cur.execute(
        """SELECT count(*) FILTER (WHERE severity = 'high'), count(*) FILTER (WHERE severity = 'warning'),
                  count(*) FILTER (WHERE severity = 'info'), count(*) FILTER (WHERE held),
                  (SELECT count(*) FROM corporate_actions WHERE known_to = 'infinity')
           FROM anomalies WHERE resolved_at IS NULL"""
    )
    high, warning, info, held, actions = one_row(cur)
    return {"open_high": high, "open_warning": warning, "open_info": info, "held_back": held, "actions": actions}


def _feature_monitoring(cur: Cursor) -> dict[str, Any] | None:
    """The newest self-audit, the features drifting in the newest drift checks, and the three
    features whose values served on partial bars of the last 7 days were furthest (median,
    relative) from the complete values (sql/090)."""
    cur.execute("SELECT to_regclass('feature_audits') IS NOT NULL")
    if not (cur.fetchone() or (False,))[0]:
        return None
    set_write_context(cur)  # "the last 7 days" on the store's clock (MFS_CLOCK when pinned)
    cur.execute(
        """SELECT started_at, passed, array_length(symbols, 1), worst_rel_diff, mismatching_rows
           FROM feature_audits ORDER BY id DESC LIMIT 1"""
    )
    audit = cur.fetchone()
    cur.execute(
        """SELECT count(*) FILTER (WHERE status IN ('ok', 'drift')), count(*), max(recent_to),
                  coalesce(array_agg(feature || ' ' || interval || ' (' || symbol_group || ')' ORDER BY psi DESC)
                           FILTER (WHERE drifting), '{}')
           FROM feature_drift"""
    )
    judged, checked, newest, drifting = cur.fetchone() or (0, 0, None, [])
    cur.execute(
        """SELECT count(DISTINCT (symbol, interval, ts, served_from)) FROM feature_skew_rows
           WHERE partial AND ts > mfs_now() - interval '7 days'"""
    )
    (partial,) = cur.fetchone() or (0,)
    cur.execute(
        """SELECT feature, percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(diff) / nullif(abs(final), 0)) AS skew
           FROM feature_skew_rows WHERE partial AND ts > mfs_now() - interval '7 days'
           GROUP BY feature ORDER BY skew DESC NULLS LAST LIMIT 3"""
    )
    return {
        "audit": None
        if audit is None
        else dict(zip(("at", "passed", "symbols", "worst_rel_diff", "mismatching_rows"), audit, strict=True)),
        "drift_checked": checked,
        "drift_judged": judged,  # with enough values for a verdict (ok or drift)
        "drift_newest_session": newest,
        "drifting": list(drifting),
        "partial_versions_7d": partial,
        "largest_partial_skew": [(f, s) for f, s in cur.fetchall() if s is not None],
    }


def store_status(url: str | None = None) -> StoreStatus:
    """Server and TimescaleDB versions, edition, migrations, hypertables and row counts."""
    url = url or database_url()
    external = external_url() is not None
    cluster = None if external else _local_cluster()
    conn = connect(url, application_name="mfs-status")
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            (server_version,) = cur.fetchone() or ("",)
            tsdb = _timescaledb(conn, cur)
            info: StoreStatus = {
                "url": masked(url),
                "external": external,
                "server_version": server_version,
                "timescaledb": tsdb,
                "migrations": [f"{v:03d}_{n}" for v, (n, _c) in migrations.applied(conn).items()],
                "hypertables": _hypertables(cur) if tsdb["version"] else [],
                "row_counts": _row_counts(cur),
            }
            registry = _feature_registry(cur)
            if registry is not None:
                info["feature_registry"] = registry
            if (quality := _data_quality(cur)) is not None:
                info["data_quality"] = quality
            if (monitoring := _feature_monitoring(cur)) is not None:
                info["feature_monitoring"] = monitoring
            info["replication"] = standbys(cur)
            if tsdb["store_edition"] == "timescale":
                info["continuous_aggregates"] = _continuous_aggregates(cur)
                info["jobs"] = _jobs(cur)
    finally:
        conn.close()
    if cluster is not None:
        info["local_cluster"] = cluster
    return info
