"""Where things live: the checkout, its config, its migrations, and the git-ignored state folder."""

from __future__ import annotations

import os
from pathlib import Path

# src/mfs/paths.py -> parents[2] is the checkout (the package is installed editable from it).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def project_root() -> Path:
    return Path(os.environ.get("MFS_PROJECT_ROOT", PROJECT_ROOT))


def state_dir() -> Path:
    """Git-ignored folder for the local cluster, generated secrets and Prefect's home."""
    return Path(os.environ.get("MFS_STATE_DIR", project_root() / ".mfs"))


def config_path() -> Path:
    return Path(os.environ.get("MFS_CONFIG", project_root() / "config" / "mfs.yaml"))


def features_path() -> Path:
    """The feature definitions (``MFS_FEATURES_FILE`` overrides ``config/features.yaml``)."""
    return Path(os.environ.get("MFS_FEATURES_FILE", project_root() / "config" / "features.yaml"))


def sql_dir() -> Path:
    return project_root() / "sql"


def scripts_dir() -> Path:
    return project_root() / "scripts"
