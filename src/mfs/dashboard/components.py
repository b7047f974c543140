"""Small view helpers shared by the pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
from dash import html

# Colours of the freshness statuses (also the heat map's discrete scale, in this order).
STATUS_COLOURS = {
    "complete": "#2e9d5b",
    "partial": "#f0b429",
    "missing": "#d64545",
    "quarantined": "#8e44ad",
    "delisted": "#9aa5b1",
}


def fmt(value: object) -> str:
    """A cell's text: times in UTC to the minute, floats to 4 significant digits, None as blank."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return ""
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        ts = pd.Timestamp(value)
        return (ts.tz_convert("UTC") if ts.tzinfo else ts).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(frame: pd.DataFrame, id: str, columns: Sequence[str] | None = None, limit: int = 200) -> html.Table:
    """An HTML table of the first ``limit`` rows."""
    columns = list(columns or frame.columns)
    head = html.Thead(html.Tr([html.Th(c) for c in columns]))
    body = html.Tbody([html.Tr([html.Td(fmt(row[c])) for c in columns]) for _, row in frame.head(limit).iterrows()])
    return html.Table([head, body], id=id, className="grid")


def badge(text: str, colour: str) -> html.Span:
    return html.Span(text, className="badge", style={"background": colour, "color": "#fff"})


def parse_time(raw: str | None) -> pd.Timestamp | None:
    """An ISO time typed by the user, as UTC (naive means UTC); None for empty or 'now'.
    Raises ValueError with a message for the page."""
    raw = (raw or "").strip()
    if not raw or raw.lower() == "now":
        return None
    try:
        ts = pd.Timestamp(raw)
    except (ValueError, TypeError):
        raise ValueError(f"not a time: {raw!r} (e.g. 2026-11-30 15:00 or 2026-11-30T15:00Z)") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
