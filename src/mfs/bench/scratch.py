"""A throwaway, migrated database on the store's server for one benchmark run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from mfs.config import get_config
from mfs.storage import migrations
from mfs.storage.connection import database_url, dispose_engines, with_database


@contextmanager
def scratch_database(prefix: str = "mfs_bench") -> Iterator[str]:
    """Create and migrate ``<prefix>_<random>``, point MFS_DATABASE_URL at it, drop it after."""
    server = database_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = with_database(server, name)
    migrations.ensure_database(url)
    previous = os.environ.get("MFS_DATABASE_URL")
    os.environ["MFS_DATABASE_URL"] = url
    get_config.cache_clear()
    try:
        migrations.migrate(url)
        yield url
    finally:
        dispose_engines()
        if previous is None:
            os.environ.pop("MFS_DATABASE_URL", None)
        else:
            os.environ["MFS_DATABASE_URL"] = previous
        get_config.cache_clear()
        migrations.drop_database(url)
