"""Ticker validation, used at every boundary (config, CLI, flow parameters).

Yahoo spells US share classes with a dash (BRK-B), indices with a caret (^GSPC) and some
instruments with '=' (EURUSD=X) or '.' (BF.B on other feeds). Anything else — spaces, quotes,
semicolons — is rejected before it can reach a URL or a SQL statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mfs.errors import ConfigError

SYMBOL_RE = re.compile(r"^\^?[A-Z0-9][A-Z0-9.\-=]{0,14}$")


def normalize_symbol(raw: object, *, key: str = "symbol") -> str:
    """Return the upper-cased symbol or raise ConfigError naming ``key`` and the value."""
    if not isinstance(raw, str):
        raise ConfigError(f"{key} = {raw!r}: a symbol must be a string")
    symbol = raw.strip().upper()
    if not SYMBOL_RE.fullmatch(symbol):
        raise ConfigError(
            f"{key} = {raw!r}: not a valid ticker (letters, digits, '.', '-', '=' and a leading '^';"
            " at most 15 characters)"
        )
    return symbol


def normalize_symbols(raw: Iterable[object] | str, *, key: str = "symbols") -> list[str]:
    """Validate a list (or comma-separated string) of symbols; keep order, drop duplicates."""
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    seen: dict[str, None] = {}
    for i, item in enumerate(items):
        if isinstance(item, str) and not item.strip():
            continue
        seen.setdefault(normalize_symbol(item, key=f"{key}[{i}]"), None)
    if not seen:
        raise ConfigError(f"{key} = {raw!r}: at least one symbol is required")
    return list(seen)
