"""Retention, community-license policies, and what runs after every migrate.

Retention keeps the aggregates: raw bars and features older than ``aggregates.retention_days``
are dropped chunk by chunk (``drop_chunks`` fires no row triggers, so the rollups keep their
history — that is the point of a rollup). On the community license the same is a retention
policy, set with the other policies by ``apply_policies``.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg2.errors

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

    Dropping a chunk needs an exclusive lock on it. A query still reading an old chunk would make
    drop_chunks wait, and every later query touching it would queue behind that wait; so each
    table's drop gives up after ``aggregates.retention_lock_timeout_s`` (the statement is atomic:
    nothing of that table is dropped), is reported in ``skipped`` and retried by the next run.

    Returns ``{"retention_days", "dropped": {table: [chunk, …]}, "skipped": {table: reason}, "seconds"}``.
    """
    cfg = get_config().aggregates
    days = retention_days if retention_days is not None else cfg.retention_days
    started = time.monotonic()
    dropped: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    if days is not None:
        conn = connect(url, autocommit=True, application_name="mfs-retention")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT set_config('lock_timeout', %s, false)",
                            (f"{round(cfg.retention_lock_timeout_s * 1000)}ms",))
                for table in RETAINED_TABLES:  # fixed names, not user input
                    try:
                        cur.execute("SELECT drop_chunks(%s::regclass, older_than => now() - make_interval(days => %s))",
                                    (table, days))
                    except psycopg2.errors.LockNotAvailable:
                        skipped[table] = (f"old chunks still in use after {cfg.retention_lock_timeout_s:g} s "
                                          "(a running query); nothing dropped, the next run retries")
                        log.warning("retention skipped", table=table, reason=skipped[table])
                        continue
                    dropped[table] = [r[0] for r in cur.fetchall()]
        finally:
            conn.close()
    result = {"retention_days": days, "dropped": dropped, "skipped": skipped,
              "seconds": round(time.monotonic() - started, 3)}
    log.info("retention applied", **result)
    return result


def apply_policies(url: str | None = None) -> str | None:
    """Community license: set refresh, compression and retention policies from config.
    Returns "applied", "unchanged" (the policies already match: their schedule and run history
    are kept), or None on the Apache edition, which has no policies (the pipeline refreshes and
    runs ``retention`` itself)."""
    cfg = get_config()
    values = (cfg.ingest.incremental_days, cfg.aggregates.retention_days)
    conn = connect(url, autocommit=True, application_name="mfs-policies")
    try:
        if migrations.edition(conn) != "timescale":
            return None
        with conn.cursor() as cur:
            cur.execute("SELECT mfs_policies_match(%s, %s)", values)
            if cur.fetchone()[0]:
                return "unchanged"
            cur.execute("SELECT mfs_apply_policies(%s, %s)", values)
    finally:
        conn.close()
    return "applied"


def after_migrate(url: str | None = None) -> list[str]:
    """Everything the serving layer needs once the schema is current; returns what it did."""
    done = [f"password set for {role}" for role in sync_role_passwords(url)]
    counts = sync_sessions(url)
    if counts.inserted or counts.updated:
        done.append(f"market sessions: {counts.inserted} added, {counts.updated} updated")
    if apply_policies(url) == "applied":
        done.append("aggregate, compression and retention policies applied")
    return done
