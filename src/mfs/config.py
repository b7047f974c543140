"""Configuration: YAML in config/, overridden by MFS_* environment variables, validated at load.

Overrides address nested keys with a double underscore: ``MFS_FEATURES__TIMEOUT_S=10`` sets
``features.timeout_s``; ``MFS_SYMBOLS=AAPL,MSFT`` sets ``symbols``. Values are parsed as YAML
scalars. Secrets are never read from YAML: they come from the environment only (see SECRET_ENV).
An unknown key, a wrong type or an invalid symbol stops with a message naming key and value.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mfs import paths
from mfs.errors import ConfigError
from mfs.symbols import normalize_symbols

# Environment variables that are settings of their own, not overrides of a YAML key.
SECRET_ENV = {
    "MFS_DATABASE_URL": "use this PostgreSQL+TimescaleDB server instead of the local cluster",
    "MFS_DB_PASSWORD": "password of the local cluster's superuser (generated when unset)",
    "MFS_WRITER_PASSWORD": "password of the mfs_writer role",
    "MFS_READER_PASSWORD": "password of the mfs_reader role",
    "MFS_ALERT_WEBHOOK_URL": "webhook receiving alerts on failed or slow runs",
}
RUNTIME_ENV = {
    "MFS_LOG_LEVEL", "MFS_CONFIG", "MFS_STATE_DIR", "MFS_PROJECT_ROOT", "MFS_SYNTHETIC_ASOF",
    "MFS_OFFLINE", "MFS_TEST_DATABASE_URL", "MFS_TEST_EDITION", "MFS_LOG_FORMAT",
    "MFS_FEATURE_FAULTS",  # fault injection for reliability tests (mfs.features.worker)
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DatabaseConfig(Section):
    port: int = Field(54329, ge=1024, le=65535, description="port of the local cluster")
    name: str = Field("mfs", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    user: str = Field("mfs", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    pool_size: int = Field(4, ge=1, le=64, description="connections per process, at most")
    connect_timeout_s: int = Field(10, gt=0)
    edition: Literal["timescale", "apache"] = Field(
        "timescale", description="TimescaleDB license a new local cluster runs: 'timescale' (community: continuous "
                                 "aggregates, compression, policies) or 'apache' (as on hosts that ship only the Apache edition)"
    )


class IngestConfig(Section):
    incremental_days: int = Field(7, gt=0, le=729, description="window of an hourly run; covers weekends and holidays")
    backfill_days: int = Field(365, gt=0, le=729, description="history of a backfill (Yahoo keeps 730 days of 1h)")
    batch_size: int = Field(25, gt=0, le=500, description="symbols per Yahoo request batch")
    max_concurrency: int = Field(4, gt=0, le=32)
    max_attempts: int = Field(5, gt=0, le=20)
    backoff_initial_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    request_timeout_s: float = Field(30.0, gt=0)
    max_jump: float = Field(0.5, gt=0, description="reject a bar whose close moves more than this fraction from the previous close")


class FeaturesConfig(Section):
    lookback_bars: int = Field(450, ge=400, description="bars read before the first new bar (≥ longest window + warm-up)")
    timeout_s: float = Field(30.0, gt=0, description="per-task timeout; a batch past it is rerun one symbol per task, each with this timeout")
    workers: int = Field(2, gt=0, le=64)
    max_tasks_per_worker: int = Field(50, gt=0, description="recycle a worker process after this many tasks (batches of symbols)")
    batch_size: int = Field(25, gt=0, le=500, description="symbols per worker task and transaction; a failed batch is retried symbol by symbol")
    worker_memory_mb: int = Field(2048, ge=0, description="address-space limit of a worker process (0 = none); beyond it a symbol fails with MemoryError")


class RunsConfig(Section):
    expected_runtime_s: dict[str, float] = Field(
        default_factory=lambda: {"collect": 600.0, "features": 300.0, "full_backfill": 3600.0}
    )
    slow_factor: float = Field(1.5, gt=1, description="alert when a run exceeds expected × this")
    failed_symbol_tolerance: int = Field(0, ge=0, description="failed symbols a run may have and still be Completed")

    @field_validator("expected_runtime_s")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        for flow, seconds in value.items():
            if seconds <= 0:
                raise ValueError(f"expected runtime of {flow!r} must be > 0, got {seconds}")
        return value


class OrchestrationConfig(Section):
    """Prefect: work pool, local server port, flow timeouts and retries of the Yahoo fetch task."""

    work_pool: str = Field("mfs-process", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    server_port: int = Field(4200, ge=1024, le=65535, description="local Prefect server (127.0.0.1 only)")
    timeout_s: dict[str, float] = Field(
        default_factory=lambda: {"collect": 3000.0, "features": 3000.0, "full_backfill": 10800.0},
        description="flow timeouts; hourly flows stay under an hour so runs never overlap",
    )
    fetch_retries: int = Field(2, ge=0, le=10, description="retries of a Yahoo fetch task that raised")
    retry_delay_s: float = Field(10.0, ge=0, description="first retry delay; doubles per retry, with jitter")
    retry_jitter: float = Field(0.5, ge=0, le=1, description="random extra delay, fraction of the delay")
    lock_wait_s: float = Field(1800.0, ge=0, description="how long a run waits for the previous run of its flow")


class AggregatesConfig(Section):
    retention_days: int | None = Field(
        None, gt=0, description="drop raw bars and features older than this (aggregates keep history); null keeps all"
    )
    retention_lock_timeout_s: float = Field(
        5.0, gt=0, description="retention gives up on a table whose old chunks a query still reads after this long "
                               "(instead of queueing every later query behind its lock); the next run retries"
    )


class Config(Section):
    symbols: list[str] = Field(min_length=1)
    intervals: list[Literal["1h", "1d"]] = Field(default_factory=lambda: ["1h", "1d"])
    database: DatabaseConfig = DatabaseConfig()
    ingest: IngestConfig = IngestConfig()
    features: FeaturesConfig = FeaturesConfig()
    runs: RunsConfig = RunsConfig()
    aggregates: AggregatesConfig = AggregatesConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> list[str]:
        return normalize_symbols(value)


def _env_overrides(environ: dict[str, str]) -> dict[str, tuple[list[str], Any]]:
    """Map MFS_A__B=value to (['a', 'b'], parsed value), keyed by the variable name."""
    overrides = {}
    for name, raw in environ.items():
        if not name.startswith("MFS_") or name in SECRET_ENV or name in RUNTIME_ENV:
            continue
        path = [part.lower() for part in name[4:].split("__")]
        value: Any = raw if path == ["symbols"] else yaml.safe_load(raw) if raw.strip() else raw
        overrides[name] = (path, value)
    return overrides


def _set_path(data: dict, path: list[str], value: Any, origin: str) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: {'.'.join(path)} does not name a configuration key")
        node = child
    node[path[-1]] = value


def _describe(error: dict, origins: dict[str, str]) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    head = loc.split(".")[0]
    source = origins.get(loc) or origins.get(head)
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        msg = f"{loc}: unknown configuration key"
    else:
        msg = f"{loc} = {value!r}: {error['msg']}"
    return f"{msg} (from {source})" if source else msg


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read YAML, apply environment overrides, validate. Raises ConfigError naming key and value."""
    path = Path(path) if path else paths.config_path()
    environ = dict(os.environ if environ is None else environ)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    origins = {key: str(path) for key in data}
    for name, (key_path, value) in _env_overrides(environ).items():
        _set_path(data, key_path, value, name)
        origins[".".join(key_path)] = f"environment variable {name}"
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e, origins) for e in exc.errors(include_url=False)]
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None


@lru_cache(maxsize=1)
def get_config() -> Config:
    """The process-wide configuration (tests call ``get_config.cache_clear()`` after changing env)."""
    return load_config()
