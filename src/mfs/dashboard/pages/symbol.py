"""Symbol: candlesticks (hourly or daily), volume, registry features, quality marks, "as known at".

"As known at" K redraws bars and features as the store held them at K (the versions valid then,
queries.bars/features); after a split, a K before the re-adjustment shows the old prices. Bars
stored before they closed (partial) are drawn hollow and grey. A feature is overlaid on the
price when its values lie within the price range (moving averages, bands), else in a panel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import Input, NoUpdate, Output, State, dcc, html, no_update
from dash import ctx as callback_ctx
from plotly.subplots import make_subplots

from mfs.dashboard import queries
from mfs.dashboard.components import fmt, parse_time, table
from mfs.market import NY

if TYPE_CHECKING:
    from mfs.dashboard.app import Context

BARS = {"1h": 350, "1d": 300}  # bars drawn: ~50 sessions of hourly bars, ~14 months of daily ones
DEFAULT_FEATURES = ["sma_20", "rsi_14"]


def layout(ctx: Context, query: dict[str, str]) -> html.Div:
    symbols = ctx.cached("symbols", lambda: queries.symbols(ctx.reader)["symbol"].tolist())
    chartable = ctx.cached("chartable", lambda: queries.chartable_features(ctx.reader))
    symbol = query.get("symbol") or (symbols[0] if symbols else None)
    return html.Div(
        [
            html.H2("Symbol"),
            html.Div(
                [
                    dcc.Dropdown(
                        id="symbol-name", options=symbols, value=symbol, clearable=False, style={"width": "180px"}
                    ),
                    dcc.RadioItems(
                        id="symbol-interval", options=["1h", "1d"], value=query.get("interval", "1h"), inline=True
                    ),
                    dcc.Dropdown(
                        id="symbol-features",
                        options=chartable,
                        value=[f for f in DEFAULT_FEATURES if f in chartable],
                        multi=True,
                        placeholder="features from the registry",
                        style={"minWidth": "320px"},
                    ),
                ],
                className="controls",
            ),
            html.Div(
                [
                    html.Label("as known at (UTC; empty = now) "),
                    dcc.Input(
                        id="symbol-known-at",
                        value=query.get("known_at", ""),
                        debounce=True,
                        placeholder="now",
                        style={"width": "260px"},
                    ),
                    html.Button("◀ previous version", id="symbol-prev"),
                    html.Button("next version ▶", id="symbol-next"),
                    html.Button("now", id="symbol-now"),
                ],
                className="controls",
            ),
            html.Div(id="symbol-summary", className="card"),
            dcc.Graph(id="symbol-chart", config={"displaylogo": False}),
            html.Div(id="symbol-marks"),
        ],
        id="symbol-page",
    )


def _step(ctx: Context, symbol: str, interval: str, current: str | None, direction: int) -> str:
    """The previous/next moment this series changed, from the time control's current value."""
    times = queries.version_times(ctx.reader, symbol, interval)
    if not times:
        return ""
    try:
        at = parse_time(current) or times[-1] + pd.Timedelta(microseconds=1)
    except ValueError:
        at = times[-1]
    if direction < 0:
        earlier = [t for t in times if t < at]
        return (earlier[-1] if earlier else times[0]).isoformat()
    later = [t for t in times if t > at]
    return later[0].isoformat() if later else ""


def _ny(frame: pd.DataFrame, column: str = "ts") -> pd.DataFrame:
    """``column`` as New York wall time (a market chart; sessions line up across DST changes)."""
    if frame.empty or column not in frame:
        return frame
    return frame.assign(**{column: pd.to_datetime(frame[column], utc=True).dt.tz_convert(NY).dt.tz_localize(None)})


