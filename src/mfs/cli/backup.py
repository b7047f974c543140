"""``mfs db backup|backups|restore`` and ``mfs db replica start|stop|status|promote``."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from mfs.cli.output import print_json, print_table
from mfs.errors import StorageError


def register(verbs: argparse._SubParsersAction) -> None:
    """The backup and replica verbs, under ``mfs db``."""
    b = verbs.add_parser("backup", help="back the local cluster up with pgBackRest (differential unless --full)")
    b.add_argument("--full", action="store_true", help="a full backup (default: changes since the last full)")
    b.set_defaults(func=cmd_backup)
    ls = verbs.add_parser("backups", help="list the backups: type, time, sizes, WAL range")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(func=cmd_backups)
    r = verbs.add_parser(
        "restore", help="restore a backup and replay WAL to a moment (into --target-dir, or in place of the cluster)"
    )
    when = r.add_mutually_exclusive_group(required=True)
    when.add_argument("--to", metavar="TIME", help="ISO timestamp (UTC unless it names a zone): the state then")
    when.add_argument("--latest", action="store_true", help="every archived change")
    r.add_argument(
        "--target-dir", type=Path, help="a new folder: the copy starts there on --port, archiving nothing, to check"
    )
    r.add_argument("--port", type=int, help="port of the restored copy (default: a free one)")
    r.set_defaults(func=cmd_restore)

    rep = verbs.add_parser("replica", help="a streaming replica of the local cluster (readers, failover)")
    actions = rep.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("start", help="copy the primary (first time) and start streaming").set_defaults(
        func=cmd_replica_start
    )
    actions.add_parser("stop", help="stop the replica (it catches up when started again)").set_defaults(
        func=cmd_replica_stop
    )
    st = actions.add_parser("status", help="running, recovering, lag behind the primary")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=cmd_replica_status)
    actions.add_parser("promote", help="failover: the replica becomes a primary; prints its URL").set_defaults(
        func=cmd_replica_promote
    )
    url_help = 'the replica\'s URL, e.g. export MFS_READER_URL="$(mfs db replica url)"'
    actions.add_parser("url", help=url_help).set_defaults(func=cmd_replica_url)


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def cmd_backup(args: argparse.Namespace) -> int:
    # deferred: psycopg2 + pgBackRest wrappers, ~35 ms over `mfs --help` (-X importtime, 2026-12-08)
    from mfs.storage import backup

    info = backup.backup(backup.local_cluster(), full=args.full)
    seconds = (info.stopped - info.started).total_seconds()
    print(
        f"{info.kind} backup {info.label}: {_size(info.database_bytes)} of data, "
        f"{_size(info.repo_bytes)} added to the repository, {seconds:.0f} s"
    )
    return 0


def cmd_backups(args: argparse.Namespace) -> int:
    # deferred: psycopg2 + pgBackRest wrappers, ~35 ms over `mfs --help` (-X importtime, 2026-12-08)
    from mfs.storage import backup

    cluster = backup.local_cluster()
    found = backup.backups(cluster)
    segments, wal_bytes = backup.archived_wal(cluster)
    if args.json:
        print_json({"backups": [vars(b) for b in found], "wal_segments": segments, "wal_bytes": wal_bytes})
        return 0
    rows = [
        (b.label, b.kind, f"{b.started:%Y-%m-%d %H:%M:%S}Z", _size(b.database_bytes), _size(b.repo_bytes),
         f"{b.wal_start}..{b.wal_stop}")
        for b in found
    ]  # fmt: skip
    print_table("backups", ["label", "type", "started (UTC)", "data", "in repository", "WAL"], rows)
    print(f"archived WAL: {segments} segments, {_size(wal_bytes)}; restorable from the oldest backup's end on")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    # deferred: psycopg2 + pgBackRest wrappers, ~35 ms over `mfs --help` (-X importtime, 2026-12-08)
    from mfs.storage import backup
    from mfs.storage.localdb import LocalCluster

    cluster = backup.local_cluster()
    to = backup.parse_target(args.to) if args.to else None
    target = None
    if args.target_dir:
        root = args.target_dir.resolve()
        target = LocalCluster(root, args.port or _free_port(), cluster.user, cluster.dbname, cluster.edition)
    result = backup.restore(cluster, to=to, target=target)
    where = "the local cluster" if target is None else str(result.cluster.data_dir)
    print(f"restored {where} to {to.isoformat() if to else 'the latest archived change'} in {result.seconds} s")
    if result.moved_aside:
        print(f"  the replaced data folder is kept in {result.moved_aside} (delete it once satisfied)")
    if target is not None:
        print(f"  running at {result.cluster.url()}  (stop it: pg_ctl -D {result.cluster.data_dir} stop)")
    return 0


def _free_port() -> int:

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cmd_replica_start(args: argparse.Namespace) -> int:
    # deferred: psycopg2 + replica wrappers, ~22 ms over `mfs --help` (-X importtime, 2026-12-08)
    from mfs.storage import replica

    for line in replica.start() or ["replica already running and caught up"]:
        print(line)
    return 0


def cmd_replica_stop(args: argparse.Namespace) -> int:
    # deferred: psycopg2 + replica wrappers, ~22 ms over `mfs --help` (-X importtime, 2026-12-08)
    from mfs.storage import replica

    print(replica.stop())
    return 0


def cmd_replica_status(args: argparse.Namespace) -> int:
    # deferred: psycopg2 + replica wrappers, ~22 ms over `mfs --help` (-X importtime, 2026-12-08)
    from mfs.storage import replica

    info = replica.status()
    if args.json:
        print_json(info)
        return 0
    if not info["running"]:
        print(f"replica not running ({info['data_dir']})")
        return 0
    role = "standby" if info["in_recovery"] else "primary (promoted)"
    delay = info["replay_delay_s"]
    print(f"replica  {role} on 127.0.0.1:{info['port']}, last replayed commit {delay or 0:.1f} s ago")
    return 0


def cmd_replica_promote(args: argparse.Namespace) -> int:
    # deferred: psycopg2 + replica wrappers, ~22 ms over `mfs --help` (-X importtime, 2026-12-08)
    from mfs.storage import replica
    from mfs.storage.connection import masked

    url = replica.promote()
    print(f"promoted: {masked(url)} accepts writes; point the pipeline at it (MFS_DATABASE_URL)")
    return 0


def cmd_replica_url(args: argparse.Namespace) -> int:
    # deferred: psycopg2 + replica wrappers, ~22 ms over `mfs --help` (-X importtime, 2026-12-08)
    from mfs.storage import replica

    cluster = replica.replica_cluster()
    if not cluster.initialized():
        raise StorageError(f"no replica in {cluster.root}: create it with `mfs db replica start`")
    print(cluster.url())
    return 0
