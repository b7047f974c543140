"""Fixtures of the feature tests; shared helpers live in feature_helpers.py (importable because
pytest runs with --import-mode=importlib, which does not put test directories on sys.path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def features_config(monkeypatch):
    """Set features.* keys through the real environment overrides for one test."""
    from mfs.config import get_config

    def apply(**values):
        for key, value in values.items():
            monkeypatch.setenv(f"MFS_FEATURES__{key.upper()}", str(value))
        get_config.cache_clear()

    yield apply
    get_config.cache_clear()