def figure(
    bars: pd.DataFrame,
    feats: pd.DataFrame,
    names: list[str],
    marks: dict[str, pd.DataFrame],
    title: str,
    interval: str,
) -> go.Figure:
    bars, feats = _ny(bars), _ny(feats)
    marks = {**marks, "anomalies": _ny(marks["anomalies"]), "quarantined": _ny(marks["quarantined"])}
    low, high = (bars["low"].min(), bars["high"].max()) if not bars.empty else (0, 0)
    overlay = [n for n in names if n in feats and feats[n].notna().any() and low <= feats[n].median() <= high]
    panels = [n for n in names if n in feats and n not in overlay]
    rows = 2 + len(panels)
    fig = make_subplots(
        rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.03,
        row_heights=[0.55, 0.15] + [0.3 / max(1, len(panels))] * len(panels),
    )  # fmt: skip
    closed = bars["complete"].astype(bool)  # an empty frame's column is of object dtype
    done, partial = bars[closed], bars[~closed]
    fig.add_candlestick(
        x=done["ts"],
        open=done["open"],
        high=done["high"],
        low=done["low"],
        close=done["close"],
        name="bars",
        row=1,
        col=1,
    )
    if not partial.empty:
        fig.add_candlestick(
            x=partial["ts"], open=partial["open"], high=partial["high"], low=partial["low"], close=partial["close"],
            name="partial (stored before it closed)", row=1, col=1,
            increasing={"line": {"color": "#8c96a3"}, "fillcolor": "rgba(0,0,0,0)"},
            decreasing={"line": {"color": "#8c96a3"}, "fillcolor": "rgba(0,0,0,0)"},
        )  # fmt: skip
    fig.add_bar(x=bars["ts"], y=bars["volume"], name="volume", marker_color="#7b8794", row=2, col=1)
    for name in overlay:
        fig.add_scatter(x=feats["ts"], y=feats[name], name=name, mode="lines", line={"width": 1.2}, row=1, col=1)
    for i, name in enumerate(panels):
        fig.add_scatter(x=feats["ts"], y=feats[name], name=name, mode="lines", line={"width": 1.2}, row=3 + i, col=1)
        fig.update_yaxes(title_text=name, row=3 + i, col=1)
    _add_marks(fig, bars, marks, high)
    fig.update_layout(
        title=title, height=520 + 150 * len(panels), margin={"l": 60, "r": 20, "t": 50, "b": 30},
        xaxis_rangeslider_visible=False, legend={"orientation": "h", "y": -0.05},
    )  # fmt: skip
    breaks: list[dict[str, object]] = [{"bounds": ["sat", "mon"]}]
    if interval == "1h":  # nights: the axis is New York time, so the session is 09:30-16:00 in every season
        breaks.append({"bounds": [16, 9.5], "pattern": "hour"})
    fig.update_xaxes(rangebreaks=breaks)
    fig.update_xaxes(title_text="New York time", row=rows, col=1)
    return fig


def _add_marks(fig: go.Figure, bars: pd.DataFrame, marks: dict[str, pd.DataFrame], top: float) -> None:
    at_bar = bars.set_index("ts")["high"] if not bars.empty else pd.Series(dtype=float)
    for key, symbol, colour in (("anomalies", "triangle-down", "#d64545"), ("quarantined", "x", "#8e44ad")):
        frame = marks[key]
        if frame.empty:
            continue
        y = [at_bar.get(ts, top) * 1.01 for ts in frame["ts"]]
        text = frame["detail"] if key == "anomalies" else frame["reason"]
        label = frame["kind"] + " (" + frame["state"] + "): " + text if key == "anomalies" else "quarantined: " + text
        fig.add_scatter(
            x=frame["ts"], y=y, mode="markers", name=key, marker={"symbol": symbol, "size": 10, "color": colour},
            hovertext=label, hoverinfo="text+x", row=1, col=1,
        )  # fmt: skip
    for _, action in marks["actions"].iterrows():
        when = pd.Timestamp(action["ex_date"]) + pd.Timedelta(hours=9, minutes=30)  # the ex-date's open, NY
        text = f"split {action['value']:g}:1" if action["kind"] == "split" else f"dividend {action['value']:g}"
        fig.add_vline(x=when, line={"dash": "dot", "color": "#3d5a80"}, row=1, col=1)
        fig.add_annotation(x=when, y=1, yref="y domain", text=text, showarrow=False, yanchor="bottom", row=1, col=1)


