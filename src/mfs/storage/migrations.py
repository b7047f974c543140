"""Numbered SQL migrations from ``sql/``: applied in order, recorded, each atomically.

File names: ``NNN_name.sql`` runs on every TimescaleDB edition; ``NNN_name.apache.sql`` and
``NNN_name.timescale.sql`` are the two variants of one migration, chosen by
``SHOW timescaledb.license``. A migration and its ``schema_migrations`` row commit together, so a
failure leaves both the schema and the record as they were. A file whose SQL changed after it
was applied is refused: the DDL in ``sql/`` is the schema of every store, so a change is a new
numbered migration. A file starting with ``-- mfs:no-transaction`` runs statement by statement in
autocommit (for TimescaleDB commands that refuse transactions); keep such files to one idempotent
statement each.

The checksum ignores comments and layout (``normalised_sql``), so an applied file's comments may
be corrected. It is the SHA-256 of the SQL with every ``--`` comment (whole-line or trailing) and
every ``/* */`` comment removed and each run of whitespace made one space — outside string
literals and quoted identifiers, which are kept byte for byte. A dollar-quoted body
(``$$ … $$``, ``$fn$ … $fn$``) is normalised as code: these files use dollar quotes only for
function and ``DO`` bodies, whose ``--`` and ``/* */`` are comments too, so a dollar-quoted *data*
literal's comment-like text or spacing is not protected. ``-- mfs:`` directive lines are kept
(they change how a file runs). A store records that checksum; one recorded before holds the
SHA-256 of the file's bytes, accepted while the file is byte-identical (``FULL_TEXT_CHECKSUMS``
for files whose comments changed since) and replaced by the normalised one on the next migrate.

Functions and views are not here: each lives in a file of its own under ``sql/functions/`` or
``sql/views/``, applied after the numbered migrations whenever its text changed
(``mfs.storage.repeatable``). Numbered files keep tables, data changes and drops. The definitions
that numbered files once restated were taken out of them; a store that applied such a file
recorded its earlier text, accepted through ``EDITED_CHECKSUMS`` (``mfs.storage.edited``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from mfs import paths
from mfs.errors import StorageError, first_line
from mfs.logs import get_logger
from mfs.storage import repeatable
from mfs.storage.connection import connect, libpq_url, masked, with_database
from mfs.storage.edited import EDITED_CHECKSUMS
from mfs.storage.sql_text import DIRECTIVE, SqlFile
from mfs.storage.types import Connection, one_row

FILE_RE = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+?)(?:\.(?P<edition>apache|timescale))?\.sql$")
EDITIONS = ("apache", "timescale")
LOCK_KEY = 0x6D66735F6D6967  # "mfs_mig": one migrator at a time per database
# Full-text checksums (SHA-256 of the file's bytes, what stores recorded until checksums ignored
# comments) of files whose comments have changed since, each mapped to the normalised checksum of
# the same text: such a record is accepted as long as the file's SQL is still that text's SQL.
FULL_TEXT_CHECKSUMS = {
    # 031_ohlcv_aggregates.apache.sql
    "cd076e3453f8f98e5f1e53fc45ecff3607aa4ce45553f06008ac8f95144c735f": (
        "730a166fa980b92a226bfb0058de7a28fe71c83665567708ab7a2edf2494831e"
    ),
}
log = get_logger("mfs.storage.migrations")


@dataclass(frozen=True)
class Migration(SqlFile):
    version: int
    name: str
    path: Path

    @property
    def full_text_checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def accepts(self, recorded: str) -> bool:
        """Whether a store's recorded checksum matches this file's SQL."""
        return recorded in (self.checksum, self.full_text_checksum) or self.checksum in (
            FULL_TEXT_CHECKSUMS.get(recorded),
            EDITED_CHECKSUMS.get(recorded),
        )

    @property
    def transactional(self) -> bool:
        return not self.text.lstrip().startswith(DIRECTIVE + "no-transaction")


def discover(edition: str, directory: Path | None = None) -> list[Migration]:
    """The migrations for ``edition``, in version order; malformed names are an error."""
    directory = directory or paths.sql_dir()
    by_version: dict[int, dict[str | None, Path]] = {}
    names: dict[int, str] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILE_RE.match(path.name)
        if not match:
            raise StorageError(f"{path}: migration files are named NNN_name[.apache|.timescale].sql")
        version = int(match["version"])
        if names.setdefault(version, match["name"]) != match["name"]:
            raise StorageError(f"{path}: version {version:03d} is already used by {names[version]!r}")
        by_version.setdefault(version, {})[match["edition"]] = path
    result = []
    for version in sorted(by_version):
        files = by_version[version]
        if None in files and len(files) > 1:
            raise StorageError(
                f"migration {version:03d}: ship either one common file or per-edition variants, not both"
            )
        if None not in files and set(files) != set(EDITIONS):
            raise StorageError(
                f"migration {version:03d}: per-edition variants need both .apache.sql and .timescale.sql"
            )
        result.append(Migration(version, names[version], files.get(None) or files[edition]))
    return result


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` when it does not exist (needs CREATEDB)."""
    dbname = psycopg2.extensions.parse_dsn(url.replace("postgresql+psycopg2://", "postgresql://"))["dbname"]
    admin = connect(with_database(url, "postgres"), autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                log.info("database created", database=dbname)
    finally:
        admin.close()


def drop_database(url: str) -> None:
    """Drop the database named in ``url`` (throwaway test and benchmark databases)."""
    dbname = psycopg2.extensions.parse_dsn(url.replace("postgresql+psycopg2://", "postgresql://"))["dbname"]
    admin = connect(with_database(url, "postgres"), autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
    finally:
        admin.close()


def license(conn: Connection) -> str:
    """The TimescaleDB license the server runs: 'timescale' (community) or 'apache'."""
    with conn.cursor() as cur:
        cur.execute("SHOW timescaledb.license")
        return one_row(cur)[0]


def edition(conn: Connection) -> str:
    """The edition the store's schema was built for: the one its first migration was applied
    with, else (a new database) the server's license. A store keeps its edition when the server's
    license changes: its aggregates are either continuous aggregates or trigger rollups."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if one_row(cur)[0]:
            cur.execute("SELECT edition FROM schema_migrations ORDER BY version LIMIT 1")
            row = cur.fetchone()
            if row:
                return row[0]
    return license(conn)


def check_edition(conn: Connection) -> str:
    """The store's edition, refusing a server that cannot serve it."""
    ed = edition(conn)
    if ed == "timescale" and license(conn) != "timescale":
        raise StorageError(
            "this store's aggregates are continuous aggregates (community license), but the server runs "
            "timescaledb.license = 'apache': set timescaledb.license = 'timescale' in its postgresql.conf"
        )
    return ed


def update_extension(url: str) -> tuple[str, str] | None:
    """ALTER EXTENSION timescaledb UPDATE when the installed library is newer than the database's
    extension; returns (old, new) or None. TimescaleDB requires the update to be the first
    statement of a new session (no older library loaded yet), hence a dedicated connection."""
    conn = connect(url, autocommit=True, application_name="mfs-migrate")
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT installed_version, default_version FROM pg_available_extensions
                           WHERE name = 'timescaledb'""")
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None or row[0] is None or row[0] == row[1]:
        return None
    try:
        fresh = psycopg2.connect(libpq_url(url), application_name="mfs-extension-update")
    except psycopg2.OperationalError as exc:
        raise StorageError(f"cannot connect to {masked(url)}: {exc}".strip()) from None
    try:
        fresh.autocommit = True
        with fresh.cursor() as cur:
            cur.execute("ALTER EXTENSION timescaledb UPDATE")
    except psycopg2.Error as exc:
        detail = first_line(exc.pgerror or exc, type(exc).__name__)
        raise StorageError(f"cannot update TimescaleDB {row[0]} to {row[1]} in {masked(url)}: {detail}") from None
    finally:
        fresh.close()
    log.info("timescaledb extension updated", old=row[0], new=row[1])
    return row[0], row[1]


def _bootstrap(conn: Connection) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        cur.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   edition    text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
    conn.commit()


def applied(conn: Connection) -> dict[int, tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not one_row(cur)[0]:
            return {}
        cur.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        return {v: (n, c) for v, n, c in cur.fetchall()}


def migrate(url: str, directory: Path | None = None, *, update: bool = True) -> list[str]:
    """Update the TimescaleDB extension to the installed library (``update``), then apply pending
    migrations, then the repeatable files whose text changed or whose object is missing (from
    ``directory``'s ``functions/`` and ``views/``); return the names applied (empty when up to
    date)."""

    if update:
        update_extension(url)
    conn = connect(url, application_name="mfs-migrate")
    try:
        try:
            _bootstrap(conn)
        except psycopg2.Error as exc:
            raise StorageError(f"cannot enable TimescaleDB in {masked(url)}: {exc.pgerror or exc}".strip()) from None
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        conn.commit()
        try:
            ed = check_edition(conn)
            return _apply_pending(conn, ed, directory) + repeatable.apply(conn, ed, directory)
        finally:
            conn.rollback()
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            conn.commit()
    finally:
        conn.close()


def _apply_pending(conn: Connection, ed: str, directory: Path | None) -> list[str]:
    done = applied(conn)
    names = []
    for mig in discover(ed, directory):
        label = f"{mig.version:03d}_{mig.name}"
        if mig.version in done:
            recorded = done[mig.version][1]
            if not mig.accepts(recorded):
                raise StorageError(
                    f"migration {label} was changed after it was applied ({mig.path.name}); "
                    "add a new numbered migration instead of editing an applied one"
                )
            if recorded != mig.checksum:  # a full-text checksum: record the normalised one
                with conn.cursor() as cur:
                    cur.execute(
                        "UPDATE schema_migrations SET checksum = %s WHERE version = %s", (mig.checksum, mig.version)
                    )
                conn.commit()
                log.debug("migration checksum recorded without comments", migration=label)
            continue
        log.info("applying migration", migration=label, edition=ed)
        record = (
            "INSERT INTO schema_migrations (version, name, edition, checksum) VALUES (%s, %s, %s, %s)",
            (mig.version, mig.name, ed, mig.checksum),
        )
        try:
            if mig.transactional:
                with conn.cursor() as cur:
                    cur.execute(mig.text)
                    cur.execute(*record)
                conn.commit()
            else:
                conn.autocommit = True
                try:
                    with conn.cursor() as cur:
                        cur.execute(mig.text)
                        cur.execute(*record)
                finally:
                    conn.autocommit = False
        except psycopg2.Error as exc:
            conn.rollback()
            detail = (exc.pgerror or str(exc)).strip()
            raise StorageError(f"migration {label} failed and was rolled back: {detail}") from None
        names.append(label)
    return names
