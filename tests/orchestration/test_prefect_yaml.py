"""prefect.yaml declares the three deployments, their New York schedules and one process pool;
schedules live nowhere else."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from mfs.config import get_config
from mfs.flow_names import DEPLOYMENTS
from mfs.orchestration.deploy import read_prefect_yaml, work_pool_name

ROOT = Path(__file__).resolve().parents[2]


def test_three_deployments_with_market_hour_schedules():
    spec = read_prefect_yaml()
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert set(by_name) == set(DEPLOYMENTS)
    assert by_name["yahoo-hourly"]["schedules"] == [
        {"cron": "0 9-16 * * 1-5", "timezone": "America/New_York", "active": True}
    ]
    assert by_name["features-hourly"]["schedules"] == [
        {"cron": "5 9-16 * * 1-5", "timezone": "America/New_York", "active": True}
    ]
    assert by_name["full-backfill"]["schedules"] == []
    for name, flow_name in DEPLOYMENTS.items():  # each entrypoint is the flow of that name
        path, func = by_name[name]["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert getattr(module, func).name == flow_name


def test_one_process_pool_and_an_explicit_pull_step():
    spec = read_prefect_yaml()
    assert work_pool_name() == get_config().orchestration.work_pool
    assert spec["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $MFS_PROJECT_ROOT }}"}}
    ]


def test_schedules_live_only_in_prefect_yaml():
    pattern = re.compile(r"\bcron\b|CronSchedule|IntervalSchedule|\.serve\(|schedules?=")
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("flows", "deployments", "src/mfs")
        for p in (ROOT / folder).rglob("*.py")
        if pattern.search(p.read_text())
    ]
    assert offenders == []
