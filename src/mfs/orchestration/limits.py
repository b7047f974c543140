"""The Yahoo request budget of runs through Prefect: one global concurrency limit on the Prefect
server, ``yahoo-requests``, whose slots decay at ``ingest.requests_per_s`` (Prefect's rate
limits), so every shard on every worker draws from the same budget — at most
``ingest.request_burst`` requests at once plus the rate over any stretch of time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import rate_limit

from mfs.config import get_config

YAHOO_REQUESTS = "yahoo-requests"


def yahoo_request_slot() -> Callable[[], object] | None:
    """A function that blocks until the budget allows one more Yahoo request, after making the
    server's limit match the configuration; None when no budget is configured."""
    cfg = get_config().ingest
    if cfg.requests_per_s is None:
        return None
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(YAHOO_REQUESTS, cfg.request_burst, cfg.requests_per_s)
    # strict: a limit deleted on the server meanwhile fails the request instead of lifting the budget.
    return functools.partial(rate_limit, YAHOO_REQUESTS, strict=True)
