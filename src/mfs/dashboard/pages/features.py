"""Features: the registry (every version, its dates and state), and feature monitoring (statistics,
drift, training/serving skew, audits) where the store has those relations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dash
from dash import html

from mfs.dashboard import queries
from mfs.dashboard.components import table

if TYPE_CHECKING:
    from mfs.dashboard.app import Context

REGISTRY_COLUMNS = ["name", "state", "version", "description", "warmup", "added_at", "filled_at", "superseded_at",
                    "retired_at", "pruned_at"]  # fmt: skip


def layout(ctx: Context, query: dict[str, str]) -> html.Div:
    reg = queries.registry(ctx.reader)
    reg["version"] = reg["version"].str[:12]
    active = int((reg["state"] == "active").sum())
    present = queries.readable_relations(ctx.reader, queries.MONITORING)
    monitoring = []
    for name in queries.MONITORING:
        if name in present:
            count, rows = queries.newest_rows(ctx.reader, name)
            monitoring += [
                html.H4(f"{name}: {count} rows" + (f", the newest {len(rows)}" if count > len(rows) else "")),
                html.Div(table(rows, f"monitoring-{name}"), style={"overflowX": "auto"}),
            ]
        else:
            monitoring.append(
                html.P(f"{name}: not yet available in this store", className="note", id=f"monitoring-{name}-missing")
            )
    return html.Div(
        [
            html.H2("Features"),
            html.Div(
                [
                    html.H3(f"Registry: {active} active features, {len(reg)} versions in all"),
                    table(reg, "feature-registry", REGISTRY_COLUMNS, limit=1000),
                ],
                className="card",
            ),
            html.Div([html.H3("Monitoring: statistics, drift, skew, audits"), *monitoring], className="card"),
        ],
        id="features-page",
    )


def register(app: dash.Dash, ctx: Context) -> None:
    """No callbacks: the page is drawn once per visit."""
