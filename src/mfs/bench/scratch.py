"""A throwaway, migrated database for one benchmark run, on the store's server or a local
cluster of a chosen TimescaleDB edition."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from mfs.config import get_config
from mfs.errors import ConfigError
from mfs.storage import migrations
from mfs.storage.connection import database_url, dispose_pools, external_url, with_database
from mfs.storage.lifecycle import start_edition_cluster


def edition_server(edition: str) -> str:
    """The admin URL of a local cluster running ``edition`` (started when it is not running).

    Refused when MFS_DATABASE_URL names an external server: the store then is that server, whose
    edition is its own, and a benchmark of local clusters would not describe it."""
    if edition not in migrations.EDITIONS:
        raise ConfigError(f"edition must be one of {', '.join(migrations.EDITIONS)}, got {edition!r}")
    if external_url():
        raise ConfigError(
            f"a benchmark of the {edition!r} edition runs on a local cluster, but MFS_DATABASE_URL "
            "names an external server (its edition is its own): unset it, or leave out --edition"
        )
    return start_edition_cluster(edition)


@contextmanager
def using_database(url: str) -> Iterator[str]:
    """Point MFS_DATABASE_URL, and the configuration read from it, at ``url`` for the block."""
    previous = os.environ.get("MFS_DATABASE_URL")
    os.environ["MFS_DATABASE_URL"] = url
    get_config.cache_clear()
    try:
        yield url
    finally:
        if previous is None:
            os.environ.pop("MFS_DATABASE_URL", None)
        else:
            os.environ["MFS_DATABASE_URL"] = previous
        get_config.cache_clear()


@contextmanager
def scratch_database(prefix: str = "mfs_bench", server: str | None = None) -> Iterator[str]:
    """Create and migrate ``<prefix>_<random>`` on ``server`` (an admin URL; default the store's
    server), point MFS_DATABASE_URL at it, drop it after."""
    server = server or database_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    url = with_database(server, name)
    migrations.ensure_database(url)
    try:
        with using_database(url):
            migrations.migrate(url)
            yield url
    finally:
        dispose_pools()
        migrations.drop_database(url)
