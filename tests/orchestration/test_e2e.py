"""End to end on a real `prefect server`: `deploy --all`, two process workers, full-backfill,
schedules read back from the server (across a DST change), a sharded run, alerts posted to a
webhook (Failed, TimedOut, Crashed, slow), and the UI's deployments page in headless Chromium.
One server for the whole module."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar
from zoneinfo import ZoneInfo

import httpx
import psutil
import pytest
from sqlalchemy.engine import make_url

from mfs import market
from mfs.orchestration.deploy import deploy, run_full_backfill
from mfs.orchestration.locks import run_lock
from mfs.orchestration.stack import PrefectStack, prefect_database_url
from mfs.sources import fake_yahoo
from mfs.storage import migrations
from mfs.storage.connection import connect, with_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NY = ZoneInfo(market.NY)
SYMBOLS = ["AAPL", "MSFT", "NVDA", "JPM"]
BUDGET_PER_S, BUDGET_BURST = 4.0, 2


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Hook.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", _Hook.received
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(db_url, webhook, tmp_path_factory, _yfinance_cache_dir):
    from tests.fixtures.database import free_port

    # The Prefect server keeps its state in PostgreSQL as `scripts/run` does (SQLite's
    # "database is locked" under two workers turned API calls into 503s on CI).
    prefect_db = with_database(db_url, f"{make_url(db_url).database}_prefect")
    stack = PrefectStack(
        root=tmp_path_factory.mktemp("prefect-stack"),
        port=free_port(),
        database_url=prefect_database_url(prefect_db),
        extra_env={
            "MFS_DATABASE_URL": db_url,
            "MFS_OFFLINE": "1",
            "MFS_SYMBOLS": ",".join(SYMBOLS),
            "MFS_INGEST__BACKOFF_INITIAL_S": "0.001",
            # One Yahoo request budget for every shard on both workers (a Prefect rate limit).
            "MFS_INGEST__REQUESTS_PER_S": str(BUDGET_PER_S),
            "MFS_INGEST__REQUEST_BURST": str(BUDGET_BURST),
            "MFS_ALERT_WEBHOOK_URL": webhook[0],
            # No scheduler service: on a weekday in market hours it would start real hourly runs in
            # the middle of these tests. The schedules are read back through the same server code
            # (POST /deployments/{id}/schedule) for windows in the future.
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            # A fixed clock for the offline Yahoo: short windows (days=2) always hold sessions.
            "MFS_SYNTHETIC_ASOF": "2026-11-20T20:00:00Z",
            # a collect run "expected" to take 8 s: one kept waiting 12 s must raise a slow-run alert
            "MFS_RUNS__EXPECTED_RUNTIME_S__COLLECT": "8",
        },
    )
    try:
        stack.start_server()
        deploy(stack)
        stack.start_worker("worker-1")
        stack.start_worker("worker-2")
        yield stack
    finally:
        stopped = stack.stop()
        print(f"stopped {stopped}; server log tail:\n{stack.log_tail('server', 5)}")
        migrations.drop_database(prefect_db)


def api(stack: PrefectStack, method: str, path: str, **kwargs):
    response = httpx.request(method, f"{stack.api_url}{path}", timeout=90, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def deployment_ids(stack) -> dict[str, str]:
    return {d["name"]: d["id"] for d in api(stack, "POST", "/deployments/filter", json={})}


def test_the_pull_step_is_resolved_by_each_worker_not_at_deploy_time(stack):
    for deployment in api(stack, "POST", "/deployments/filter", json={}):
        assert deployment["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $MFS_PROJECT_ROOT }}"}}
        ]


def test_full_backfill_completes_and_data_lands(stack, db):
    # `db`: the tables start empty, whatever earlier test modules left in the session database
    result = run_full_backfill(stack, offline=True, days=30, timeout_s=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:] + stack.log_tail("worker-1", 40)
    conn = connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(DISTINCT symbol), count(*) FROM market_data WHERE interval = '1h'")
            symbols, bars = cur.fetchone()
            cur.execute("SELECT count(*) FROM features WHERE interval = '1h'")
            features = cur.fetchone()[0]
            cur.execute("SELECT flow, status FROM pipeline_runs WHERE flow IN ('backfill', 'features')")
            runs = cur.fetchall()
    finally:
        conn.close()
    assert symbols == len(SYMBOLS) and bars > len(SYMBOLS) * 15 * 6
    assert features == bars
    assert ("backfill", "completed") in runs and ("features", "completed") in runs
    # PREFECT_LOGGING_EXTRA_LOGGERS=mfs: our structlog lines reach the UI, with their run id
    logs = api(
        stack, "POST", "/logs/filter", json={"logs": {"level": {"ge_": 20}}, "sort": "TIMESTAMP_DESC", "limit": 200}
    )
    ours = [line for line in logs if line["name"] == "mfs.runs" and line["flow_run_id"]]
    assert any("run finished" in line["message"] for line in ours), [line["name"] for line in logs][:20]


def _scheduled_runs(stack, deployment_id: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    runs = api(
        stack,
        "POST",
        "/flow_runs/filter",
        json={
            "deployments": {"id": {"any_": [deployment_id]}},
            "flow_runs": {
                "state": {"type": {"any_": ["SCHEDULED"]}},
                "expected_start_time": {"after_": start.isoformat(), "before_": end.isoformat()},
            },
            "sort": "EXPECTED_START_TIME_ASC",
            "limit": 200,
        },
    )
    return [dt.datetime.fromisoformat(r["expected_start_time"]) for r in runs]


def _next_spring_forward(after: dt.datetime) -> dt.date:
    """The next second Sunday of March (US daylight saving starts) after ``after``."""
    for year in (after.year, after.year + 1):
        march = dt.date(year, 3, 1)
        sunday = march + dt.timedelta(days=(6 - march.weekday()) % 7 + 7)
        if dt.datetime.combine(sunday, dt.time(), NY) > after:
            return sunday
    raise AssertionError("unreachable")


def _schedule_and_read(stack, deployment_id: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    api(
        stack,
        "POST",
        f"/deployments/{deployment_id}/schedule",
        json={
            "start_time": start.isoformat(),
            "end_time": end.isoformat(),
            "min_time": (end - start).total_seconds(),
            "max_runs": 500,
        },
    )
    return _scheduled_runs(stack, deployment_id, start, end)


@pytest.mark.parametrize("deployment, minute", [("yahoo-hourly", 0), ("features-hourly", 5)])
def test_scheduled_runs_read_back_are_market_hours_in_new_york_across_dst(stack, deployment, minute):
    dep_id = deployment_ids(stack)[deployment]
    # The next month from tomorrow (nothing due while these tests run), then the fortnight around
    # the next DST change at least a month away: both scheduled by the server from prefect.yaml.
    now = dt.datetime.now(dt.UTC)
    upcoming = _schedule_and_read(stack, dep_id, now + dt.timedelta(days=1), now + dt.timedelta(days=31))
    assert len(upcoming) >= 15 * 8
    change = _next_spring_forward(now + dt.timedelta(days=31))
    start = dt.datetime.combine(change - dt.timedelta(days=6), dt.time(), NY)
    end = dt.datetime.combine(change + dt.timedelta(days=7), dt.time(), NY)
    dst = _schedule_and_read(stack, dep_id, start, end)

    for when in upcoming + dst:
        local = when.astimezone(NY)
        assert local.weekday() < 5 and 9 <= local.hour <= 16 and local.minute == minute, local
    assert len(dst) == 10 * 8  # ten weekdays, 09:00…16:00
    offsets = {when.astimezone(NY).utcoffset() for when in dst}
    assert offsets == {dt.timedelta(hours=-5), dt.timedelta(hours=-4)}
    utc_hours = {when.astimezone(dt.UTC).hour for when in dst}
    assert min(utc_hours) == 13 and max(utc_hours) == 21  # 09:00 EDT … 16:00 EST


def test_a_sharded_collect_runs_its_shards_through_the_work_pool(stack):
    result = stack.prefect(
        "deployment",
        "run",
        "collect/yahoo-hourly",
        "--watch",
        "--watch-timeout",
        "300",
        "-p",
        "shards=2",
        "-p",
        "market_hours_only=false",
        "-p",
        "days=2",
        "-p",
        f"symbols={json.dumps(SYMBOLS)}",
        timeout=360,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    parent_id = next(w for w in result.stdout.split() if w.count("-") == 4)
    children = api(stack, "POST", "/flow_runs/filter", json={"flow_runs": {"name": {"like_": "-shard-"}}, "limit": 50})
    children = [c for c in children if c["parameters"].get("shard_of") == parent_id]
    assert len(children) == 2
    assert sorted(s for c in children for s in c["parameters"]["symbols"]) == sorted(SYMBOLS)
    assert all(c["state"]["type"] == "COMPLETED" for c in children)
    logs = stack.log_tail("worker-1", 100_000) + stack.log_tail("worker-2", 100_000)
    assert all(c["id"] in logs for c in children)  # picked up by the pool's workers


def test_two_shards_on_two_workers_share_one_request_budget(stack, db):
    symbols = [s for s in fake_yahoo.DEFAULT_UNIVERSE if s not in SYMBOLS][:16]
    run = start_run(
        stack,
        "yahoo-hourly",
        parameters={"symbols": symbols, "interval": "1h", "days": 2, "shards": 2, "market_hours_only": False},
    )
    assert final_state(stack, run)["type"] == "COMPLETED"
    children = api(stack, "POST", "/flow_runs/filter", json={"flow_runs": {"name": {"like_": "-shard-"}}, "limit": 50})
    children = [c for c in children if c["parameters"].get("shard_of") == run]
    with connect(db) as conn, conn.cursor() as cur:
        ids = [c["id"] for c in children]
        cur.execute("SELECT counts -> 'yahoo_requests' FROM pipeline_runs WHERE run_id = ANY(%s)", (ids,))
        shards = [r[0] for r in cur.fetchall()]
    # Each shard is its own flow-run process (on whichever of the two workers took it): only the
    # server's limit is shared between them.
    assert len(shards) == 2 and sum(s["requests"] for s in shards) == 16
    assert all(s["budget_per_s"] == BUDGET_PER_S and s["waited_s"] > 0 for s in shards)
    # Prefect's slots decay at the rate: over any stretch of time at most the burst plus the rate.
    # Unthrottled, 16 requests from 4 threads per shard take well under a second.
    span = max(s["last_request_at"] for s in shards) - min(s["first_request_at"] for s in shards)
    assert BUDGET_BURST + BUDGET_PER_S * span + 1 >= 16  # + 1: the clock reads of two processes


def start_run(stack, deployment: str, **kwargs) -> str:
    """Create a flow run of ``deployment`` through the API; its id, known before it runs."""
    return api(stack, "POST", f"/deployments/{deployment_ids(stack)[deployment]}/create_flow_run", json=kwargs)["id"]


def final_state(stack, run_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while (state := api(stack, "GET", f"/flow_runs/{run_id}")["state"])["type"] not in (
        "COMPLETED",
        "FAILED",
        "CRASHED",
        "CANCELLED",
    ):
        assert time.monotonic() < deadline, state
        time.sleep(1)
    return state


def alert_for(webhook, run_id: str, match: str, timeout_s: float = 300, still_running=lambda: True) -> dict:
    """The webhook alert about ``run_id`` whose reason or state contains ``match``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [
            h
            for h in webhook[1]
            if h.get("flow_run_id") == run_id and (match in h.get("reason", "") or match == h.get("state"))
        ]
        if found:
            return found[0]
        assert still_running(), f"run {run_id} ended before the alert"
        assert time.monotonic() < deadline, f"no {match!r} alert for {run_id}: {webhook[1]}"
        time.sleep(1)


