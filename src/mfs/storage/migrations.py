"""Numbered SQL migrations from ``sql/``: applied in order, recorded, each atomically.

File names: ``NNN_name.sql`` runs on every TimescaleDB edition; ``NNN_name.apache.sql`` and
``NNN_name.timescale.sql`` are the two variants of one migration, chosen by
``SHOW timescaledb.license``. A migration and its ``schema_migrations`` row commit together, so a
failure leaves both the schema and the record as they were. A file whose text changed after it
was applied is refused (the DDL in ``sql/`` is the truth; the replaced system's drifted).
A file starting with ``-- mfs:no-transaction`` runs statement by statement in autocommit (for
TimescaleDB commands that refuse transactions); keep such files to one idempotent statement each.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from mfs import paths
from mfs.errors import StorageError
from mfs.logs import get_logger
from mfs.storage.connection import connect, libpq_url, masked, with_database

FILE_RE = re.compile(r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+?)(?:\.(?P<edition>apache|timescale))?\.sql$")
EDITIONS = ("apache", "timescale")
LOCK_KEY = 0x6D66735F6D6967  # "mfs_mig": one migrator at a time per database
log = get_logger("mfs.storage.migrations")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.text.lstrip().startswith("-- mfs:no-transaction")


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
            raise StorageError(f"migration {version:03d}: ship either one common file or per-edition variants, not both")
        if None not in files and set(files) != set(EDITIONS):
            raise StorageError(f"migration {version:03d}: per-edition variants need both .apache.sql and .timescale.sql")
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


def license(conn) -> str:
    """The TimescaleDB license the server runs: 'timescale' (community) or 'apache'."""
    with conn.cursor() as cur:
        cur.execute("SHOW timescaledb.license")
        return cur.fetchone()[0]


def edition(conn) -> str:
    """The edition the store's schema was built for: the one its first migration was applied
    with, else (a new database) the server's license. A store keeps its edition when the server's
    license changes: its aggregates are either continuous aggregates or trigger rollups."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if cur.fetchone()[0]:
            cur.execute("SELECT edition FROM schema_migrations ORDER BY version LIMIT 1")
            row = cur.fetchone()
            if row:
                return row[0]
    return license(conn)


def check_edition(conn) -> str:
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
        detail = (exc.pgerror or str(exc)).strip().splitlines()[0]
        raise StorageError(f"cannot update TimescaleDB {row[0]} to {row[1]} in {masked(url)}: {detail}") from None
    finally:
        fresh.close()
    log.info("timescaledb extension updated", old=row[0], new=row[1])
    return row[0], row[1]


def _bootstrap(conn) -> None:
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


def applied(conn) -> dict[int, tuple[str, str]]:
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        if not cur.fetchone()[0]:
            return {}
        cur.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        return {v: (n, c) for v, n, c in cur.fetchall()}


def migrate(url: str, directory: Path | None = None, *, update: bool = True) -> list[str]:
    """Update the TimescaleDB extension to the installed library (``update``), then apply pending
    migrations; return the names applied (empty when up to date)."""
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
            return _apply_pending(conn, check_edition(conn), directory)
        finally:
            conn.rollback()
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            conn.commit()
    finally:
        conn.close()


def _apply_pending(conn, ed: str, directory: Path | None) -> list[str]:
    done = applied(conn)
    names = []
    for mig in discover(ed, directory):
        label = f"{mig.version:03d}_{mig.name}"
        if mig.version in done:
            if done[mig.version][1] != mig.checksum:
                raise StorageError(
                    f"migration {label} was changed after it was applied ({mig.path.name}); "
                    "add a new numbered migration instead of editing an applied one"
                )
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
