"""Run locks: a second run of the same flow waits, then gives up with a clear error."""

from __future__ import annotations

import threading
import time

import pytest

from mfs.orchestration.locks import RunLockTimeout, lock_key, run_lock, wait_for_release


def test_lock_keys_are_stable_and_distinct():
    assert lock_key("collect") == lock_key("collect") != lock_key("features")


def test_a_held_lock_blocks_a_second_holder_until_released(db):
    with run_lock("collect", 0):
        with pytest.raises(RunLockTimeout, match="another 'collect' run"), run_lock("collect", 0.3):
            pass
        with run_lock("features", 0):  # other flows are not blocked
            pass
    with run_lock("collect", 0):  # released on exit
        pass


def test_a_waiting_run_continues_when_the_previous_one_ends(db, monkeypatch):
    monkeypatch.setattr("mfs.orchestration.locks.POLL_S", 0.05)  # poll often: the test measures the wait
    release = threading.Event()
    held = threading.Event()

    def previous_run():
        with run_lock("collect", 0):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=previous_run)
    thread.start()
    assert held.wait(30), "the previous run never took the lock"
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    wait_for_release("collect", 10)
    waited = time.monotonic() - started
    thread.join()
    assert release.is_set() and 0.4 < waited < 30