def test_a_failed_run_posts_an_alert_to_the_webhook(stack, webhook):
    names = {a["name"] for a in api(stack, "POST", "/automations/filter", json={})}
    assert names == {
        "mfs-alert-data-anomalies",
        "mfs-alert-failed-runs",
        "mfs-alert-feature-drift",
        "mfs-alert-slow-collect",
        "mfs-alert-slow-features",
        "mfs-alert-slow-full-backfill",
    }
    run_id = start_run(stack, "yahoo-hourly", parameters={"market_hours_only": False, "days": 2, "symbols": ["ZZZZ"]})
    assert final_state(stack, run_id)["type"] == "FAILED"
    alert = alert_for(webhook, run_id, "Failed")
    assert alert["flow"] == "collect" and "mfs alert" in alert["text"]


def test_a_run_longer_than_its_expected_runtime_posts_a_slow_alert(stack, webhook):
    # collect's expected runtime is 8 s here (× slow_factor 1.5 = 12 s). Holding the collect run
    # lock (as a long earlier run would) keeps the new run Running past that, whatever this
    # machine's speed; the proactive trigger must fire while it waits, and the run then completes.
    with run_lock("collect", wait_s=0):
        run_id = start_run(
            stack, "yahoo-hourly", parameters={"market_hours_only": False, "days": 2, "symbols": SYMBOLS[:1]}
        )
        slow = alert_for(
            webhook,
            run_id,
            "running longer than 12 s",
            still_running=lambda: (
                api(stack, "GET", f"/flow_runs/{run_id}")["state"]["type"] in ("SCHEDULED", "PENDING", "RUNNING")
            ),
        )
    assert slow["flow"] == "collect"
    assert final_state(stack, run_id)["type"] == "COMPLETED"


