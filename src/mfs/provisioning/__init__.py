"""Bring a store up: the local cluster (or MFS_DATABASE_URL's server), the database, its
migrations, and what the serving layer needs once the schema is current — role passwords from
the environment, the NYSE sessions table, the TimescaleDB policies. It sits above both
``mfs.storage`` and ``mfs.aggregates`` and is what ``mfs db up`` runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mfs.config import get_config
from mfs.provisioning.policies import apply_policies
from mfs.provisioning.roles import sync_role_passwords
from mfs.storage import backup, migrations
from mfs.storage.connection import external_url, masked
from mfs.storage.lifecycle import edition_note
from mfs.storage.localdb import default_cluster, ensure_server_installed
from mfs.storage.sessions import sync_sessions

__all__ = ["UpResult", "after_migrate", "apply_policies", "sync_role_passwords", "up"]


@dataclass(frozen=True)
class UpResult:
    url: str  # masked
    external: bool
    actions: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _start_local_cluster(progress: Callable[[str], None], actions: list[str]) -> str:
    cluster = default_cluster()
    progress("checking PostgreSQL + TimescaleDB installation")
    ensure_server_installed()
    if not cluster.initialized():
        progress(f"initialising local cluster in {cluster.data_dir}")
        cluster.init()
        actions.append("initialised cluster")
    if not cluster.running():
        progress(f"starting PostgreSQL on 127.0.0.1:{cluster.port}")
        cluster.start()
        actions.append("started server")
    cluster.ensure_reader_password()  # the dashboard logs in as mfs_reader (MFS_READER_PASSWORD overrides)
    if get_config().backup.enabled:
        progress("configuring WAL archiving to the pgBackRest repository")
        actions += backup.enable_archiving(cluster)
    return cluster.url()


def up(progress: Callable[[str], None] = lambda message: None) -> UpResult:
    """Idempotent: install/init/start the local cluster when no external URL, create the
    database, update the TimescaleDB extension, apply migrations, then ``after_migrate``."""
    started = time.monotonic()
    actions: list[str] = []
    url = external_url() or _start_local_cluster(progress, actions)
    progress("creating database and applying migrations")
    migrations.ensure_database(url)
    updated = migrations.update_extension(url)
    if updated:
        actions.append(f"updated TimescaleDB {updated[0]} -> {updated[1]}")
    actions += [f"applied {name}" for name in migrations.migrate(url, update=False)]
    note = edition_note(url)
    if note:
        actions.append(note)
    actions += after_migrate(url)
    return UpResult(
        url=masked(url),
        external=external_url() is not None,
        actions=actions,
        seconds=round(time.monotonic() - started, 2),
    )


def after_migrate(url: str | None = None) -> list[str]:
    """Everything the serving layer needs once the schema is current; returns what it did."""
    done = [f"password set for {role}" for role in sync_role_passwords(url)]
    counts = sync_sessions(url)
    if counts.inserted or counts.updated:
        done.append(f"market sessions: {counts.inserted} added, {counts.updated} updated")
    if apply_policies(url) == "applied":
        done.append("aggregate, compression and retention policies applied")
    done += _sync_feature_registry(url)
    return done


def _sync_feature_registry(url: str | None) -> list[str]:
    """The feature registry and columns follow config/features.yaml (the next ``mfs features`` run
    fills what is new)."""
    from mfs.features import definitions, registry  # deferred: TA-Lib, ~90 ms (importtime): `db up` only

    changes = registry.sync(definitions.load(), url)
    if changes.first:
        return [f"feature registry: {len(changes.added)} features registered"]
    return [
        f"feature registry: {what} {', '.join(names)}"
        for what, names in (
            ("added", changes.added),
            ("changed", changes.changed),
            ("retired", changes.retired),
            ("restored", changes.restored),
        )
        if names
    ]
