"""Fixtures of the reliability suite; helpers live in reliability_helpers.py."""

from __future__ import annotations

import pytest

from tests.reliability.reliability_helpers import ASOF, Reference, reference_state


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