def _held_collect_run(stack, **kwargs) -> str:
    """A collect run kept waiting on the held collect lock; its id once it is Running."""
    run_id = start_run(
        stack, "yahoo-hourly", parameters={"market_hours_only": False, "days": 2, "symbols": SYMBOLS[:1]}, **kwargs
    )
    deadline = time.monotonic() + 120
    while api(stack, "GET", f"/flow_runs/{run_id}")["state"]["type"] != "RUNNING":
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.5)
    return run_id


def test_a_run_past_its_flow_timeout_ends_timed_out_and_posts_an_alert(stack, webhook):
    # The flow timeout comes from config in the flow-run process: 3 s for this run only (a
    # job variable), while the held collect lock keeps it waiting.
    with run_lock("collect", wait_s=0):
        run_id = _held_collect_run(stack, job_variables={"env": {"MFS_ORCHESTRATION__TIMEOUT_S__COLLECT": "3"}})
        state = final_state(stack, run_id, timeout_s=120)
    assert (state["type"], state["name"]) == ("FAILED", "TimedOut"), state
    assert alert_for(webhook, run_id, "TimedOut")["flow"] == "collect"


def test_a_killed_flow_run_process_ends_crashed_and_posts_an_alert(stack, webhook):
    with run_lock("collect", wait_s=0):
        run_id = _held_collect_run(stack)
        deadline = time.monotonic() + 60
        while not (
            procs := [
                p
                for p in psutil.process_iter(["environ"])
                if (p.info["environ"] or {}).get("PREFECT__FLOW_RUN_ID") == run_id
            ]
        ):
            assert time.monotonic() < deadline, "no process runs the flow"
            time.sleep(0.5)
        for proc in procs:
            proc.kill()  # SIGKILL: nothing in the run can report its own end
        state = final_state(stack, run_id, timeout_s=120)
    assert state["type"] == "CRASHED", state
    assert alert_for(webhook, run_id, "Crashed")["flow"] == "collect"


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (scripts/bootstrap installs it)")
def test_the_ui_deployments_page_shows_the_three_deployments(stack, tmp_path):
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{stack.ui_url}/deployments",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    for name in ("yahoo-hourly", "features-hourly", "full-backfill"):
        assert name in dom, f"{name} not on the deployments page ({len(dom)} characters of DOM)"


def test_a_run_scheduled_on_a_holiday_ends_market_closed(stack):
    # Labor Day 2026, 10:00 New York: the worker picks the (past) scheduled run up at once and
    # the flow judges the market by the run's scheduled time, as it does for the cron runs.
    run_id = start_run(
        stack,
        "yahoo-hourly",
        name="labor-day",
        state={
            "type": "SCHEDULED",
            "name": "Scheduled",
            "state_details": {"scheduled_time": "2026-09-07T14:00:00+00:00"},
        },
    )
    state = final_state(stack, run_id)
    assert (state["type"], state["name"]) == ("COMPLETED", "Market closed"), state
    assert "2026-09-07 is not an NYSE session" in state["message"]
