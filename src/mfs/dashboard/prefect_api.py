"""The pipeline page's view of Prefect: deployments, their runs, and "run now".

Always a client on an explicit API address (``PREFECT_API_URL``, else the local stack's): Prefect's
``get_client()`` without one starts an ephemeral in-process server, which a web app must never do.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx
import pandas as pd

from mfs.errors import MfsError
from mfs.orchestration.stack import PrefectStack

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

RUNS_PER_DEPLOYMENT = 50


def default_api_url() -> str:
    """PREFECT_API_URL, else the local stack's server (mfs stack up)."""
    url = os.environ.get("PREFECT_API_URL", "").strip()
    if url:
        return url.rstrip("/")
    return PrefectStack.default().api_url


@dataclass
class DeploymentRuns:
    id: str
    name: str
    flow: str
    timetable: str  # its schedules as declared in prefect.yaml, or "none (run by hand)"
    runs: pd.DataFrame  # newest first: id, name, state, state_type, start, end, seconds, message, expected


def _client(api_url: str) -> SyncPrefectClient:
    # deferred: Prefect's client is ~785 ms of imports (-X importtime, 2026-12-08); preload() pays them
    # on a thread at start, off the first pipeline page's path
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api_url, httpx_settings={"timeout": 10})


def _runs_frame(runs: list[Any]) -> pd.DataFrame:
    rows = [
        {
            "id": str(r.id),
            "name": r.name,
            "state": r.state_name or "",
            "state_type": r.state_type.value if r.state_type else "",
            "start": r.start_time,
            "end": r.end_time,
            "seconds": r.total_run_time.total_seconds() if r.total_run_time else None,
            "message": (r.state.message or "") if r.state else "",
            "expected": r.expected_start_time,
        }
        for r in runs
    ]
    columns = ["id", "name", "state", "state_type", "start", "end", "seconds", "message", "expected"]
    return pd.DataFrame(rows, columns=columns)


def deployments(api_url: str) -> list[DeploymentRuns]:
    """Every deployment with its newest runs (scheduled ones included). Raises MfsError when the
    API does not answer."""
    try:  # one quick probe: the client retries a refused connection for seconds
        httpx.get(f"{api_url}/health", timeout=2).raise_for_status()
    except httpx.HTTPError as exc:
        raise MfsError(f"Prefect API at {api_url} did not answer: {type(exc).__name__}: {exc}") from None
    # deferred: Prefect's client schemas, ~2 s the first time (preload() pays it on a thread)
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    try:
        with _client(api_url) as client:
            out = []
            flows = {f.id: f.name for f in client.read_flows()}
            for dep in client.read_deployments():
                runs = client.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
                    sort=FlowRunSort.EXPECTED_START_TIME_DESC,
                    limit=RUNS_PER_DEPLOYMENT,
                )
                # What prefect.yaml declared, read back from the server: each schedule's fields as set.
                declared = [_described(s.schedule) for s in dep.schedules or []]
                out.append(
                    DeploymentRuns(
                        id=str(dep.id),
                        name=dep.name,
                        flow=flows.get(dep.flow_id, "?"),
                        timetable=", ".join(c for c in declared if c) or "none (run by hand)",
                        runs=_runs_frame(runs),
                    )
                )
            return sorted(out, key=lambda d: (d.flow, d.name))
    except MfsError:
        raise
    except Exception as exc:  # httpx errors, an API of another version: one line on the page
        raise MfsError(f"Prefect API at {api_url} did not answer: {type(exc).__name__}: {exc}") from None


def run_deployment(api_url: str, deployment_id: str) -> str:
    """Create a flow run of the deployment now (a worker of its pool picks it up); its name."""
    with _client(api_url) as client:
        run = client.create_flow_run_from_deployment(UUID(deployment_id), tags=["dashboard"])
        return f"{run.name} ({run.id})"


def preload() -> None:
    """Import Prefect's client ahead of the first pipeline page (it costs ~2 s of imports once)."""
    threading.Thread(target=lambda: _client("http://127.0.0.1:9/api"), name="import prefect", daemon=True).start()


def _described(schedule: Any) -> str:
    """A deployment schedule in one line, e.g. ``0 9-16 * * 1-5 America/New_York``."""
    fields = schedule.model_dump(exclude_none=True, exclude_defaults=True)
    return " ".join(str(value) for value in fields.values()) or str(schedule)
