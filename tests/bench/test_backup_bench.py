"""`mfs bench --backup` on a tiny store: every figure is produced (the figures themselves are
measured and documented, not asserted: docs/reliability.md)."""

from __future__ import annotations

import pytest

from mfs.bench import backup

pytestmark = pytest.mark.slow


def test_the_backup_bench_reports_every_figure():
    result = backup.run(n_symbols=3, days=30)
    assert result["hourly_runs"] >= 3  # a trading day of hourly runs (a half day has 4)
    for key in ("full_backup_s", "diff_backup_s", "restore_s", "database_bytes", "full_backup_repo_bytes"):
        assert result[key] > 0, key
    assert result["wal_bytes_per_trading_day"] > result["wal_archived_bytes_per_trading_day"] > 0
    assert result["replica_lag_bytes_max"] >= result["replica_lag_bytes_median"] >= 0
