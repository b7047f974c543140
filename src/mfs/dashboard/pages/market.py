"""Market: the freshness of every symbol in the newest sessions, at a glance at 8,000 symbols.

Two heat maps over one cached read of the grid: groups (a symbol's first character) × session
coloured by the share of complete symbols, then the symbols of the chosen group or search ×
session coloured by status (problems first, at most MAX_ROWS rows). Symbols in the store that no
schedule covers (not in the configured list the deployments collect) are named above them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from mfs.config import get_config
from mfs.dashboard import queries
from mfs.dashboard.components import STATUS_COLOURS, badge

if TYPE_CHECKING:
    from mfs.dashboard.app import Context

MAX_ROWS = 150  # symbol rows drawn at once; more is unreadable and slow to draw
CODES = {status: i for i, status in enumerate(queries.STATUSES)}


@dataclass
class MarketView:
    """One read of the freshness grid and what every visit draws from it (built in the cache's
    refresh, not per request: at 8,000 symbols reshaping and the group map cost ~0.5 s)."""

    grid: pd.DataFrame  # one row per (symbol, session)
    wide: pd.DataFrame  # status codes, symbol × session, the symbols with the most problems first
    groups_figure: go.Figure
    stored: list[str]


def _view(ctx: Context) -> MarketView:
    cfg = get_config()

    def read() -> MarketView:
        grid = queries.freshness(ctx.reader, cfg.dashboard.sessions, cfg.intervals)
        wide = grid.assign(code=grid["status"].map(CODES)).set_index(["symbol", "session_date"])["code"].unstack()
        wide = wide.loc[(wide > 0).sum(axis=1).sort_values(ascending=False, kind="stable").index]
        return MarketView(grid, wide, _groups_figure(grid), sorted(set(grid["symbol"])))

    return ctx.cached("freshness", read)


def warm(ctx: Context) -> None:
    """Read the grid into the cache (at start); a failure is the first visit's to report."""
    with contextlib.suppress(Exception):  # logged by the cache; the page shows it when visited
        _view(ctx)


def layout(ctx: Context, query: dict[str, str]) -> html.Div:
    view = _view(ctx)
    grid, stored = view.grid, view.stored
    configured = set(get_config().symbols)
    uncovered = [s for s in stored if s not in configured]
    groups = sorted({s[0] for s in stored})
    return html.Div(
        [
            html.H2("Market freshness"),
            _summary(grid, stored, configured, uncovered),
            html.Div(
                [
                    dcc.Input(
                        id="market-search",
                        placeholder="search symbols (e.g. AA or BRK)",
                        value=query.get("q", ""),
                        debounce=True,
                    ),
                    dcc.Dropdown(
                        id="market-group",
                        options=[{"label": "all groups", "value": ""}] + [{"label": g, "value": g} for g in groups],
                        value=query.get("group", ""),
                        clearable=False,
                        style={"width": "160px"},
                    ),
                    dcc.Checklist(
                        id="market-problems",
                        options=[{"label": " only symbols with a problem", "value": "problems"}],
                        value=[],
                    ),
                ],
                className="controls",
            ),
            dcc.Graph(id="market-groups", figure=view.groups_figure, config={"displayModeBar": False}),
            html.Div(id="market-count", className="note"),
            dcc.Graph(id="market-grid", config={"displayModeBar": False}),
        ],
        id="market-page",
    )


def _summary(grid: pd.DataFrame, stored: list[str], configured: set[str], uncovered: list[str]) -> html.Div:
    if grid.empty:
        return html.Div("The store holds no symbols yet: run `mfs collect` or ./scripts/run.", className="card warn")
    newest = grid["session_date"].max()
    counts = grid[grid["session_date"] == newest]["status"].value_counts()
    badges = [badge(f"{counts.get(s, 0)} {s}", STATUS_COLOURS[s]) for s in queries.STATUSES]
    lines = [
        html.Div(
            [html.B(f"{len(stored)} symbols in the store, {len(configured)} configured; session {newest}: "), *badges]
        ),
    ]
    if uncovered:
        shown = ", ".join(uncovered[:50]) + (f" … ({len(uncovered)} in all)" if len(uncovered) > 50 else "")
        lines.append(
            html.Div(
                [
                    html.B(f"{len(uncovered)} symbols in the store that no schedule covers: "),
                    html.Span(shown, id="market-uncovered"),
                    html.Span(
                        " — stored (collected by hand or formerly configured) but not in `symbols` of "
                        "config/mfs.yaml, which the scheduled deployments collect: nothing refreshes them.",
                        className="note",
                    ),
                ],
                className="warn",
            )
        )
    return html.Div(lines, className="card", id="market-summary")


