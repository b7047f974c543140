"""Retention that keeps the aggregates: raw bars and features older than
``aggregates.retention_days`` are dropped chunk by chunk (``drop_chunks`` fires no row triggers,
so the rollups keep their history — that is the point of a rollup). On the community license the
same runs as a TimescaleDB retention policy (``mfs.provisioning.apply_policies``).
"""

from __future__ import annotations

import time
from typing import TypedDict

import psycopg2.errors

from mfs.config import get_config
from mfs.logs import get_logger
from mfs.storage.connection import connect

RETAINED_TABLES = ("market_data", "features", "market_data_revisions", "features_revisions", "feature_stats")
log = get_logger("mfs.aggregates.retention")


class RetentionResult(TypedDict):
    """What a retention run did. A dict: ``mfs aggregates retention --json`` prints it, the
    full-backfill flow returns it, and describe_retention logs it in words."""

    retention_days: int | None  # None: not configured, nothing dropped
    dropped: dict[str, list[str]]  # per table: the chunks dropped
    skipped: dict[str, str]  # per table: why nothing was dropped (the next run retries)
    seconds: float


def retention(url: str | None = None, retention_days: int | None = None) -> RetentionResult:
    """Drop raw chunks entirely older than the retention window; no-op when not configured.

    Dropping a chunk needs an exclusive lock on it. A query still reading an old chunk would make
    drop_chunks wait, and every later query touching it would queue behind that wait; so each
    table's drop gives up after ``aggregates.retention_lock_timeout_s`` (the statement is atomic:
    nothing of that table is dropped), is reported in ``skipped`` and retried by the next run.
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
                cur.execute(
                    "SELECT set_config('lock_timeout', %s, false)", (f"{round(cfg.retention_lock_timeout_s * 1000)}ms",)
                )
                for table in RETAINED_TABLES:  # fixed names, not user input
                    try:
                        cur.execute(
                            "SELECT drop_chunks(%s::regclass, older_than => now() - make_interval(days => %s))",
                            (table, days),
                        )
                    except psycopg2.errors.LockNotAvailable:
                        skipped[table] = (
                            f"old chunks still in use after {cfg.retention_lock_timeout_s:g} s "
                            "(a running query); nothing dropped, the next run retries"
                        )
                        log.warning("retention skipped", table=table, reason=skipped[table])
                        continue
                    dropped[table] = [r[0] for r in cur.fetchall()]
        finally:
            conn.close()
    result: RetentionResult = {
        "retention_days": days,
        "dropped": dropped,
        "skipped": skipped,
        "seconds": round(time.monotonic() - started, 3),
    }
    log.info(describe_retention(result))
    return result


def describe_retention(result: RetentionResult) -> str:
    """Retention in words: off, or how many chunks of which table it dropped and what it skipped."""
    if result["retention_days"] is None:
        return "retention off (aggregates.retention_days not set): no chunk dropped"
    dropped = ", ".join(f"{len(chunks)} of {table}" for table, chunks in result["dropped"].items() if chunks)
    line = f"retention of {result['retention_days']} days: " + (
        f"dropped chunks {dropped}" if dropped else "no chunk old enough"
    )
    if result["skipped"]:
        line += "; skipped " + ", ".join(result["skipped"])
    return line
