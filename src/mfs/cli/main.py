"""Entry point: one parser, verbs registered by the modules in COMMANDS.

Errors of our own (MfsError) become one clear line on stderr and a non-zero exit; the traceback
is logged only at debug level (MFS_LOG_LEVEL=DEBUG). Anything else is a bug and shows in full.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mfs import __version__
from mfs.config import get_config
from mfs.errors import MfsError
from mfs.logs import configure_logging, get_logger, mask_secrets

# Each module exposes register(subparsers). Later features add their module here.
COMMANDS = ["mfs.cli.db", "mfs.cli.collect", "mfs.cli.stack", "mfs.cli.features", "mfs.cli.aggregates", "mfs.cli.bench"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mfs", description="market feature store")
    parser.add_argument("--version", action="version", version=f"mfs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


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
    except KeyboardInterrupt:
        print("mfs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
