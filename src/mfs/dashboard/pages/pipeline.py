"""Pipeline: per deployment its last and next run, success rate and a run button (Prefect API);
durations over time, failures with reasons and every run, shell runs included (pipeline_history)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import ALL, Input, NoUpdate, Output, dcc, html, no_update
from dash import ctx as callback_ctx

from mfs.dashboard import prefect_api, queries
from mfs.dashboard.components import fmt, table
from mfs.errors import MfsError

if TYPE_CHECKING:
    from mfs.dashboard.app import Context

FAILED = {"failed", "crashed"}


def _deployment_rows(deps: list[prefect_api.DeploymentRuns]) -> html.Table:
    head = html.Thead(
        html.Tr([html.Th(c) for c in ("deployment", "flow", "schedule", "last run", "next run", "success", "")])
    )
    rows = []
    for dep in deps:
        runs = dep.runs
        finished = runs[runs["state_type"].isin(["COMPLETED", "FAILED", "CRASHED", "CANCELLED"])]
        scheduled = runs[runs["state_type"] == "SCHEDULED"].sort_values("expected")
        last = finished.iloc[0] if not finished.empty else None
        ok = (finished["state_type"] == "COMPLETED").sum()
        rate = f"{ok / len(finished):.0%} of {len(finished)}" if len(finished) else "no finished run"
        rows.append(
            html.Tr(
                [
                    html.Td(html.B(dep.name)),
                    html.Td(dep.flow),
                    html.Td(dep.timetable),
                    html.Td("never" if last is None else f"{last['state']} · {fmt(last['start'] or last['expected'])}"),
                    html.Td(fmt(scheduled.iloc[0]["expected"]) if not scheduled.empty else "none scheduled"),
                    html.Td(rate),
                    html.Td(html.Button("Run now", id={"type": "run-deployment", "index": dep.id}, className="run")),
                ],
                id=f"deployment-{dep.name}",
            )
        )
    return html.Table([head, html.Tbody(rows)], className="grid", id="deployments")


def _durations(history: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    done = history.dropna(subset=["seconds"])
    for flow, runs in done.groupby("flow"):
        colours = runs["status"].map(lambda s: "#d64545" if s in FAILED else "#2e9d5b")
        fig.add_scatter(
            x=runs["started_at"], y=runs["seconds"], mode="lines+markers", name=flow,
            marker={"color": colours, "size": 7}, hovertext=runs["status"], hoverinfo="text+x+y",
        )  # fmt: skip
    fig.update_layout(
        title="Run durations (s) by flow; red: failed", height=320, margin={"l": 50, "r": 20, "t": 40, "b": 30}
    )
    return fig


def layout(ctx: Context, query: dict[str, str]) -> html.Div:
    try:
        deps = prefect_api.deployments(ctx.prefect_api_url)
        prefect_part = (
            _deployment_rows(deps) if deps else html.P("No deployments: run `mfs stack up`.", className="warn")
        )
        prefect_ids = {run_id for d in deps for run_id in d.runs["id"]}
        prefect_failures = pd.concat([d.runs.assign(deployment=d.name) for d in deps] or [pd.DataFrame()])
    except MfsError as exc:
        prefect_part = html.P(f"{exc} — start it with `mfs stack up`.", className="error", id="prefect-down")
        prefect_ids, prefect_failures = set(), pd.DataFrame()
    history = queries.run_history(ctx.reader)
    history["source"] = history["run_id"].map(lambda r: "Prefect" if r in prefect_ids else "shell or other server")
    failures = history[history["status"].isin(FAILED)]
    if not prefect_failures.empty:
        prefect_failures = prefect_failures[prefect_failures["state_type"].isin(["FAILED", "CRASHED"])]
    return html.Div(
        [
            html.H2("Pipeline"),
            html.Div([html.H3("Deployments (Prefect)"), prefect_part, html.Div(id="run-result")], className="card"),
            dcc.Graph(id="pipeline-durations", figure=_durations(history), config={"displayModeBar": False}),
            html.Div(
                [
                    html.H3(f"Failures ({len(failures)} in the store's history)"),
                    table(failures, "pipeline-failures", ["started_at", "flow", "status", "error_summary", "run_id"]),
                    html.H4("Failed Prefect runs"),
                    table(prefect_failures, "prefect-failures", ["start", "deployment", "name", "state", "message"])
                    if not prefect_failures.empty
                    else html.P("none", className="note"),
                ],
                className="card",
            ),
            html.Div(
                [
                    html.H3(f"Runs, newest first ({len(history)}; shell runs included)"),
                    table(history, "pipeline-runs", ["started_at", "flow", "status", "seconds", "source", "run_id"]),
                ],
                className="card",
            ),
        ],
        id="pipeline-page",
    )


def register(app: dash.Dash, ctx: Context) -> None:
    @app.callback(
        Output("run-result", "children"),
        Input({"type": "run-deployment", "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def run(clicks: list[int | None] | None) -> html.P | NoUpdate:
        if not any(clicks or []):
            return no_update
        deployment_id = callback_ctx.triggered_id["index"]
        try:
            name = prefect_api.run_deployment(ctx.prefect_api_url, deployment_id)
        except Exception as exc:  # the API's answer, on the page, in one line
            return html.P(f"run not created: {type(exc).__name__}: {exc}", className="error", id="run-error")
        return html.P(f"flow run created: {name}", id="run-created")
