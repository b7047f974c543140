"""Continuous backups of a local cluster with pgBackRest: WAL archiving, full/differential backups,
their list, and point-in-time restores into a fresh folder or in place.

pgBackRest runs as the server's OS user (``postgres`` when we are root), from a configuration file
of the cluster's own (``<cluster root>/pgbackrest.conf``, written from ``backup:`` in config/mfs.yaml)
so a test's throwaway cluster and the project's cluster never share a stanza. ``archive_command``
pushes every finished WAL segment into the repository; ``archive_timeout`` closes a segment after
60 s of writes, which bounds what a lost disk can take with it (the recovery point) to about a
minute of commits.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql

from mfs import paths
from mfs.config import BackupConfig, get_config
from mfs.errors import StorageError
from mfs.logs import get_logger
from mfs.storage.connection import connect, external_url
from mfs.storage.localdb import PG_BIN, LocalCluster, default_cluster
from mfs.storage.types import Cursor

log = get_logger("mfs.storage.backup")

PGBACKREST = shutil.which("pgbackrest") or "/usr/bin/pgbackrest"
ARCHIVE_TIMEOUT = "60s"  # a segment with writes is archived within a minute (the recovery point)
PROMOTE_WAIT_S = 600.0  # replaying a day of WAL takes seconds; a year's backfill, minutes


@dataclass(frozen=True)
class Repository:
    path: Path
    stanza: str
    retention_full: int
    compress_type: str
    process_max: int


@dataclass(frozen=True)
class BackupInfo:
    label: str
    kind: str  # full, diff, incr
    started: dt.datetime
    stopped: dt.datetime
    database_bytes: int  # the data directory it copies
    repo_bytes: int  # what it added to the repository (compressed, changed files only)
    wal_start: str
    wal_stop: str


@dataclass(frozen=True)
class RestoreResult:
    cluster: LocalCluster
    seconds: float
    moved_aside: Path | None  # the replaced data directory of an in-place restore


def repository(cfg: BackupConfig | None = None) -> Repository:
    cfg = cfg or get_config().backup
    path = Path(cfg.repo_path) if cfg.repo_path else paths.state_dir() / "backups"
    return Repository(path.resolve(), cfg.stanza, cfg.retention_full, cfg.compress_type, cfg.process_max)


def config_file(cluster: LocalCluster) -> Path:
    return cluster.root / "pgbackrest.conf"


def _server_uid() -> int | None:
    """As root the server (and so pgBackRest) runs as 'postgres'; its files must be its own."""
    return pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else None


def own_folder(path: Path, mode: int = 0o750) -> None:
    path.mkdir(parents=True, exist_ok=True)
    uid = _server_uid()
    if uid is not None:
        os.chown(path, uid, -1)
    path.chmod(mode)


def write_config(cluster: LocalCluster, repo: Repository) -> Path:
    """The cluster's pgbackrest.conf (repository, retention, its data folder and socket) and a
    pgpass file, so pgBackRest's own connections (backup, check) authenticate like ours."""
    own_folder(repo.path)
    for sub in ("pgbackrest-log", "pgbackrest-lock", "pgbackrest-spool"):
        own_folder(cluster.root / sub)
    pgpass = cluster.root / "pgpass"
    pgpass.write_text(f"*:*:*:{cluster.user}:{cluster.password()}\n")
    pgpass.chmod(0o600)
    text = (
        "[global]\n"
        "repo1-type=posix\n"
        f"repo1-path={repo.path}\n"
        f"repo1-retention-full={repo.retention_full}\n"
        f"compress-type={repo.compress_type}\n"
        f"process-max={repo.process_max}\n"
        f"log-path={cluster.root / 'pgbackrest-log'}\n"
        f"lock-path={cluster.root / 'pgbackrest-lock'}\n"
        f"spool-path={cluster.root / 'pgbackrest-spool'}\n"
        "log-level-console=warn\nlog-level-file=info\nstart-fast=y\n\n"
        f"[{repo.stanza}]\n"
        f"pg1-path={cluster.data_dir}\n"
        f"pg1-port={cluster.port}\n"
        f"pg1-socket-path={cluster.socket_dir}\n"
        f"pg1-user={cluster.user}\n"
    )
    path = config_file(cluster)
    path.write_text(text)
    uid = _server_uid()
    if uid is not None:
        os.chown(pgpass, uid, -1)
        os.chown(path, uid, -1)
    return path


def run_as_server(args: list[str], what: str, env: dict[str, str] | None = None) -> str:
    """Run a server tool as the server's OS user; its stdout, or StorageError with its last line."""
    cmd = (["runuser", "-u", "postgres", "--"] if _server_uid() is not None else []) + args
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, cwd="/", env=env)
    except FileNotFoundError:
        raise StorageError(f"{what} is not installed: run ./scripts/bootstrap") from None
    if result.returncode != 0:
        lines = [ln.strip() for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "ERROR" in ln] or lines  # pgBackRest adds HINT lines after it
        raise StorageError(f"{what} failed: {errors[-1] if errors else f'exit {result.returncode}'}")
    return result.stdout


