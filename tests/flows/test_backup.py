"""nightly-backup under the Prefect harness: off by default, a full then a differential backup of
a cluster of its own, and a failing backup ends the run Failed (so it alerts like any run)."""

from __future__ import annotations

import pytest

from flows.backup import BACKUPS_OFF, nightly_backup
from tests.storage.backup_helpers import archived_store, drill_settings

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def test_backups_off_ends_in_its_own_completed_state(config_env):
    config_env(MFS_BACKUP__ENABLED="false")
    state = nightly_backup(return_state=True)
    assert state.is_completed() and state.name == BACKUPS_OFF


def test_a_weekly_full_then_differential_backups_and_a_failure_fails_the_run(config_env):
    with archived_store() as drill:
        config_env(MFS_DATABASE_URL=None, **drill_settings(drill))
        first = nightly_backup(return_state=True)
        assert first.is_completed(), first
        assert first.result()["kind"] == "full" and first.result()["repo_bytes"] > 0
        second = nightly_backup(return_state=True)
        assert second.result()["kind"] == "diff"

        config_env(MFS_BACKUP__STANZA="nosuchstanza")  # a repository without this stanza
        failed = nightly_backup(return_state=True)
        assert failed.is_failed(), failed
        assert "pgbackrest backup failed" in str(failed.message), failed.message
