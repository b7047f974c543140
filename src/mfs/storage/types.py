"""The names annotations use for psycopg2's connection and cursor, and the one-row fetch.

One place defines them so every module spells them the same way (types-psycopg2 gives them
their methods' types).
"""

from typing import Any

from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

from mfs.errors import StorageError

__all__ = ["Connection", "Cursor", "one_row"]


def one_row(cur: Cursor) -> tuple[Any, ...]:
    """The row of a query that always returns one (``SELECT count(*)``, ``SELECT EXISTS``, a
    function call): psycopg2's ``fetchone()`` may say "no row", these queries never do."""
    row = cur.fetchone()
    if row is None:
        raise StorageError(f"the query returned no row: {(cur.query or b'').decode(errors='replace')[:200]}")
    return row
