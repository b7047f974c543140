"""Shared by the reliability scenarios: checksums of the final database state, a reference
(uninterrupted, fault-free) state, and ``mfs`` subprocess runs against the test database.

Checksums are md5(string_agg(row::text ORDER BY key)) over every column except the ones a
re-run legitimately changes: ``ingested_at`` (market_data), ``computed_at`` and
``bar_ingested_at`` (features: the latter copies the bar's ``ingested_at``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from mfs.storage.connection import connect

# A fixed synthetic clock after the close of a regular session: every run sees the same market.
ASOF = "2025-11-26T21:10Z"
VOLATILE = {"market_data": {"ingested_at"}, "features": {"computed_at", "bar_ingested_at"}}
KEY = "symbol, interval, ts"
_cache: dict[tuple, Reference] = {}


@dataclass(frozen=True)
class Reference:
    checksums: dict[str, str]
    counts: dict[str, dict[tuple[str, str], int]]  # table -> (symbol, interval) -> rows


def columns(cur, table: str) -> list[str]:
    cur.execute(
        """SELECT column_name FROM information_schema.columns
                   WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position""",
        (table,),
    )
    return [r[0] for r in cur.fetchall() if r[0] not in VOLATILE[table]]


def checksum(url_or_conn, table: str) -> str:
    """md5 of every stable column of every row of ``table`` in key order."""
    conn, own = (connect(url_or_conn, autocommit=True), True) if isinstance(url_or_conn, str) else (url_or_conn, False)
    try:
        with conn.cursor() as cur:
            cols = ", ".join(f'"{c}"' for c in columns(cur, table))  # names from information_schema
            cur.execute(
                f"SELECT md5(coalesce(string_agg(r::text, E'\\n' ORDER BY {KEY}), '')), count(*) "
                f"FROM (SELECT {cols} FROM {table}) r"
            )
            digest, _ = cur.fetchone()
            return digest
    finally:
        if own:
            conn.close()


def counts(url_or_conn, table: str) -> dict[tuple[str, str], int]:
    conn, own = (connect(url_or_conn, autocommit=True), True) if isinstance(url_or_conn, str) else (url_or_conn, False)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT symbol, interval, count(*) FROM {table} GROUP BY 1, 2")  # fixed table names
            return {(s, i): n for s, i, n in cur.fetchall()}
    finally:
        if own:
            conn.close()


def duplicates(url_or_conn, table: str) -> int:
    """Rows sharing a key with another row (the primary key forbids it; measured anyway)."""
    conn, own = (connect(url_or_conn, autocommit=True), True) if isinstance(url_or_conn, str) else (url_or_conn, False)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) - count(DISTINCT ({KEY})) FROM {table}")
            return cur.fetchone()[0]
    finally:
        if own:
            conn.close()


def state(url: str, tables=("market_data", "features")) -> Reference:
    return Reference({t: checksum(url, t) for t in tables}, {t: counts(url, t) for t in tables})


def lost_rows(reference: Reference, now: Reference, table: str) -> int:
    return sum(max(0, n - now.counts[table].get(k, 0)) for k, n in reference.counts[table].items())


def truncate(url: str) -> None:
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE market_data, features, quarantine, symbol_runs, pipeline_runs, symbols CASCADE")
    finally:
        conn.close()


def reference_state(url: str, session_factory, symbols: tuple[str, ...], days: int, features: bool) -> Reference:
    """An uninterrupted, fault-free run's final state (cached per session), database emptied after."""
    key = (symbols, days, features)
    if key not in _cache:
        from mfs.ingest import backfill

        truncate(url)
        backfill(list(symbols), days=days, session=session_factory(asof=ASOF))
        if features:
            from mfs.features import compute

            compute(list(symbols))  # every configured interval, as `mfs features` in the scenarios
        _cache[key] = state(url)
        assert all(_cache[key].counts["market_data"].get((s, "1h")) for s in symbols), "reference run stored nothing"
        truncate(url)
    return _cache[key]


def mfs_env(url: str, **extra: str) -> dict[str, str]:
    """Environment of an ``mfs`` subprocess on the test database, offline Yahoo at ASOF, JSON logs."""
    env = dict(
        os.environ,
        MFS_DATABASE_URL=url,
        MFS_SYNTHETIC_ASOF=ASOF,
        MFS_LOG_FORMAT="json",
        MFS_INGEST__BACKOFF_INITIAL_S="0.001",
        MFS_INGEST__BACKOFF_MAX_S="0.005",
    )
    env.pop("MFS_FEATURE_FAULTS", None)
    env.update(extra)
    return env


def mfs_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mfs.cli.main", *args]


def run_mfs(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(mfs_command(*args), env=env, capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("mfs: error:")]
