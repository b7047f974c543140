"""``mfs db up|down|status|url|migrate`` and ``mfs status``."""

from __future__ import annotations

import argparse

from mfs.cli import backup
from mfs.cli.output import print_json, print_table, progress


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="manage the database (local embedded cluster or MFS_DATABASE_URL)")
    verbs = db.add_subparsers(dest="verb", required=True, metavar="VERB")
    up = verbs.add_parser(
        "up", help="install, initialise and start the local cluster if needed; create the database; migrate"
    )
    up.set_defaults(func=cmd_up)
    verbs.add_parser("down", help="stop the local cluster (never an external server)").set_defaults(func=cmd_down)
    st = verbs.add_parser("status", help="same as `mfs status`")
    st.add_argument("--json", action="store_true", help="print one JSON object")
    st.set_defaults(func=cmd_status)
    url = verbs.add_parser("url", help='print the connection URL, e.g. psql "$(mfs db url)"')
    url.add_argument("--masked", action="store_true", help="hide the password")
    url.set_defaults(func=cmd_url)
    verbs.add_parser("migrate", help="apply pending migrations from sql/").set_defaults(func=cmd_migrate)
    backup.register(verbs)

    status = sub.add_parser("status", help="server, TimescaleDB edition, migrations, hypertables, row counts")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=cmd_status)


def cmd_up(args: argparse.Namespace) -> int:
    with progress("mfs db up") as report:
        from mfs import provisioning  # deferred: pandas, the calendar: ~550 ms (importtime)

        result = provisioning.up(report)
    print(f"database ready at {result.url} ({result.seconds} s)")
    for action in result.actions or ["nothing to do"]:
        print(f"  {action}")
    return 0


# The storage modules are imported by the verbs that use them: building the parser imports every
# verb's module, and SQLAlchemy alone is 0.15 s of every command's start.
def cmd_down(args: argparse.Namespace) -> int:
    # deferred: psycopg2, the local cluster, migrations: ~30 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.storage import lifecycle

    print(lifecycle.down())
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    # deferred: psycopg2 and the pool, ~12 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.storage.connection import database_url, masked

    url = database_url()
    print(masked(url) if args.masked else url)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    # deferred: psycopg2 and migrations, ~16 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.storage import migrations
    from mfs.storage.connection import database_url

    applied = migrations.migrate(database_url())
    print("\n".join(f"applied {name}" for name in applied) or "migrations up to date")
    return 0


def _print_monitoring(m: dict) -> None:
    """Three lines: the newest self-audit, the drifting features, the served-vs-final skew."""
    a = m["audit"]
    if a is None:
        print("feature audit  never run (mfs features audit)")
    else:
        verdict = "passed" if a["passed"] else f"FAILED ({a['mismatching_rows']} rows differ)"
        worst = f"{a['worst_rel_diff']:.2g}" if a["worst_rel_diff"] is not None else "-"
        print(f"feature audit  {a['at']:%Y-%m-%d %H:%M} UTC {verdict}: {a['symbols']} symbols, worst {worst} relative")
    drifting = m["drifting"]
    names = ", ".join(drifting[:5]) + (f" and {len(drifting) - 5} more" if len(drifting) > 5 else "")
    session = f"session {m['drift_newest_session']}" if m["drift_newest_session"] else "never checked"
    print(
        f"feature drift  {len(drifting)} drifting of {m['drift_judged']} judged, {m['drift_checked']} checked "
        f"({session}){': ' + names if names else ''}"
    )
    skew = ", ".join(f"{f} {s:.2g}" for f, s in m["largest_partial_skew"]) or "-"
    print(
        f"feature skew   {m['partial_versions_7d']} partial-bar versions in 7 days; largest median relative "
        f"skew: {skew} (SELECT * FROM feature_skew)"
    )


def cmd_status(args: argparse.Namespace) -> int:
    # deferred: Prefect and SQLAlchemy, ~250 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.orchestration.deploy import unscheduled_symbols

    # deferred: psycopg2, the local cluster, migrations: ~30 ms (python -X importtime, over what `mfs --help` loads)
    from mfs.storage import lifecycle

    info = lifecycle.store_status()
    stray = unscheduled_symbols()  # collected by hand: nothing keeps them fresh
    if args.json:
        print_json({**info, "unscheduled_symbols": stray})
        return 0
    tsdb = info["timescaledb"]
    print(f"server      PostgreSQL {info['server_version']} at {info['url']}")
    license_ = tsdb["license"] or "none"
    edition = {"timescale": "community", "apache": "Apache"}.get(license_, license_)
    print(f"timescaledb {tsdb['version']} ({edition} edition, timescaledb.license = {tsdb['license']})")
    if tsdb["store_edition"] and tsdb["store_edition"] != tsdb["license"]:
        print(f"            this store keeps the {tsdb['store_edition']} edition's aggregates (trigger rollups)")
    print(f"migrations  {', '.join(info['migrations']) or 'none'}")
    print_table("hypertables", ["name", "chunks"], [(h["name"], h["chunks"]) for h in info["hypertables"]])
    print_table("rows", ["table", "rows"], sorted(info["row_counts"].items()))
    if "feature_registry" in info:
        print_table("feature registry (versions)", ["state", "count"], list(info["feature_registry"].items()))
    if quality := info.get("data_quality"):
        print(
            f"data quality  open anomalies: {quality['open_high']} high, {quality['open_warning']} warning, "
            f"{quality['open_info']} info; {quality['held_back']} bars held back; "
            f"{quality['actions']} corporate actions known (SELECT * FROM data_quality)"
        )
    if monitoring := info.get("feature_monitoring"):
        _print_monitoring(monitoring)
    if stray:
        listed = ", ".join(f"{s['symbol']} (newest bar {s['newest_bar']:%Y-%m-%d %H:%M} UTC)" for s in stray[:10])
        more = f" and {len(stray) - 10} more" if len(stray) > 10 else ""
        print(
            f"unscheduled {len(stray)} symbol(s) in the store that no schedule collects: {listed}{more}; "
            "add them to `symbols` in config/mfs.yaml to keep them fresh"
        )
    for standby in info.get("replication", []):
        lag = standby["replay_lag_s"]
        print(
            f"replica     {standby['name']} {standby['state']} ({standby['sync_state']}): "
            f"{standby['lag_bytes']} bytes of WAL behind, replay lag {lag or 0:.3f} s"
        )
    if "continuous_aggregates" in info:
        print_table(
            "continuous aggregates",
            ["name", "real-time", "materialized up to"],
            [
                (c["name"], "yes" if c["real_time"] else "no", c["watermark"] or "never refreshed")
                for c in info["continuous_aggregates"]
            ],
        )
        print_table(
            "jobs",
            ["id", "policy", "relation", "every", "last run", "status", "next start", "failures"],
            [
                (
                    j["id"],
                    j["kind"],
                    j["relation"],
                    j["every"],
                    j["last_run"] or "-",
                    j["last_status"],
                    j["next_start"] or "-",
                    j["failures"],
                )
                for j in info["jobs"]
            ],
        )
    return 0
