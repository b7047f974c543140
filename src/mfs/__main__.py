"""``python -m mfs``: the ``mfs`` command."""

from mfs.cli.main import main

raise SystemExit(main())
