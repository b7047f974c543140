"""Daily/weekly aggregates and the SQL serving layer.

- ``refresh(start=None, end=None) -> dict``: bring ohlcv_1d, ohlcv_1w and features_1d up to date
  (pending invalidations, or an explicit window); also syncs ``market_sessions``.
- ``retention() -> dict``: drop raw chunks older than ``aggregates.retention_days`` (Apache
  edition; the community license runs its own retention policy, ``mfs.provisioning``).
"""

from mfs.aggregates.refresh import refresh
from mfs.aggregates.retention import retention

__all__ = ["refresh", "retention"]
