"""Repeatable SQL objects: every function and view in one file of its own, applied when its text
changes, after the numbered migrations (Flyway's "repeatable migrations").

Files: ``sql/functions/NAME.sql`` and ``sql/views/NAME.sql`` (``NAME.apache.sql`` /
``NAME.timescale.sql`` for an object of one edition, or that differs between them: a name with
only one edition's file exists only on that edition). A file holds the object's current
definition, written to be re-run: ``CREATE OR REPLACE FUNCTION`` / ``CREATE VIEW``, its comment,
its grants. Numbered migrations keep tables, data changes and drops.

When: after the numbered migrations of the same ``migrate``, every file whose checksum (the same
comment- and layout-blind ``normalised_sql`` as numbered files) differs from the one recorded in
``schema_repeatables`` is applied with its new record; an unchanged file is not re-run.

Order: functions, then views; within each, by name, except that a file with a line
``-- mfs:after OTHER`` comes after the file of OTHER (same folder). A function file is applied in
a transaction of its own. Views are re-created together: when any view file changed, every
repeatable view is dropped (dependents first: reverse order, no CASCADE, so a view that is not a
repeatable one and reads them stops the migrate with PostgreSQL's message) and created again in
order, with the changed files' records, in one transaction — ``CREATE OR REPLACE VIEW`` cannot
drop or rename a column, and a view reading a re-created one must be re-created too. With a few
small views this costs milliseconds; the default privileges (sql/034) and the files' own GRANTs
give mfs_reader its SELECT again. A function whose arguments or result type change is a new
function: drop the old signature in a numbered migration.

A file is named after the object it defines (twins: their ``name=`` values). One whose object is
missing is applied even though its text did not change: a numbered migration may drop a view to
change a table under it, and the view comes back from its file. Removing an object: delete its
file and drop it in a numbered migration.

Twins: a file with lines ``-- mfs:twin key=value ...`` is a template applied once per such line,
each ``{{key}}`` replaced by that line's value. Values are identifiers (``[a-z_][a-z0-9_]*``,
checked), so the substitution can only name tables, columns and functions; one definition makes
``features_asof`` and ``bars_asof``. A twin line with ``edition=apache`` or ``edition=timescale``
applies on that edition only: one definition for a view that reads another relation on each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from mfs import paths
from mfs.errors import StorageError
from mfs.logs import get_logger
from mfs.storage.sql_text import DIRECTIVE, SqlFile
from mfs.storage.types import Connection, one_row

KINDS = ("functions", "views")  # applied in this order
FILE_RE = re.compile(r"^(?P<name>[a-z0-9_]+?)(?:\.(?P<edition>apache|timescale))?\.sql$")
AFTER = DIRECTIVE + "after "
TWIN = DIRECTIVE + "twin "
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
PLACEHOLDER = re.compile(r"\{\{([a-z_][a-z0-9_]*)\}\}")
log = get_logger("mfs.storage.repeatable")


@dataclass(frozen=True)
class Repeatable(SqlFile):
    kind: str  # "functions" or "views"
    name: str
    path: Path
    edition: str  # the store's: a twin line with edition=OTHER is skipped

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def objects(self) -> list[str]:
        """The functions or views it defines: its name, or its twins' ``name=`` values."""
        twins = [dict(p.split("=", 1) for p in line.split() if "=" in p) for line in self._twin_lines()]
        return [t["name"] for t in twins if "name" in t] or [self.name]

    def _twin_lines(self) -> list[str]:
        return [line[len(TWIN) :] for line in self.text.splitlines() if line.startswith(TWIN)]

    @property
    def after(self) -> list[str]:
        return [line[len(AFTER) :].strip() for line in self.text.splitlines() if line.startswith(AFTER)]

    def statements(self) -> str:
        """The SQL to run: the file, or the template once per ``-- mfs:twin`` line (of this edition)."""
        text = self.text
        twins = [line.split() for line in self._twin_lines()]
        if not twins:
            return text
        rendered = []
        for pairs in twins:
            values = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
            bad = [v for v in values.values() if not IDENTIFIER.match(v)] or [p for p in pairs if "=" not in p]
            if bad:
                raise StorageError(f"{self.path}: mfs:twin takes key=identifier pairs, not {bad[0]!r}")
            if values.get("edition", self.edition) != self.edition:
                continue
            missing = sorted(set(PLACEHOLDER.findall(text)) - set(values))
            if missing:
                raise StorageError(f"{self.path}: mfs:twin line {' '.join(pairs)!r} gives no value for {missing[0]}")
            rendered.append(PLACEHOLDER.sub(lambda m: values[m.group(1)], text))  # noqa: B023 (used at once)
        return "\n".join(rendered)


