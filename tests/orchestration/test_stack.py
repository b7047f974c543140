"""The environment every Prefect process of the local stack gets."""

from __future__ import annotations

from mfs import paths
from mfs.orchestration.stack import PrefectStack


def test_stack_env_turns_telemetry_off_and_routes_mfs_logs_to_prefect(tmp_path):
    stack = PrefectStack(root=tmp_path / "fresh" / "prefect", port=4555, database_url="postgresql+asyncpg://x/prefect")
    env = stack.env()
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
    assert env["PREFECT_LOGGING_EXTRA_LOGGERS"] == "mfs"
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4555/api" and env["PREFECT_SERVER_API_HOST"] == "127.0.0.1"
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"] == "postgresql+asyncpg://x/prefect"
    assert env["MFS_PROJECT_ROOT"] == str(paths.project_root())
    assert (tmp_path / "fresh" / "prefect" / "home").is_dir()  # PREFECT_HOME and its parent exist


def test_a_remote_stack_points_at_its_server_and_starts_nothing(tmp_path):
    stack = PrefectStack.remote("http://prefect-server:4200/api/")
    env = stack.env()
    assert stack.api_url == env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert stack.ui_url == "http://prefect-server:4200"
    assert "PREFECT_SERVER_API_PORT" not in env and "PREFECT_API_DATABASE_CONNECTION_URL" not in env
