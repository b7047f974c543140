"""`backup` — the nightly pgBackRest backup of the local cluster (deployment `nightly-backup`).

A failed backup raises, so the run ends Failed and alerts like any other (mfs.orchestration.alerts).
With backups off (the default) the run ends Completed in the state "Backups off"."""

from __future__ import annotations

from prefect import flow, task
from prefect.states import Completed, State

from mfs.config import get_config
from mfs.flow_names import BACKUP
from mfs.orchestration.runtime import flow_timeout
from mfs.storage import backup

BACKUPS_OFF = "Backups off"


@task(name="pgbackrest-backup")
def take_backup(full: bool | None) -> dict:
    info = backup.backup(full=full) if full is not None else backup.scheduled_backup()
    seconds = (info.stopped - info.started).total_seconds()
    return {"label": info.label, "kind": info.kind, "seconds": seconds, "repo_bytes": info.repo_bytes}


@flow(name=BACKUP, timeout_seconds=flow_timeout(BACKUP))
def nightly_backup(full: bool | None = None) -> dict | State:
    """full: true/false forces the kind; default: full once a week, differential the other nights."""
    if not get_config().backup.enabled:
        return Completed(name=BACKUPS_OFF, message="backup.enabled is false in config/mfs.yaml")
    return take_backup(full)