def discover(edition: str, directory: Path | None = None) -> list[Repeatable]:
    """The repeatable files for ``edition`` under ``directory`` (default ``sql/``), in apply order."""
    root = directory or paths.sql_dir()
    ordered: list[Repeatable] = []
    seen: dict[str, Path] = {}
    for kind in KINDS:
        by_name: dict[str, dict[str | None, Path]] = {}
        for path in sorted((root / kind).glob("*.sql")):
            match = FILE_RE.match(path.name)
            if not match:
                raise StorageError(f"{path}: repeatable files are named name[.apache|.timescale].sql")
            by_name.setdefault(match["name"], {})[match["edition"]] = path
        found = []
        for name, files in sorted(by_name.items()):
            if None in files and len(files) > 1:
                raise StorageError(f"{root / kind}/{name}: ship either one common file or per-edition variants")
            if name in seen:
                raise StorageError(f"{next(iter(files.values()))}: {name} is also {seen[name]}")
            chosen = files.get(None) or files.get(edition)
            if chosen is not None:
                seen[name] = chosen
                found.append(Repeatable(kind, name, chosen, edition))
        ordered += _after_order(found, set(by_name))
    return ordered


def _after_order(items: list[Repeatable], names: set[str]) -> list[Repeatable]:
    """``items`` in name order, each moved after the files its ``-- mfs:after`` lines name."""
    by_name = {r.name: r for r in items}
    done: list[Repeatable] = []
    visiting: set[str] = set()

    def visit(r: Repeatable) -> None:
        if r in done:
            return
        if r.name in visiting:
            raise StorageError(f"{r.path}: mfs:after lines form a cycle through {r.name}")
        visiting.add(r.name)
        for other in r.after:
            if other not in names:
                raise StorageError(f"{r.path}: mfs:after {other}: no such file in {r.path.parent}")
            if other in by_name:  # absent: the other edition's object
                visit(by_name[other])
        visiting.discard(r.name)
        done.append(r)

    for r in items:
        visit(r)
    return done


def ensure_table(conn: Connection) -> None:
    """The record of applied repeatable files; internal, like schema_migrations."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_repeatables') IS NULL")
        created = one_row(cur)[0]
        cur.execute(
            """CREATE TABLE IF NOT EXISTS schema_repeatables (
                   name       text PRIMARY KEY,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        if created:  # the default privileges (sql/034) would grant it to the roles that exist
            cur.execute("SELECT rolname FROM pg_roles WHERE rolname IN ('mfs_reader', 'mfs_writer')")
            for (role,) in cur.fetchall():
                cur.execute(sql.SQL("REVOKE ALL ON schema_repeatables FROM {}").format(sql.Identifier(role)))
    conn.commit()


def apply(conn: Connection, edition: str, directory: Path | None = None) -> list[str]:
    """Apply the repeatable files whose text changed; return their labels."""
    ensure_table(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT name, checksum FROM schema_repeatables")
        recorded = dict(cur.fetchall())
    files = discover(edition, directory)
    missing = _missing(conn, files)
    changed = [r for r in files if recorded.get(r.name) != r.checksum or r.name in missing]
    for r in changed:
        if r.kind == "functions":
            _run(conn, r.label, [r], [r])
    if any(r.kind == "views" for r in changed):
        views = [r for r in files if r.kind == "views"]
        _run(conn, "views", views, [r for r in changed if r.kind == "views"])
    return [r.label for r in changed]


def _missing(conn: Connection, files: list[Repeatable]) -> set[str]:
    """The files one of whose objects does not exist: a numbered migration dropped it (to change a
    table under it), so it is created again even though its text did not change."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT o.name FROM unnest(%s::text[], %s::text[]) AS o(name, kind)
               WHERE NOT CASE o.kind
                   WHEN 'views' THEN EXISTS (SELECT 1 FROM pg_class c
                                             WHERE c.relnamespace = 'public'::regnamespace AND c.relname = o.name)
                   ELSE EXISTS (SELECT 1 FROM pg_proc p
                                WHERE p.pronamespace = 'public'::regnamespace AND p.proname = o.name) END""",
            ([o for r in files for o in r.objects], [r.kind for r in files for _ in r.objects]),
        )
        gone = {row[0] for row in cur.fetchall()}
    return {r.name for r in files if gone & set(r.objects)}


def _run(conn: Connection, label: str, items: list[Repeatable], record: list[Repeatable]) -> None:
    """Run ``items`` (views: dropped first, dependents first) and record ``record``, atomically."""
    log.info("applying repeatable SQL", files=[r.label for r in record])
    try:
        with conn.cursor() as cur:
            for r in reversed(items):
                if r.kind == "views":
                    cur.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(r.name)))
            for r in items:
                cur.execute(r.statements())
            for r in record:
                cur.execute(
                    """INSERT INTO schema_repeatables (name, checksum) VALUES (%s, %s)
                       ON CONFLICT (name) DO UPDATE SET checksum = excluded.checksum, applied_at = now()""",
                    (r.name, r.checksum),
                )
        conn.commit()
    except psycopg2.Error as exc:
        conn.rollback()
        detail = (exc.pgerror or str(exc)).strip()
        raise StorageError(f"repeatable {label} failed and was rolled back: {detail}") from None