def _groups_figure(grid: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    if not grid.empty:
        # complete 1, partial ½ (a session in progress is partial for every symbol), anything else 0
        g = grid.assign(
            group=grid["symbol"].str[0], ok=grid["status"].map({"complete": 1.0, "partial": 0.5}).fillna(0.0)
        )
        share = g.groupby(["group", "session_date"])["ok"].mean().unstack()
        size = g.groupby("group")["symbol"].nunique()
        fig.add_heatmap(
            z=share.values,
            x=[str(d) for d in share.columns],
            y=[f"{i} ({size[i]})" for i in share.index],
            colorscale=[
                [0, STATUS_COLOURS["missing"]],
                [0.5, STATUS_COLOURS["partial"]],
                [1, STATUS_COLOURS["complete"]],
            ],
            zmin=0,
            zmax=1,
            colorbar={"title": "score", "len": 200, "lenmode": "pixels", "yanchor": "top", "y": 1},
            hovertemplate="group %{y}<br>session %{x}<br>score: %{z:.2f}<extra></extra>",
        )
    fig.update_layout(
        title="Groups (first character) by session: 1 = every symbol complete, ½ = partial, 0 = missing",
        height=max(220, 18 * grid["symbol"].str[0].nunique() + 120) if not grid.empty else 220,
        margin={"l": 80, "r": 20, "t": 40, "b": 40},
        yaxis={"autorange": "reversed", "type": "category"},
        xaxis={"type": "category"},
    )
    return fig


def filter_symbols(wide: pd.DataFrame, search: str, group: str, problems: bool) -> pd.DataFrame:
    """The rows of the chosen symbols: search (substring, case-insensitive), group, problems only."""
    keep = pd.Series(True, index=wide.index)
    if group:
        keep &= wide.index.str[0] == group
    if search:
        keep &= wide.index.str.contains(search.strip().upper(), regex=False)
    if problems:
        keep &= (wide > 0).any(axis=1)
    return wide[keep]


def _symbols_figure(wide: pd.DataFrame) -> tuple[go.Figure, str]:
    total = len(wide)
    wide = wide.head(MAX_ROWS)  # the symbols with the most problems come first
    n = len(queries.STATUSES)
    scale = []
    for i, status in enumerate(queries.STATUSES):
        scale += [[i / n, STATUS_COLOURS[status]], [(i + 1) / n, STATUS_COLOURS[status]]]
    labels = wide.apply(lambda col: col.map(lambda c: queries.STATUSES[int(c)] if pd.notna(c) else ""))
    fig = go.Figure(
        go.Heatmap(
            z=wide.values,
            x=[str(d) for d in wide.columns],
            y=list(wide.index),
            text=labels.values,
            zmin=-0.5,
            zmax=n - 0.5,
            colorscale=scale,
            colorbar={
                "tickvals": list(range(n)),
                "ticktext": queries.STATUSES,
                "len": 220,
                "lenmode": "pixels",
                "yanchor": "top",
                "y": 1,
            },
            hovertemplate="%{y} · %{x}: %{text}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        title="Freshness by symbol and session",
        height=max(260, 16 * len(wide) + 120),
        margin={"l": 80, "r": 20, "t": 40, "b": 40},
        yaxis={"autorange": "reversed", "type": "category"},
        xaxis={"type": "category", "side": "top"},
    )
    shown = f"{len(wide)} of {total} symbols shown" + (
        f" (the {MAX_ROWS} with the most problems; search or pick a group to see others)" if total > MAX_ROWS else ""
    )
    return fig, shown


def register(app: dash.Dash, ctx: Context) -> None:
    @app.callback(
        Output("market-grid", "figure"),
        Output("market-count", "children"),
        Input("market-search", "value"),
        Input("market-group", "value"),
        Input("market-problems", "value"),
    )
    def update(search: str | None, group: str | None, problems: list[str] | None) -> tuple[go.Figure, str]:
        wide = filter_symbols(_view(ctx).wide, search or "", group or "", "problems" in (problems or []))
        if wide.empty:
            return go.Figure(layout={"title": "no symbol matches", "height": 200}), "no symbol matches"
        return _symbols_figure(wide)
