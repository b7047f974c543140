"""docker-compose.yml and the Dockerfile, checked statically (no Docker engine on these machines):
services, the community-license TimescaleDB, health checks, start order, configuration from .env."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mfs.config import get_config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def env_of(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def test_services_and_the_community_timescaledb():
    assert set(SERVICES) == {"db", "prefect-server", "setup", "worker", "dashboard"}
    base = (ROOT / SERVICES["db"]["build"] / "Dockerfile").read_text()
    image = re.search(r"^FROM (\S+)", base, re.M).group(1)
    assert image.startswith("timescale/timescaledb:") and "-oss" not in image  # -oss is Apache-only
    assert "timescaledb.license=timescale" in SERVICES["db"]["command"]
    init = (ROOT / "docker/initdb/10-prefect.sql").read_text()
    assert "CREATE DATABASE prefect" in init and "pg_trgm" in init


def test_health_checks_and_start_order():
    for name in ("db", "prefect-server", "worker", "dashboard"):
        assert SERVICES[name]["healthcheck"]["test"], name
    assert SERVICES["prefect-server"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert SERVICES["setup"]["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "prefect-server": {"condition": "service_healthy"},
    }
    assert SERVICES["worker"]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert "/api/health" in " ".join(SERVICES["prefect-server"]["healthcheck"]["test"])


def test_configuration_comes_from_env_and_no_secret_is_written_here():
    text = (ROOT / "docker-compose.yml").read_text()
    for service in ("setup", "worker", "dashboard"):
        env = env_of(service)
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
        assert env["PREFECT_LOGGING_EXTRA_LOGGERS"] == "mfs"
        assert env["MFS_DATABASE_URL"].startswith("postgresql://mfs:${POSTGRES_PASSWORD:?")
        assert SERVICES[service]["env_file"] == [{"path": ".env", "required": False}]
    server = env_of("prefect-server")
    assert server["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert server["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    # every password is a ${VARIABLE}; ports only on the loopback interface
    for service in SERVICES:
        for key, value in env_of(service).items():
            if "PASSWORD" in key:
                assert value.startswith("${"), key
    assert not re.search(r"://[^:/\s]+:(?!\$\{)[^@\s]+@", text)
    for service in SERVICES.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
    assert "POSTGRES_PASSWORD" in (ROOT / ".env.example").read_text()


def test_worker_image_is_the_project_pinned_by_the_lock():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-c requirements.lock" in dockerfile
    for path in ("flows/", "deployments/", "prefect.yaml", "config/", "sql/"):
        assert f"COPY {path}" in dockerfile
    assert "prefect==3.8.8" in (ROOT / "requirements.lock").read_text()
    pool = get_config().orchestration.work_pool
    assert SERVICES["worker"]["command"][-4:] == ["--pool", pool, "--type", "process"]
    assert "MFS_PROJECT_ROOT=/app" in dockerfile  # the deployments' pull step on the workers


def test_the_database_archives_wal_with_pgbackrest_to_its_own_volume():
    db = SERVICES["db"]
    base = (ROOT / db["build"] / "Dockerfile").read_text()
    assert "apk add --no-cache pgbackrest" in base and "COPY pgbackrest.conf" in base
    command = db["command"]
    assert "archive_mode=on" in command and "archive_command=pgbackrest --stanza=mfs archive-push %p" in command
    assert "pgbackrest:/var/lib/pgbackrest" in db["volumes"] and "pgbackrest" in COMPOSE["volumes"]
    conf = (ROOT / db["build"] / "pgbackrest.conf").read_text()
    assert "[mfs]" in conf and "repo1-path=/var/lib/pgbackrest" in conf
    assert "stanza-create" in (ROOT / "docker/initdb/20-pgbackrest.sh").read_text()


def test_the_dashboard_reads_as_the_reader_and_starts_after_the_setup():
    dashboard = SERVICES["dashboard"]
    assert dashboard["command"][:2] == ["mfs", "dashboard"]
    assert dashboard["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert env_of("dashboard")["MFS_READER_PASSWORD"] == "${MFS_READER_PASSWORD:-}"  # it logs in as mfs_reader
    (port,) = dashboard["ports"]
    assert port.startswith("127.0.0.1:") and port.endswith(":8050")
