"""Fixtures of the reliability suite; helpers live in reliability_helpers.py (importable because
pytest runs with --import-mode=importlib, which does not put test directories on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from reliability_helpers import ASOF, Reference, reference_state  # noqa: E402


@pytest.fixture
def reference(db, fake_yahoo):
    """``reference(symbols, days, features=False) -> Reference``: the state an uninterrupted,
    fault-free run leaves (computed once per session in the test database, then emptied again)."""

    def get(symbols: tuple[str, ...], days: int, features: bool = False) -> Reference:
        return reference_state(db, fake_yahoo, tuple(symbols), days, features)

    return get


@pytest.fixture
def asof() -> str:
    return ASOF
