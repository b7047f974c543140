"""Daily/weekly aggregates and the SQL serving layer.

Public entry points (the pipeline and ``mfs db up`` call these):

- ``refresh(start=None, end=None) -> dict``: bring ohlcv_1d, ohlcv_1w and features_1d up to date
  (pending invalidations, or an explicit window); also syncs ``market_sessions``.
- ``retention() -> dict``: drop raw chunks older than ``aggregates.retention_days`` (Apache
  edition; the community license runs its own retention policy).
- ``sync_sessions()``: fill ``market_sessions`` from the NYSE calendar.
- ``after_migrate(url)``: role passwords from the environment, sessions, policies (community).
"""

from mfs.aggregates.maintenance import after_migrate, apply_policies, retention
from mfs.aggregates.refresh import refresh
from mfs.aggregates.roles import sync_role_passwords
from mfs.aggregates.sessions import sync_sessions

__all__ = ["after_migrate", "apply_policies", "refresh", "retention", "sync_role_passwords", "sync_sessions"]
