"""Retention, community-license policies, and what runs after every migrate.

Retention keeps the aggregates: raw bars and features older than ``aggregates.retention_days``
are dropped chunk by chunk (``drop_chunks`` fires no row triggers, so the rollups keep their
history — that is the point of a rollup). On the community license the same is a retention
policy, set with the other policies by ``apply_policies``.
"""

from __future__ import annotations

import time
from typing import Any

from mfs.aggregates.roles import sync_role_passwords
from mfs.aggregates.sessions import sync_sessions
from mfs.config import get_config
from mfs.logs import get_logger
from mfs.storage import migrations
from mfs.storage.connection import connect

RETAINED_TABLES = ("market_data", "features")
log = get_logger("mfs.aggregates.maintenance")


def retention(url: str | None = None, retention_days: int | None = None) -> dict[str, Any]:
    """Drop raw chunks entirely older than the retention window; no-op when not configured.

    Returns ``{"retention_days", "dropped": {table: [chunk, …]}, "seconds"}``.
    """
    days = retention_days if retention_days is not None else get_config().aggregates.retention_days
    started = time.monotonic()
    dropped: dict[str, list[str]] = {}
    if days is not None:
        conn = connect(url, autocommit=True, application_name="mfs-retention")
        try:
            with conn.cursor() as cur:
                for table in RETAINED_TABLES:  # fixed names, not user input
                    cur.execute("SELECT drop_chunks(%s::regclass, older_than => now() - make_interval(days => %s))",
                                (table, days))
                    dropped[table] = [r[0] for r in cur.fetchall()]
        finally:
            conn.close()
    result = {"retention_days": days, "dropped": dropped, "seconds": round(time.monotonic() - started, 3)}
    log.info("retention applied", **result)
    return result


def apply_policies(url: str | None = None) -> bool:
    """Community license: (re)set refresh, compression and retention policies from config.
    Returns False on the Apache edition, which has no policies (the pipeline refreshes and runs
    ``retention`` itself)."""
    cfg = get_config()
    conn = connect(url, autocommit=True, application_name="mfs-policies")
    try:
        if migrations.edition(conn) != "timescale":
            return False
        with conn.cursor() as cur:
            cur.execute("SELECT mfs_apply_policies(%s, %s)",
                        (cfg.ingest.incremental_days, cfg.aggregates.retention_days))
    finally:
        conn.close()
    return True


def after_migrate(url: str | None = None) -> list[str]:
    """Everything the serving layer needs once the schema is current; returns what it did."""
    done = [f"password set for {role}" for role in sync_role_passwords(url)]
    counts = sync_sessions(url)
    if counts.inserted or counts.updated:
        done.append(f"market sessions: {counts.inserted} added, {counts.updated} updated")
    if apply_policies(url):
        done.append("aggregate, compression and retention policies applied")
    return done