def pgbackrest(cluster: LocalCluster, repo: Repository, *args: str) -> str:
    """Run one pgBackRest command for the cluster's stanza as the server's user; its stdout."""
    if not Path(PGBACKREST).exists():
        raise StorageError("pgbackrest is not installed: run ./scripts/bootstrap (Debian package pgbackrest)")
    cmd = [PGBACKREST, f"--config={config_file(cluster)}", f"--stanza={repo.stanza}", *args]
    return run_as_server(cmd, f"pgbackrest {args[0]}", dict(os.environ, PGPASSFILE=str(cluster.root / "pgpass")))


def repository_in(cluster: LocalCluster) -> Repository:
    """The repository and stanza the cluster's pgbackrest.conf names (so a copy of the cluster —
    a replica, a restore — archives where it does, whatever config/mfs.yaml says today)."""
    section, values = "", {}
    for line in config_file(cluster).read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return Repository(
        Path(values["repo1-path"]),
        section,
        int(values["repo1-retention-full"]),
        values["compress-type"],
        int(values["process-max"]),
    )


def archive_command(cluster: LocalCluster, repo: Repository) -> str:
    return f"{PGBACKREST} --config={config_file(cluster)} --stanza={repo.stanza} archive-push %p"


def _settings(cur: Cursor) -> dict[str, str]:
    cur.execute("SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'archive_command')")
    return dict(cur.fetchall())


def enable_archiving(cluster: LocalCluster, repo: Repository | None = None) -> list[str]:
    """Idempotent: pgbackrest.conf, archive_mode/archive_command (a restart the first time), the
    stanza. Returns what it did."""
    repo = repo or repository()
    write_config(cluster, repo)
    actions = []
    command = archive_command(cluster, repo)
    conn = connect(cluster.url("postgres"), autocommit=True, application_name="mfs-backup")
    try:
        with conn.cursor() as cur:
            current = _settings(cur)
            restart = current.get("archive_mode") != "on"  # archive_mode takes effect at server start only
            if current.get("archive_command") != command or restart:
                cur.execute("ALTER SYSTEM SET archive_mode = 'on'")
                # No parameters: the command's %p stays as it is.
                cur.execute(sql.SQL("ALTER SYSTEM SET archive_command = {}").format(sql.Literal(command)))
                cur.execute(sql.SQL("ALTER SYSTEM SET archive_timeout = {}").format(sql.Literal(ARCHIVE_TIMEOUT)))
                cur.execute("SELECT pg_reload_conf()")
                actions.append("WAL archiving configured" + (" (server restarted)" if restart else ""))
    finally:
        conn.close()
    if actions and restart:
        cluster.restart()
    if not (repo.path / "backup" / repo.stanza / "backup.info").exists():
        pgbackrest(cluster, repo, "stanza-create")
        actions.append(f"pgBackRest stanza {repo.stanza!r} created in {repo.path}")
    return actions


def local_cluster() -> LocalCluster:
    """The project's local cluster; an external server (MFS_DATABASE_URL) is backed up where it runs."""
    if external_url():
        raise StorageError(
            "MFS_DATABASE_URL names an external server: back it up where it runs (docs/operations.md; Docker: "
            "`docker compose exec db pgbackrest --stanza=mfs backup`)"
        )
    return default_cluster()


def backup(cluster: LocalCluster | None = None, repo: Repository | None = None, *, full: bool = False) -> BackupInfo:
    """A full backup, or a differential one (changes since the last full; the first is full)."""
    cluster = cluster or local_cluster()
    repo = repo or repository()
    if not config_file(cluster).exists():
        raise StorageError("backups are off: set backup.enabled: true in config/mfs.yaml and run `mfs db up`")
    pgbackrest(cluster, repo, "backup", f"--type={'full' if full else 'diff'}")
    return backups(cluster, repo)[-1]


FULL_EVERY = dt.timedelta(days=6, hours=12)  # a weekly full, the nights between differential


def scheduled_backup(cluster: LocalCluster | None = None, repo: Repository | None = None) -> BackupInfo:
    """The nightly backup: full when the newest full one is a week old (or none exists), else
    differential. With ``retention_full: 2`` that keeps 1-2 weeks of point-in-time recovery."""
    cluster = cluster or local_cluster()
    repo = repo or repository()
    fulls = [b for b in backups(cluster, repo) if b.kind == "full"]
    due = not fulls or dt.datetime.now(dt.UTC) - fulls[-1].started >= FULL_EVERY
    return backup(cluster, repo, full=due)


