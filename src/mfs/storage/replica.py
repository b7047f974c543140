"""A streaming replica of a local cluster: a hot standby for readers and for failover.

``start`` copies the primary with ``pg_basebackup`` (streaming the WAL written meanwhile) into a
second local cluster, which then follows the primary over a replication connection through a
physical replication slot (the primary keeps the WAL the replica has not received, so a replica
that was down catches up). With backups on, the replica can also fetch WAL from the pgBackRest
archive (``restore_command``), and after ``promote`` it archives to the same repository on the
new timeline. ``synchronous`` makes the primary wait for the replica's flush of every commit: no
committed row is lost on failover, and a commit waits while the replica is down.
"""

from __future__ import annotations

import os
import time
from typing import TypedDict

from psycopg2 import sql

from mfs import paths
from mfs.config import get_config
from mfs.errors import StorageError
from mfs.logs import get_logger
from mfs.storage import backup
from mfs.storage.connection import connect
from mfs.storage.localdb import PG_BIN, LocalCluster, default_cluster
from mfs.storage.types import Cursor

log = get_logger("mfs.storage.replica")

NAME = "mfs_replica"  # application_name and replication slot of the local replica
HBA_LINE = "host replication all 127.0.0.1/32 scram-sha-256"
CATCH_UP_S = 120.0


class Standby(TypedDict):
    """A standby as the primary sees it (pg_stat_replication)."""

    name: str
    state: str  # startup, catchup, streaming
    sync_state: str  # async, sync, potential
    lag_bytes: int  # WAL written by the primary that the standby has not replayed yet
    replay_lag_s: float | None  # how long replaying the last commits took to follow (None: idle)


class ReplicaStatus(TypedDict):
    data_dir: str
    port: int
    running: bool
    in_recovery: bool | None
    replay_delay_s: float | None  # now() - the last replayed commit's time (grows while the primary is idle)


def replica_cluster() -> LocalCluster:
    cfg = get_config()
    db = cfg.database
    return LocalCluster(
        root=paths.state_dir() / "pg-replica", port=cfg.replica.port, user=db.user, dbname=db.name, edition=db.edition
    )


def _allow_replication(primary: LocalCluster) -> None:
    """Replication connections from 127.0.0.1, with a password (the cluster's pg_hba.conf allows
    only database connections)."""
    hba = primary.data_dir / "pg_hba.conf"
    if HBA_LINE not in hba.read_text():
        with hba.open("a") as fh:
            fh.write(HBA_LINE + "\n")
        _sql(primary, "SELECT pg_reload_conf()")


def _sql(cluster: LocalCluster, query: str | sql.Composable, params: tuple = ()) -> list[tuple]:
    conn = connect(cluster.url("postgres"), autocommit=True, application_name="mfs-replica")
    try:
        with conn.cursor() as cur:
            cur.execute(query, params or None)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _conninfo(primary: LocalCluster, password: bool = True) -> str:
    """How the replica reaches the primary (the password only in files of mode 0600, never in a
    command line another user's ``ps`` shows)."""
    secret = f" password={primary.password()}" if password else ""
    return f"host=127.0.0.1 port={primary.port} user={primary.user}{secret} application_name={NAME}"


