"""Passwords of the ``mfs_writer`` / ``mfs_reader`` roles, from the environment only.

The roles are created NOLOGIN by ``sql/034_roles.sql`` (no secret ever lives in sql/). When
``MFS_WRITER_PASSWORD`` / ``MFS_READER_PASSWORD`` is set, the role gets that password and LOGIN;
when unset the role is left as it is — several processes (and parallel test sessions) migrate the
same server, and one without the variable must not lock out a role another configured.
"""

from __future__ import annotations

import os

from psycopg2 import sql

from mfs.logs import get_logger
from mfs.storage.connection import connect, reader_password

ROLE_PASSWORD_ENV = {"mfs_writer": "MFS_WRITER_PASSWORD", "mfs_reader": "MFS_READER_PASSWORD"}
log = get_logger("mfs.provisioning.roles")


def sync_role_passwords(url: str | None = None) -> list[str]:
    """Set LOGIN and the password of each role whose variable is set (mfs_reader's: see
    ``reader_password``); return the roles changed."""
    wanted = {role: os.environ.get(env, "") for role, env in ROLE_PASSWORD_ENV.items()}
    wanted["mfs_reader"] = reader_password() or ""
    wanted = {role: password for role, password in wanted.items() if password}
    if not wanted:
        return []
    conn = connect(url, autocommit=True, application_name="mfs-roles")
    try:
        with conn.cursor() as cur:
            for role, password in wanted.items():
                # psycopg2 quotes the literal client-side; the statement itself is never logged by us.
                cur.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(role)), (password,))
                log.info("role password set", role=role)
    finally:
        conn.close()
    return sorted(wanted)
