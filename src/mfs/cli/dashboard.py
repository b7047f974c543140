"""``mfs dashboard``: the web app (market freshness, symbol charts as known at any time, pipeline,
features), on 127.0.0.1 unless configured (dashboard.host / MFS_DASHBOARD__HOST)."""

from __future__ import annotations

import argparse

from mfs.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    dash = sub.add_parser(
        "dashboard",
        help="web dashboard: freshness grid, charts as known at any time, pipeline, features (reads as mfs_reader)",
        description="Serve the dashboard (Dash + Plotly behind the waitress WSGI server) in the foreground, or "
        "start/stop it in the background as part of the local stack (pid and log in .mfs/dashboard/). It reads "
        "the store as mfs_reader only: with MFS_READER_PASSWORD it logs in as that role, else the session is "
        "switched to it at connect time.",
    )
    dash.add_argument("--host", help="interface to bind (default dashboard.host: 127.0.0.1)")
    dash.add_argument("--port", type=int, help="port (default dashboard.port: 8050)")
    mode = dash.add_mutually_exclusive_group()
    mode.add_argument("--background", action="store_true", help="start it in the background and print its address")
    mode.add_argument("--stop", action="store_true", help="stop the background dashboard")
    dash.set_defaults(func=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    # deferred: the service's process handling, ~46 ms over `mfs --help` (-X importtime, 2026-12-08)
    from mfs.dashboard import service

    if args.port is not None and not 1024 <= args.port <= 65535:
        raise ConfigError(f"--port must be 1024-65535, got {args.port}")
    if args.stop:
        print("dashboard stopped" if service.stop() else "no dashboard was running")
        return 0
    if args.background:
        started, url = service.start(args.host, args.port)
        print(f"dashboard {'started' if started else 'already running'}: {url}")
        return 0
    return _serve(args.host, args.port)


def _serve(host: str | None, port: int | None) -> int:
    # deferred: Dash, Plotly and pandas, ~920 ms over `mfs --help` (-X importtime, 2026-12-08)
    from mfs.dashboard.app import create_app, serve
    from mfs.dashboard.db import Reader
    from mfs.dashboard.prefect_api import preload
    from mfs.dashboard.service import address

    reader = Reader()
    reader.scalar("SELECT 1")  # a store that refuses the reader role stops here, in one line
    preload()
    server = serve(host, port, create_app(reader))
    print(f"dashboard: {address(host, port)} (reading as mfs_reader; Ctrl-C stops)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        reader.close()
    return 0
