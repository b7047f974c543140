"""TimescaleDB policies (community license): refresh, compression and retention jobs, set from
config after every migrate. The SQL is in sql/functions/mfs_apply_policies.timescale.sql and
sql/functions/mfs_policies_match.timescale.sql."""

from __future__ import annotations

from mfs.config import get_config
from mfs.storage import migrations
from mfs.storage.connection import connect


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
            row = cur.fetchone()
            if row and row[0]:
                return "unchanged"
            cur.execute("SELECT mfs_apply_policies(%s, %s)", values)
    finally:
        conn.close()
    return "applied"
