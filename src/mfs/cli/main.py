"""Entry point: one parser, verbs registered by the modules in COMMANDS.

Errors of our own (MfsError) become one clear line on stderr and a non-zero exit; so do database
errors no verb expects (a privilege, a lost connection, a full disk): the server's message and
its SQLSTATE, never a traceback. The traceback is logged at debug level (MFS_LOG_LEVEL=DEBUG).
Anything else is a bug and shows in full.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mfs import __version__
from mfs.config import get_config
from mfs.errors import MfsError, first_line
from mfs.logs import configure_logging, get_logger, mask_secrets

# Each module exposes register(subparsers). Later features add their module here.
COMMANDS = [
    "mfs.cli.db",
    "mfs.cli.collect",
    "mfs.cli.stack",
    "mfs.cli.features",
    "mfs.cli.aggregates",
    "mfs.cli.bench",
    "mfs.cli.dataset",
    "mfs.cli.dashboard",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mfs", description="market feature store")
    parser.add_argument("--version", action="version", version=f"mfs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _is_database_error(exc: BaseException) -> bool:
    # Looked up, not imported: a verb that never loaded the drivers cannot have raised their errors.
    psycopg2 = sys.modules.get("psycopg2")
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return bool((psycopg2 and isinstance(exc, psycopg2.Error)) or (sa_exc and isinstance(exc, sa_exc.DBAPIError)))


def describe_database_error(exc: BaseException) -> str:
    """The server's first message line and SQLSTATE name, e.g. ``the database refused:
    must be owner of view ohlcv_1d (insufficient_privilege)``."""
    # deferred: psycopg2 is 8 ms (python -X importtime, over what `mfs --help` loads); only a failed verb gets here
    import psycopg2
    import psycopg2.errorcodes

    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    if isinstance(orig, psycopg2.Error):
        exc = orig
    first = first_line(getattr(exc, "pgerror", None) or exc, type(exc).__name__).removeprefix("ERROR:").strip()
    code = getattr(exc, "pgcode", None)
    name = psycopg2.errorcodes.lookup(code).lower() if code else None
    if code is None and isinstance(exc, psycopg2.OperationalError):
        return f"lost or refused database connection: {first}"
    return f"the database refused: {first}" + (f" ({name})" if name else "")


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        get_config()  # validate configuration before doing anything
        return int(args.func(args) or 0)
    except MfsError as exc:
        get_logger("mfs.cli").debug("command failed", exc_info=True)
        print(f"mfs: error: {mask_secrets(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        get_logger("mfs.cli").debug("command failed", exc_info=True)
        print(f"mfs: error: {mask_secrets(describe_database_error(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mfs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
