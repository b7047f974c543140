"""The feature registry: the store's record of which feature columns it has and what each was
computed from (``feature_registry``, sql/060), kept in step with the definitions file.

``sync`` compares the file with the registry and, in one transaction, records what changed —
a feature added, a definition changed (a new version: the old one is superseded), a feature
removed (retired; its column stays until ``prune``), a retired one defined again — and generates
the DDL that follows: the new column in ``features``, ``features_revisions`` and
``features_latest`` (same position in each, so a revision or the newest row is the row as it
was), then the views that carry every feature column and the newest rows' packed form
(``mfs_rebuild_feature_views``). The statements are recorded in ``feature_schema_changes`` like
an applied migration. Nothing is computed here: a version that is not ``filled`` yet is computed
over the whole history by the next ``mfs features`` run, and marked filled when every symbol
succeeded.

The first sync of a store (an empty registry) registers the columns it already has as filled:
they were computed by the same engine from the same definitions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg2 import sql

from mfs.errors import ConfigError
from mfs.features.model import FeatureSet
from mfs.storage import progress
from mfs.storage.connection import connect
from mfs.storage.types import Cursor

LOCK_KEY = 0x6D66735F666561  # "mfs_fea": one registry change at a time per database
# The views mfs_rebuild_feature_views (re)creates, dependents first, and the function whose
# result type is one of them: dropping a column drops and recreates them.
FEATURE_VIEWS = ("features_1d", "latest_features", "features_asof_row", "feature_versions")
REVISION_TABLE = "features_revisions"
# Every table with a column per feature, in the same order: the rows, their revisions, the newest row.
FEATURE_TABLES = ("features", REVISION_TABLE, "features_latest")


@dataclass(frozen=True)
class Entry:
    """What the registry records for one feature of the file."""

    name: str
    version: str
    definition: dict[str, Any]
    description: str
    warmup: int
    depends_on: tuple[str, ...]
    sql_type: str


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # retired, then defined again
    new_columns: list[str] = field(default_factory=list)
    first: bool = False  # the store's first registration
    statements: list[str] = field(default_factory=list)  # the DDL run, in order

    @property
    def changes(self) -> bool:
        return bool(self.added or self.changed or self.retired or self.restored)


def entries(features: FeatureSet) -> list[Entry]:
    """The registry's view of ``features``: every definition, then the built-in calendar columns."""
    return [
        Entry(
            d.name,
            d.version,
            d.normalized,
            d.description,
            d.warmup,
            tuple(sorted(d.depends_on)),
            d.sql_type,
        )
        for d in features.columns
    ]


def _live(cur: Cursor) -> dict[str, dict[str, Any]]:
    cur.execute(
        """SELECT name, id, version, retired_at, filled_at FROM feature_registry
           WHERE superseded_at IS NULL AND pruned_at IS NULL"""
    )
    return {r[0]: {"id": r[1], "version": r[2], "retired_at": r[3], "filled_at": r[4]} for r in cur.fetchall()}


def _columns(cur: Cursor) -> dict[str, str]:
    cur.execute("SELECT name, sql_type FROM mfs_feature_columns()")
    return dict(cur.fetchall())


def _insert(cur: Cursor, e: Entry, filled: bool) -> None:
    cur.execute(
        """INSERT INTO feature_registry (name, version, definition, description, warmup, depends_on,
                                         added_at, filled_at)
           VALUES (%s, %s, %s, %s, %s, %s, mfs_now(), CASE WHEN %s THEN mfs_now() END)""",
        (
            e.name,
            e.version,
            json.dumps(e.definition, sort_keys=True),
            e.description,
            e.warmup,
            list(e.depends_on),
            filled,
        ),
    )


def _add_column(cur: Cursor, e: Entry, columns: dict[str, str]) -> list[str]:
    """The DDL adding ``e``'s column (none when it exists with its type)."""
    if e.name in columns:
        if columns[e.name] != e.sql_type:
            raise ConfigError(
                f"feature {e.name}: name: {e.name!r} is a retired column of type {columns[e.name]} "
                f"(this definition needs {e.sql_type}): run `mfs features prune` first"
            )
        return []
    return [
        sql.SQL("ALTER TABLE {} ADD COLUMN {} {}")
        .format(sql.Identifier(table), sql.Identifier(e.name), sql.SQL(e.sql_type))
        .as_string(cur)
        for table in FEATURE_TABLES
    ]


def sync(features: FeatureSet, url: str | None = None) -> SyncResult:
    """Bring the registry and the feature columns in line with ``features``; one transaction."""
    result = SyncResult()
    conn = connect(url, application_name="mfs-feature-registry")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            live, columns = _live(cur), _columns(cur)
            cur.execute("SELECT NOT EXISTS (SELECT 1 FROM feature_registry)")
            first = result.first = bool((cur.fetchone() or (False,))[0])
            wanted = entries(features)
            for e in wanted:
                old = live.get(e.name)
                added_column = _add_column(cur, e, columns)  # a column dropped by hand comes back too
                if added_column:
                    result.statements += added_column
                    result.new_columns.append(e.name)
                if old is not None and old["version"] == e.version:
                    if old["retired_at"] is not None or added_column:  # its values are not up to date
                        cur.execute(
                            "UPDATE feature_registry SET retired_at = NULL, filled_at = NULL WHERE id = %s",
                            (old["id"],),
                        )
                        result.restored.append(e.name)
                    continue
                if old is not None:
                    cur.execute("UPDATE feature_registry SET superseded_at = mfs_now() WHERE id = %s", (old["id"],))
                _insert(cur, e, filled=first and not added_column)
                (result.changed if old is not None else result.added).append(e.name)
            for name, old in live.items():
                if name not in {e.name for e in wanted} and old["retired_at"] is None:
                    cur.execute("UPDATE feature_registry SET retired_at = mfs_now() WHERE id = %s", (old["id"],))
                    result.retired.append(name)
            if result.statements:
                result.statements.append("SELECT mfs_rebuild_feature_views()")
                _run(cur, "add " + ", ".join(result.new_columns), result.statements)
            progress.record_synced_definitions(cur, features.source, features.memory)
        conn.commit()
    finally:
        conn.close()
    return result


