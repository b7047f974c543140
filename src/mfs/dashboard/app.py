"""``mfs dashboard``: the Dash app (layout, routing between the four pages) and its WSGI server.

Dash renders with Plotly (candlesticks, heat maps) in the browser; the Flask app under it is
served by waitress, a production WSGI server with a thread pool (Flask's own server is for
development only). Each page module gives ``layout(query)`` and ``register(app, ctx)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import dash
from dash import Input, Output, dcc, html
from waitress import create_server

from mfs.config import get_config
from mfs.dashboard.db import Reader
from mfs.dashboard.pages import features, market, pipeline, symbol
from mfs.dashboard.prefect_api import default_api_url
from mfs.logs import get_logger

log = get_logger("mfs.dashboard")
PAGES = {"/": "market", "/market": "market", "/symbol": "symbol", "/pipeline": "pipeline", "/features": "features"}
NAV = [("Market", "/market"), ("Symbol", "/symbol"), ("Pipeline", "/pipeline"), ("Features", "/features")]
CACHE_S = 30.0  # the freshness grid is reread at most this often (search and grouping filter the cached rows)


@dataclass
class Context:
    """What every page reads from: the reader pool, Prefect's API address, a short-lived cache."""

    reader: Reader
    prefect_api_url: str
    _cache: dict[str, tuple[float, Any]] = field(default_factory=dict)
    _refreshing: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, key: str, compute: Callable[[], Any], ttl_s: float = CACHE_S) -> Any:
        """``compute()``'s value, computed once; when older than ``ttl_s`` the old value is served
        while one background thread computes the new one (a page never waits for a reread: at
        8,000 symbols the freshness grid takes ~0.5 s to read, the page over it ~0.2 s)."""
        with self._lock:
            hit = self._cache.get(key)
            stale = hit is not None and time.monotonic() - hit[0] >= ttl_s and key not in self._refreshing
            if stale:
                self._refreshing.add(key)
        if hit is None:
            return self._store(key, compute)
        if stale:
            threading.Thread(target=self._store, args=(key, compute), name=f"refresh {key}", daemon=True).start()
        return hit[1]

    def _store(self, key: str, compute: Callable[[], Any]) -> Any:
        try:
            value = compute()
            with self._lock:
                self._cache[key] = (time.monotonic(), value)
            return value
        except Exception:
            log.warning("dashboard cache refresh failed", key=key, exc_info=True)
            raise
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def create_app(reader: Reader | None = None, prefect_api_url: str | None = None) -> dash.Dash:
    ctx = Context(reader or Reader(), prefect_api_url or default_api_url())
    app = dash.Dash(__name__, title="mfs dashboard", suppress_callback_exceptions=True, update_title="")
    app.layout = html.Div(
        [
            dcc.Location(id="url"),
            html.Nav(
                [html.B("market feature store", className="brand")]
                + [dcc.Link(label, href=href, id=f"nav-{label.lower()}", className="nav") for label, href in NAV],
                className="navbar",
            ),
            html.Main(id="page", className="page"),
        ]
    )
    modules = {"market": market, "symbol": symbol, "pipeline": pipeline, "features": features}
    for module in modules.values():
        module.register(app, ctx)

    @app.callback(Output("page", "children"), Input("url", "pathname"), Input("url", "search"))
    def route(pathname: str | None, search: str | None) -> html.Div:
        name = PAGES.get((pathname or "/").rstrip("/") or "/")
        if name is None:
            return html.Div([html.H2("Not found"), html.P(f"No page at {pathname}")], id="not-found")
        query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
        return modules[name].layout(ctx, query)

    # The freshness grid read at start, so the first visit to the market page finds it cached.
    threading.Thread(target=market.warm, args=(ctx,), name="warm market", daemon=True).start()
    app.index_string = app.index_string.replace("</head>", f"<style>{STYLE}</style></head>")
    app.server.config["ctx"] = ctx
    return app


def serve(host: str | None = None, port: int | None = None, app: dash.Dash | None = None) -> Any:
    """A waitress server for the app (not started): ``.run()`` blocks, ``.close()`` stops it."""
    cfg = get_config().dashboard
    app = app or create_app()
    host = cfg.host if host is None else host
    port = cfg.port if port is None else port  # 0: a free port (server.effective_port)
    return create_server(app.server, host=host, port=port, threads=cfg.threads)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #1d2733; background: #f6f7f9; }
.navbar { display: flex; gap: 18px; align-items: center; padding: 10px 20px; background: #1d2733; }
.navbar .brand { color: #fff; margin-right: 20px; } .navbar .nav { color: #cfd8e3; text-decoration: none; }
.page { padding: 12px 20px; } .controls { display: flex; gap: 12px; flex-wrap: wrap; align-items: center; }
.card { background: #fff; border: 1px solid #dde2e8; border-radius: 6px; padding: 10px 14px; margin: 8px 0; }
.note { color: #5b6775; font-size: 90%; } .warn { color: #9a4a00; } .error { color: #a00; }
table.grid { border-collapse: collapse; font-size: 85%; } table.grid td, table.grid th
{ border-bottom: 1px solid #e4e8ee; padding: 3px 8px; text-align: left; vertical-align: top; }
.badge { display: inline-block; padding: 2px 8px; border-radius: 10px; margin-right: 6px; font-size: 85%; }
"""
