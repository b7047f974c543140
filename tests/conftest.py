"""Root of the test suite: the shared fixtures are pytest plugin modules in tests/fixtures/ (see
tests/fixtures/__init__.py), registered here; fixtures of one directory live in its conftest.py.

CI draws the same property-test examples on every run: a failure there is reproducible, not a
one-off draw. Locally, each run explores new examples.
"""

from __future__ import annotations

import os

from hypothesis import settings as hypothesis_settings

pytest_plugins = [
    "tests.fixtures.config",
    "tests.fixtures.database",
    "tests.fixtures.yahoo",
    "tests.fixtures.prefect",
    "tests.fixtures.project",
]

hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")
