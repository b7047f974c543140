"""Register prefect.yaml's deployments on the Prefect server in PREFECT_API_URL: the process
work pool, `prefect --no-prompt deploy --all`, and the alert automations (webhook from
MFS_ALERT_WEBHOOK_URL; none without it). Schedules are declared only in prefect.yaml.

    PREFECT_API_URL=http://prefect-host:4200/api python deployments/deploy.py

The local stack does the same with `mfs stack deploy` (part of `./scripts/run`)."""

from __future__ import annotations

import os
import sys

from mfs.orchestration.deploy import deploy
from mfs.orchestration.stack import PrefectStack


def main() -> int:
    api_url = os.environ.get("PREFECT_API_URL")
    stack = PrefectStack.remote(api_url) if api_url else PrefectStack.default()
    result = deploy(stack)
    print(
        f"deployed {', '.join(result['deployments'])} to work pool {result['work_pool']} at {stack.api_url}; "
        f"{result['alerts'][0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