def _run(cur: Cursor, change: str, statements: list[str]) -> None:
    """Run generated DDL and record it (the caller's transaction)."""
    for stmt in statements:
        cur.execute(stmt)
    text = ";\n".join(statements) + ";"
    cur.execute(
        "INSERT INTO feature_schema_changes (change, checksum, statements) VALUES (%s, %s, %s)",
        (change, hashlib.sha256(text.encode()).hexdigest(), text),
    )


def unfilled(features: FeatureSet, url: str | None = None) -> list[tuple[str, str]]:
    """(name, version) of the features of ``features`` whose registered version has not been
    computed over the whole history yet, in the file's order."""
    with_order = {e.name: i for i, e in enumerate(entries(features))}
    conn = connect(url, application_name="mfs-feature-registry")
    try:
        with conn.cursor() as cur:
            cur.execute(
                """SELECT name, version FROM feature_registry
                   WHERE superseded_at IS NULL AND pruned_at IS NULL AND retired_at IS NULL AND filled_at IS NULL"""
            )
            rows = [r for r in cur.fetchall() if r[0] in with_order]
    finally:
        conn.close()
    return sorted(rows, key=lambda r: with_order[r[0]])


def mark_filled(pairs: Sequence[tuple[str, str]], url: str | None = None) -> None:
    """Record that these (name, version) were computed over the whole history."""
    if not pairs:
        return
    conn = connect(url, application_name="mfs-feature-registry")
    try:
        with conn.cursor() as cur:
            cur.execute(
                """UPDATE feature_registry r SET filled_at = mfs_now()
                   FROM unnest(%s::text[], %s::text[]) AS p(name, version)
                   WHERE r.name = p.name AND r.version = p.version AND r.superseded_at IS NULL
                     AND r.pruned_at IS NULL AND r.filled_at IS NULL""",
                ([n for n, _ in pairs], [v for _, v in pairs]),
            )
        conn.commit()
    finally:
        conn.close()


def prune(url: str | None = None) -> list[str]:
    """Drop the columns of retired features (and record them pruned); returns their names."""
    conn = connect(url, application_name="mfs-feature-registry")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            retired = sorted(n for n, row in _live(cur).items() if row["retired_at"] is not None)
            present = _columns(cur)
            drop = [n for n in retired if n in present]
            if drop:
                _drop_columns(cur, drop)
            if retired:
                cur.execute(
                    """UPDATE feature_registry SET pruned_at = mfs_now()
                       WHERE name = ANY(%s) AND superseded_at IS NULL AND pruned_at IS NULL""",
                    (retired,),
                )
        conn.commit()
    finally:
        conn.close()
    return retired


def _drop_columns(cur: Cursor, names: list[str]) -> None:
    """DROP COLUMN cannot leave a view without its column: the feature views and the functions
    returning their rows are dropped (no CASCADE: a user's own view on them stops the prune with
    PostgreSQL's message) and created again from their current definitions."""
    cur.execute(
        """SELECT pg_get_functiondef(p.oid), p.oid::regprocedure::text, obj_description(p.oid, 'pg_proc')
           FROM pg_proc p WHERE p.prorettype = ANY(%s::regtype[])""",
        ([v for v in FEATURE_VIEWS if v != "features_1d"],),
    )
    functions = cur.fetchall()
    statements = [f"DROP FUNCTION {signature}" for _, signature, _ in functions]
    statements += [sql.SQL("DROP VIEW {}").format(sql.Identifier(v)).as_string(cur) for v in FEATURE_VIEWS]
    for table in FEATURE_TABLES:
        statements += [
            sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(sql.Identifier(table), sql.Identifier(n)).as_string(cur)
            for n in names
        ]
    statements.append("SELECT mfs_rebuild_feature_views()")
    statements += [definition for definition, _, _ in functions]
    statements += [
        sql.SQL("COMMENT ON FUNCTION {} IS {}").format(sql.SQL(signature), sql.Literal(comment)).as_string(cur)
        for _, signature, comment in functions
        if comment
    ]
    _run(cur, "prune " + ", ".join(names), statements)


@dataclass(frozen=True)
class Row:
    name: str
    version: str
    status: str  # active, unfilled, retired, superseded, pruned
    added_at: datetime
    filled_at: datetime | None
    ended_at: datetime | None  # superseded, retired or pruned at
    definition: dict[str, Any]


def rows(url: str | None = None) -> list[Row]:
    """Every registered version, newest state first per feature (live, then history)."""
    conn = connect(url, application_name="mfs-feature-registry")
    try:
        with conn.cursor() as cur:
            cur.execute(
                """SELECT name, version,
                          CASE WHEN pruned_at IS NOT NULL THEN 'pruned'
                               WHEN superseded_at IS NOT NULL THEN 'superseded'
                               WHEN retired_at IS NOT NULL THEN 'retired'
                               WHEN filled_at IS NULL THEN 'unfilled' ELSE 'active' END,
                          added_at, filled_at, coalesce(pruned_at, superseded_at, retired_at), definition
                   FROM feature_registry ORDER BY min(id) OVER (PARTITION BY name), name, id DESC"""
            )
            return [Row(*r) for r in cur.fetchall()]
    finally:
        conn.close()