def _draw(
    ctx: Context, symbol: str, interval: str, names: list[str], known_at: pd.Timestamp | None
) -> tuple[go.Figure, pd.DataFrame, dict[str, pd.DataFrame], str]:
    chartable = set(ctx.cached("chartable", lambda: queries.chartable_features(ctx.reader)))
    names = [n for n in names if n in chartable]  # only registry columns reach the SQL
    bars = queries.bars(ctx.reader, symbol, interval, known_at, BARS[interval])
    since = bars["ts"].min() if not bars.empty else pd.Timestamp("2100-01-01", tz="UTC")
    feats = queries.features(ctx.reader, symbol, interval, names, known_at, since) if names else pd.DataFrame()
    marks = {
        "anomalies": queries.anomalies(ctx.reader, symbol, interval, since),
        "quarantined": queries.quarantined(ctx.reader, symbol, interval, since),
        "actions": queries.corporate_actions(ctx.reader, symbol, known_at),
    }
    when = "now" if known_at is None else fmt(known_at)
    fig = figure(bars, feats, names, marks, f"{symbol} {interval} as known at {when}", interval)
    return fig, bars, marks, when


def register(app: dash.Dash, ctx: Context) -> None:
    @app.callback(
        Output("symbol-known-at", "value"),
        Input("symbol-prev", "n_clicks"),
        Input("symbol-next", "n_clicks"),
        Input("symbol-now", "n_clicks"),
        State("symbol-known-at", "value"),
        State("symbol-name", "value"),
        State("symbol-interval", "value"),
        prevent_initial_call=True,
    )
    def step(
        _prev: int | None, _next: int | None, _now: int | None, current: str | None, symbol: str | None, interval: str
    ) -> str | NoUpdate:
        if not symbol:
            return no_update
        if callback_ctx.triggered_id == "symbol-now":
            return ""
        return _step(ctx, symbol, interval, current, -1 if callback_ctx.triggered_id == "symbol-prev" else 1)

    @app.callback(
        Output("symbol-chart", "figure"),
        Output("symbol-summary", "children"),
        Output("symbol-marks", "children"),
        Input("symbol-name", "value"),
        Input("symbol-interval", "value"),
        Input("symbol-features", "value"),
        Input("symbol-known-at", "value"),
    )
    def draw(
        symbol: str | None, interval: str, names: list[str] | None, known_at_raw: str | None
    ) -> tuple[go.Figure | NoUpdate, html.Div | html.Span | str, html.Div | str | NoUpdate]:
        if not symbol:
            return go.Figure(), "The store holds no symbols yet.", ""
        try:
            known_at = parse_time(known_at_raw)
        except ValueError as exc:
            return no_update, html.Span(str(exc), className="error", id="symbol-error"), no_update
        fig, bars, marks, when = _draw(ctx, symbol, interval, list(names or []), known_at)
        last = bars.iloc[-1] if not bars.empty else None
        summary = html.Div(
            [
                html.Span(f"{symbol} {interval} as known at {when}: ", id="symbol-as-known"),
                html.Span(f"{len(bars)} bars", id="symbol-bar-count"),
                html.Span(f", {int((~bars['complete'].astype(bool)).sum())} partial"),
                html.Span(
                    f"; last close {last['close']:.6g} at {fmt(last['ts'])}" if last is not None else "; no bars",
                    id="symbol-last-close",
                ),
            ]
        )
        detail = html.Div(
            [
                html.H4("Corporate actions known then"),
                table(marks["actions"], "symbol-actions"),
                html.H4("Anomalies"),
                table(marks["anomalies"], "symbol-anomalies"),
                html.H4("Quarantined bars"),
                table(marks["quarantined"], "symbol-quarantined"),
            ]
        )
        return fig, summary, detail