def _base_backup(primary: LocalCluster, replica: LocalCluster) -> None:
    """pg_basebackup into the replica's folder, with a replication slot (created unless it exists)."""
    exists = _sql(primary, "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (NAME,))
    backup.own_folder(replica.root, 0o755)
    args = [str(PG_BIN / "pg_basebackup"), "-D", str(replica.data_dir), "-d", _conninfo(primary, password=False)]
    args += ["-X", "stream", "-c", "fast", "-S", NAME] + ([] if exists else ["-C"])
    backup.run_as_server(args, "pg_basebackup", dict(os.environ, PGPASSWORD=primary.password()))


def _standby_settings(primary: LocalCluster, replica: LocalCluster) -> None:
    """The copied settings made the replica's: its port and socket, the primary to follow, never a
    synchronous standby of its own (after a promotion nothing would answer), and — with backups on —
    WAL from the archive and, once promoted, archiving of its own."""
    if not replica.password_file.exists():  # the copy's superuser is the primary's
        replica.password_file.write_text(primary.password() + "\n")
        replica.password_file.chmod(0o600)
    backup.relocate(replica)
    lines = [
        f"primary_conninfo = '{_conninfo(primary)}'",
        f"primary_slot_name = '{NAME}'",
        "synchronous_standby_names = ''",
    ]
    if backup.config_file(primary).exists():
        repo = backup.repository_in(primary)
        backup.write_config(replica, repo)
        cmd = f"{backup.PGBACKREST} --config={backup.config_file(replica)} --stanza={repo.stanza}"
        lines += [f"restore_command = '{cmd} archive-get %f \"%p\"'", f"archive_command = '{cmd} archive-push %p'"]
    with (replica.data_dir / "postgresql.auto.conf").open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    (replica.data_dir / "standby.signal").touch()
    backup.own_folder(replica.data_dir, 0o700)  # pg_basebackup made it; chown keeps the files' owner


def start(
    primary: LocalCluster | None = None, replica: LocalCluster | None = None, *, synchronous: bool | None = None
) -> list[str]:
    """Idempotent: copy the primary (first time), start the replica, wait until it streams."""
    primary = primary or default_cluster()
    replica = replica or replica_cluster()
    synchronous = get_config().replica.synchronous if synchronous is None else synchronous
    if not primary.running():
        raise StorageError("the primary is not running: start it with `mfs db up`")
    actions = []
    if not replica.initialized():
        _allow_replication(primary)
        _base_backup(primary, replica)
        _standby_settings(primary, replica)
        actions.append(f"copied the primary into {replica.data_dir}")
    if not replica.running():
        replica.start()
        actions.append(f"replica started on 127.0.0.1:{replica.port}")
    wanted = NAME if synchronous else ""
    (current,) = _sql(primary, "SHOW synchronous_standby_names")[0]
    if current != wanted:
        _sql(primary, sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(sql.Literal(wanted)))
        _sql(primary, "SELECT pg_reload_conf()")
        actions.append("synchronous replication " + ("on" if synchronous else "off"))
    wait_for_catch_up(primary, CATCH_UP_S)
    return actions


def stop(replica: LocalCluster | None = None) -> str:
    replica = replica or replica_cluster()
    if not replica.running():
        return "replica is not running"
    replica.stop()
    return "replica stopped (the primary keeps its WAL in the slot until it is back)"


def standbys(cur: Cursor) -> list[Standby]:
    """Every standby streaming from the server of ``cur`` (empty on a standby or without replicas)."""
    cur.execute(
        """SELECT application_name, state, sync_state,
                  coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint,
                  extract(epoch FROM replay_lag)::float8
           FROM pg_stat_replication WHERE NOT pg_is_in_recovery() ORDER BY application_name"""
    )
    return [
        {"name": n, "state": st, "sync_state": sync, "lag_bytes": lag, "replay_lag_s": rl}
        for n, st, sync, lag, rl in cur.fetchall()
    ]


def status(replica: LocalCluster | None = None) -> ReplicaStatus:
    replica = replica or replica_cluster()
    info: ReplicaStatus = {
        "data_dir": str(replica.data_dir),
        "port": replica.port,
        "running": replica.running(),
        "in_recovery": None,
        "replay_delay_s": None,
    }
    if info["running"]:
        ((recovering, delay),) = _sql(
            replica, "SELECT pg_is_in_recovery(), extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
        )
        info["in_recovery"], info["replay_delay_s"] = recovering, delay
    return info


def wait_for_catch_up(primary: LocalCluster, timeout_s: float, name: str = NAME) -> float:
    """Seconds until the standby ``name`` has replayed everything the primary has written so far."""
    started = time.monotonic()
    (target,) = _sql(primary, "SELECT pg_current_wal_lsn()::text")[0]
    while True:
        rows = _sql(
            primary,
            "SELECT pg_wal_lsn_diff(%s::pg_lsn, replay_lsn) <= 0 FROM pg_stat_replication WHERE application_name = %s",
            (target, name),
        )
        if rows and rows[0][0]:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise StorageError(f"the replica {name} did not catch up within {timeout_s:g} s")
        time.sleep(0.05)


def promote(replica: LocalCluster | None = None) -> str:
    """Failover: the replica stops following and accepts writes (a new timeline). Point the
    pipeline at it: ``MFS_DATABASE_URL`` = the URL this returns."""
    replica = replica or replica_cluster()
    if not replica.running():
        raise StorageError(f"the replica is not running ({replica.data_dir}): start it first")
    backup.pg_ctl(replica, "promote", "-w", "-t", "120")
    backup.wait_until_primary(replica, 120)
    # The end-of-recovery checkpoint runs in the background; until it ends pg_control still names
    # the old timeline and pgBackRest refuses to back the new primary up.
    _sql(replica, "CHECKPOINT")
    return replica.url()