def _utc(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def backups(cluster: LocalCluster, repo: Repository | None = None) -> list[BackupInfo]:
    """The repository's backups, oldest first, with sizes and the WAL range each needs."""
    repo = repo or repository()
    if not config_file(cluster).exists():
        raise StorageError("backups are off: set backup.enabled: true in config/mfs.yaml and run `mfs db up`")
    stanzas = json.loads(pgbackrest(cluster, repo, "info", "--output=json") or "[]")
    found = []
    for stanza in stanzas:
        for b in stanza.get("backup", []):
            found.append(
                BackupInfo(
                    label=b["label"],
                    kind=b["type"],
                    started=_utc(b["timestamp"]["start"]),
                    stopped=_utc(b["timestamp"]["stop"]),
                    database_bytes=b["info"]["size"],
                    repo_bytes=b["info"]["repository"]["delta"],
                    wal_start=b["archive"]["start"],
                    wal_stop=b["archive"]["stop"],
                )
            )
    return found


def archived_wal(cluster: LocalCluster, repo: Repository | None = None) -> tuple[int, int]:
    """(segments, bytes) of WAL in the repository (compressed, as stored)."""
    repo = repo or repository()
    root = repo.path / "archive" / repo.stanza
    files = [p for p in root.rglob("0*") if p.is_file() and len(p.name) > 24] if root.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


def parse_target(text: str) -> dt.datetime:
    """An ISO timestamp (UTC unless it names its zone)."""
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise StorageError(f"--to {text!r} is not an ISO timestamp (e.g. 2026-12-07T21:30:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _restore_args(to: dt.datetime | None) -> list[str]:
    if to is None:  # every archived WAL segment, down the newest timeline (after an earlier restore)
        return ["--type=default", "--target-timeline=latest"]
    stamp = to.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    return ["--type=time", f"--target={stamp}", "--target-action=promote"]


def restore(
    cluster: LocalCluster,
    repo: Repository | None = None,
    *,
    to: dt.datetime | None = None,
    target: LocalCluster | None = None,
) -> RestoreResult:
    """Restore the newest backup before ``to`` and replay the archived WAL up to ``to`` (None: to
    the end), into ``target`` (a fresh cluster folder: the copy archives nothing, so it can be
    checked before it replaces anything) or in place of ``cluster`` (its data folder moved aside)."""
    repo = repo or repository()
    if not config_file(cluster).exists():
        raise StorageError(f"no pgBackRest configuration in {cluster.root}: backups were never enabled there")
    started = time.monotonic()
    if cluster.running():
        pgbackrest(cluster, repo, "check")  # switches the WAL segment and waits until it is archived
    moved = None
    if target is None:
        cluster.stop()
        if cluster.data_dir.exists():  # gone with a lost disk: nothing to keep
            moved = cluster.root / f"data.before-restore-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
            cluster.data_dir.rename(moved)
        own_folder(cluster.data_dir, 0o700)
        dest, extra = cluster, []
    else:
        dest, extra = target, ["--archive-mode=off"]
        _prepare_target(cluster, target, repo)
    try:
        pgbackrest(dest, repo, "restore", f"--pg1-path={dest.data_dir}", *_restore_args(to), *extra)
    except StorageError:
        if moved is not None:  # nothing restored: the old data back where it was
            shutil.rmtree(cluster.data_dir, ignore_errors=True)
            moved.rename(cluster.data_dir)
        raise
    relocate(dest)
    dest.start()
    wait_until_primary(dest, PROMOTE_WAIT_S)
    if target is None:  # the new timeline's history in the repository before anyone relies on it
        pgbackrest(cluster, repo, "check")
    return RestoreResult(dest, round(time.monotonic() - started, 2), moved)


def _prepare_target(source: LocalCluster, target: LocalCluster, repo: Repository) -> None:
    if target.data_dir.exists() and any(target.data_dir.iterdir()):
        raise StorageError(f"{target.data_dir} is not empty: restore into a new folder")
    own_folder(target.root, 0o755)
    own_folder(target.data_dir, 0o700)
    shutil.copy2(source.password_file, target.password_file)
    target.password_file.chmod(0o600)
    write_config(target, repo)


def relocate(cluster: LocalCluster) -> None:
    """A copied data folder keeps the settings of where it came from: this cluster's port and
    socket (the last line of postgresql.auto.conf wins)."""
    own_folder(cluster.socket_dir, 0o755)
    auto = cluster.data_dir / "postgresql.auto.conf"
    with auto.open("a") as fh:
        fh.write(f"port = {cluster.port}\nunix_socket_directories = '{cluster.socket_dir}'\n")


def wait_until_primary(cluster: LocalCluster, timeout_s: float) -> None:
    """Wait until recovery has ended (the target reached, the server promoted)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not cluster.running():  # recovery stopped: e.g. a target before the oldest backup
            lines = [ln for ln in cluster.log_file.read_text().splitlines() if "FATAL" in ln] or ["see the log"]
            raise StorageError(f"recovery of {cluster.data_dir} stopped ({cluster.log_file}): {lines[-1]}")
        conn = connect(cluster.url("postgres"), autocommit=True, application_name="mfs-restore")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery()")
                (recovering,) = cur.fetchone() or (True,)
                if not recovering:
                    return
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise StorageError(f"{cluster.data_dir} still recovering after {timeout_s:g} s (see {cluster.log_file})")
        time.sleep(0.2)


def pg_ctl(cluster: LocalCluster, *args: str) -> None:
    """pg_ctl of the cluster's data folder as the server's user."""
    run_as_server([str(PG_BIN / "pg_ctl"), *args, "-D", str(cluster.data_dir)], f"pg_ctl {args[0]}")
