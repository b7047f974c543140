"""The store's clock and what a write says about itself.

Every version of a bar or feature row records when it entered the store and when it was replaced
(``known_from`` / ``known_to``), on one clock: the database's ``now()``, unless ``MFS_CLOCK``
pins it (tests and shell drills run the synthetic market on a clock of their own; the store must
record the same one, or a partial bar fetched "at 10:00" would look fetched after its close).
The SQL side is ``mfs_now()`` (sql/050_point_in_time.sql), which reads the ``mfs.clock``
setting of the transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from typing import TypedDict

from mfs.config import get_config
from mfs.errors import ConfigError
from mfs.storage.types import Cursor

CLOCK_ENV = "MFS_CLOCK"


class WriteContext(TypedDict, total=False):
    """The keyword arguments of ``set_write_context``, as a task carries them to a worker."""

    run_id: str | None
    reason: str | None
    clock: str | None
    keep: bool | None


def pinned_clock() -> str | None:
    """``MFS_CLOCK`` as an ISO timestamp in UTC, or None when the store runs on the server's clock."""
    raw = os.environ.get(CLOCK_ENV, "").strip()
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{CLOCK_ENV}={raw!r} is not an ISO timestamp (e.g. 2026-11-20T15:00:00Z)") from None
    if when.tzinfo is None:
        raise ConfigError(f"{CLOCK_ENV}={raw!r} has no time zone (e.g. 2026-11-20T15:00:00Z)")
    return when.astimezone(dt.UTC).isoformat()


def set_write_context(
    cur: Cursor,
    *,
    run_id: str | None = None,
    reason: str | None = None,
    clock: str | None = None,
    readjusted: Sequence[str] | Mapping[str, str] = (),
    keep: bool | None = None,
) -> None:
    """For the rest of the transaction: the clock its writes record (``clock``, "" for the server's;
    None: ``MFS_CLOCK``, else the server's), the run and reason the revision triggers note with every
    version they keep (``readjusted``: symbols whose history is rewritten in Yahoo's new
    adjustment, or a mapping of them to what caused it, which the revisions name), and whether
    they keep them (``keep``, default ``database.keep_revisions``)."""
    causes = {s: why for s, why in readjusted.items() if why} if isinstance(readjusted, Mapping) else {}
    cur.execute(
        "SELECT set_config('mfs.clock', %s, true), set_config('mfs.run_id', %s, true),"
        " set_config('mfs.revision_reason', %s, true), set_config('mfs.readjusted', %s, true),"
        " set_config('mfs.readjusted_for', %s, true), set_config('mfs.keep_revisions', %s, true)",
        (
            (pinned_clock() or "") if clock is None else clock,
            run_id or "",
            reason or "",
            ",".join(readjusted),
            json.dumps(causes) if causes else "",
            "on" if (get_config().database.keep_revisions if keep is None else keep) else "off",
        ),
    )
