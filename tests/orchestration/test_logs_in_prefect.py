"""mfs log lines read back from a real Prefect server (the test harness) are readable messages,
not Python dict reprs: what a reader sees in a run's log in the UI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.settings import PREFECT_API_URL

from mfs.logs import get_logger

pytestmark = pytest.mark.usefixtures("prefect_harness")

# Run in a fresh process (below): ``import logs_probe_module; logs_probe(...)`` by path.
RUN_PROBE = """
import runpy, sys
state = runpy.run_path(sys.argv[1])["logs_probe"](return_state=True)
print(state.state_details.flow_run_id if state.is_completed() else f"NOT COMPLETED {state}")
"""


@flow(name="mfs-logs-probe")
def logs_probe() -> None:
    get_logger("mfs.test").info("ingest window", interval="1h", symbols=10)


def run_probe_like_a_worker() -> uuid.UUID:
    """Run ``logs_probe`` in a new process started with the worker's logging environment.

    Why a new process: Prefect attaches its API handler to the PREFECT_LOGGING_EXTRA_LOGGERS
    loggers when it is imported, and this pytest process imported it (at collection) before the
    harness set that variable, so here the ``mfs`` logger has no API handler. A worker's flow run
    process starts with it set, as this one does."""
    env = dict(
        os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_LOGGING_EXTRA_LOGGERS="mfs", MFS_LOG_FORMAT="json"
    )
    result = subprocess.run(
        [sys.executable, "-c", RUN_PROBE, __file__], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert not last.startswith("NOT COMPLETED"), last + result.stderr[-3000:]
    return uuid.UUID(last)


def messages_of(flow_run_id: uuid.UUID, timeout_s: float = 10.0) -> list[str]:
    """The run's log messages on the server. Logs go out in batches (the run's process drains
    them when it ends), so poll a few seconds until ours is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        messages = [log.message for log in logs]
        if any(m.startswith("ingest window") for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.2)


def test_an_mfs_log_line_reaches_the_prefect_api_as_a_readable_message():
    messages = messages_of(run_probe_like_a_worker())

    ours = [m for m in messages if m.startswith("ingest window")]
    assert ours, messages
    assert "interval=1h" in ours[0] and "symbols=10" in ours[0]
    assert "{'" not in ours[0] and "'event'" not in ours[0]
