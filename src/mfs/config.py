"""Configuration: YAML in config/, overridden by MFS_* environment variables, validated at load.

Overrides address nested keys with a double underscore: ``MFS_FEATURES__TIMEOUT_S=10`` sets
``features.timeout_s``; ``MFS_SYMBOLS=AAPL,MSFT`` sets ``symbols``. Values are parsed as YAML
(``null``, ``10``, ``[1h, 1d]``). Secrets are never read from YAML: they come from the environment
only (see SECRET_ENV). An unknown key, a wrong type or an invalid symbol stops with one message
naming key, value and where it came from.

pydantic-settings merges the sources (environment over YAML over field defaults) and nests ``__``
variables; ours (_EnvSource): the environment given, YAML values, refusing MFS_* naming no key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from mfs import paths
from mfs.errors import ConfigError, SymbolError
from mfs.market import INTERVALS, Interval, normalize_symbols

# Environment variables that are settings of their own, not overrides of a YAML key.
SECRET_ENV = {
    "MFS_DATABASE_URL": "use this PostgreSQL+TimescaleDB server instead of the local cluster",
    "MFS_DB_PASSWORD": "password of the local cluster's superuser (generated when unset)",
    "MFS_WRITER_PASSWORD": "password of the mfs_writer role",
    "MFS_READER_PASSWORD": "password of the mfs_reader role",
    "MFS_ALERT_WEBHOOK_URL": "webhook receiving alerts on failed or slow runs",
    "MFS_READER_URL": "server that dataset reads and latest_features go to (a streaming replica); default: the store",
}
RUNTIME_ENV = {
    "MFS_LOG_LEVEL",
    "MFS_CONFIG",
    "MFS_STATE_DIR",
    "MFS_PROJECT_ROOT",
    "MFS_SYNTHETIC_ASOF",
    "MFS_OFFLINE",
    "MFS_TEST_DATABASE_URL",
    "MFS_TEST_EDITION",
    "MFS_LOG_FORMAT",
    "MFS_FEATURE_FAULTS",  # fault injection for reliability tests (mfs.features.worker)
    "MFS_SYNTHETIC_FAULTS",  # faults and events of the offline Yahoo (mfs.sources.fake_yahoo)
    "MFS_CLOCK",  # the store's clock pinned, for tests and shell drills (mfs.storage.clock)
    "MFS_FEATURES_FILE",  # the feature definitions instead of config/features.yaml (mfs.paths)
}

# Keys that meant something once: a file still setting one is told what replaced it.
RETIRED_KEYS = {
    "ingest.max_jump": "a large move is stored and recorded as an anomaly, never quarantined for its size; "
    "what the quality checks tolerate is set under quality: (config/mfs.yaml)",
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
        "timescale",
        description="TimescaleDB license a new local cluster runs: 'timescale' (community: continuous "
        "aggregates, compression, policies) or 'apache' (as on hosts that ship only the Apache edition)",
    )
    keep_revisions: bool = Field(
        True,
        description="keep every version an upsert replaces (market_data_revisions, features_revisions); "
        "off only to measure what keeping them costs",
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
    requests_per_s: float | None = Field(
        None,
        gt=0,
        description="Yahoo request budget of deployment runs, shared by every shard and worker (a Prefect "
        "global concurrency limit whose slots decay at this rate); null: no budget",
    )
    request_burst: int = Field(4, gt=0, le=1000, description="requests the budget lets through at once")
    delisted_after: int = Field(
        3, ge=1, description="consecutive runs answered 'may be delisted' before a stored symbol is marked delisted"
    )


class QualityConfig(Section):
    """What the market-aware checks tolerate (``mfs.ingest.quality``). The defaults were chosen by
    running the checks over a clean year of the synthetic market and over real recorded daily
    bars (docs/reliability.md has the method and the rates)."""

    enabled: bool = Field(True, description="run the checks (off only to measure what they cost)")
    level_shift_min: float = Field(
        0.25,
        gt=0,
        description="record a bar whose close is at least this fraction above (or 1/(1+x) below) the previous one",
    )
    spike_min_ratio: float = Field(
        2.0, gt=1, description="hold back a bar at least this many times above (or below) both of its neighbours..."
    )
    spike_agreement: float = Field(
        0.10, gt=0, description="...while the neighbours agree with each other within this fraction"
    )
    split_tolerance: float = Field(
        0.15, gt=0, lt=1, description="a jump on a split's ex-date within this fraction of 1/R (or R) is the split"
    )
    newest_jump: Literal["store", "hold"] = Field(
        "store",
        description="a jump on a series' newest bar (no later bar to confirm it): store it at once with an "
        "anomaly (a live model sees a real crash now), or hold it until a later bar confirms it",
    )
    stale_bars: int = Field(
        3, ge=2, description="hourly bars in a row frozen (one price, zero volume) that are recorded"
    )
    daily_range_tolerance: float = Field(
        0.001, ge=0, description="hourly highs/lows may exceed the session's daily bar by this fraction"
    )
    daily_volume_tolerance: float = Field(
        0.5, ge=0, description="a complete session's hourly volumes may differ from its daily volume by this fraction"
    )
    revision_tolerance: float = Field(
        0.001,
        ge=0,
        description="a revised close further than this fraction from the stored one, with no action, is recorded",
    )


class FeaturesConfig(Section):
    lookback_bars: int = Field(
        450, ge=400, description="bars read before the first new bar, at least (more when a definition needs it)"
    )
    timeout_s: float = Field(
        30.0, gt=0, description="per-task timeout; a batch past it is rerun one symbol per task, each with this timeout"
    )
    workers: int = Field(2, gt=0, le=64)
    max_tasks_per_worker: int = Field(
        50, gt=0, description="recycle a worker process after this many tasks (batches of symbols)"
    )
    batch_size: int = Field(
        100,
        gt=0,
        le=500,
        description="symbols per worker task and transaction; a failed batch is retried symbol by symbol",
    )
    worker_memory_mb: int = Field(
        2048,
        ge=0,
        description="address-space limit of a worker process (0 = none); beyond it a symbol fails with MemoryError",
    )


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
    """Prefect: work pool, local server port, flow timeouts, run locks. (Yahoo requests are
    retried per request by ingest: ``ingest.max_attempts``.)"""

    work_pool: str = Field("mfs-process", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    server_port: int = Field(4200, ge=1024, le=65535, description="local Prefect server (127.0.0.1 only)")
    timeout_s: dict[str, float] = Field(
        default_factory=lambda: {"collect": 3000.0, "features": 3000.0, "full_backfill": 10800.0},
        description="flow timeouts; hourly flows stay under an hour so runs never overlap",
    )
    lock_wait_s: float = Field(1800.0, ge=0, description="how long a run waits for the previous run of its flow")


class AggregatesConfig(Section):
    retention_days: int | None = Field(
        None, gt=0, description="drop raw bars and features older than this (aggregates keep history); null keeps all"
    )
    retention_lock_timeout_s: float = Field(
        5.0,
        gt=0,
        description="retention gives up on a table whose old chunks a query still reads after this long "
        "(instead of queueing every later query behind its lock); the next run retries",
    )


class BackupConfig(Section):
    """pgBackRest: WAL archiving of the local cluster and full/differential backups (mfs.storage.backup)."""

    enabled: bool = Field(
        False,
        description="archive WAL and allow `mfs db backup` (off by default: the repository costs about the "
        "compressed store plus every archived WAL segment until the next full backup expires it)",
    )
    repo_type: Literal["posix"] = Field(
        "posix", description="where the repository lives: a local or mounted folder (object storage: not yet)"
    )
    repo_path: str | None = Field(None, description="repository folder; default <state dir>/backups")
    stanza: str = Field("mfs", pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    retention_full: int = Field(2, ge=1, le=99, description="full backups kept (with their WAL)")
    compress_type: Literal["zst", "lz4", "gz", "none"] = Field("zst")
    process_max: int = Field(2, ge=1, le=32, description="pgBackRest processes copying files at once")


class ReplicaConfig(Section):
    """The local streaming replica (mfs.storage.replica)."""

    port: int = Field(54331, ge=1024, le=65535, description="port of the local replica cluster")
    synchronous: bool = Field(
        False,
        description="the primary waits for the replica to flush each commit's WAL (no committed row lost "
        "on failover; a commit stalls while the replica is down)",
    )


class DashboardConfig(Section):
    """``mfs dashboard``: the web app's address and what its market page shows."""

    host: str = Field(
        "127.0.0.1", min_length=1, description="interface to bind (127.0.0.1: this machine only; 0.0.0.0: every one)"
    )
    port: int = Field(8050, ge=1024, le=65535, description="port of the dashboard")
    sessions: int = Field(
        10, ge=1, le=60, description="NYSE sessions, newest first, in the market page's freshness grid"
    )
    threads: int = Field(8, ge=1, le=64, description="WSGI worker threads (each reads on its own connection)")


class MonitoringConfig(Section):
    """Feature monitoring (``mfs.features.monitoring``): statistics after each features run, drift
    per session, the self-audit. The drift defaults come from measurement over a clean synthetic
    year and a volatility regime change (docs/features.md, "Monitoring")."""

    stats: bool = Field(True, description="record feature_stats after each features run (off only to measure its cost)")
    drift: bool = Field(True, description="check drift once per completed session, after the features run")
    recent_sessions: dict[str, int] = Field(
        default_factory=lambda: {"1h": 5, "1d": 20}, description="per interval, the sessions of the recent window"
    )
    reference_sessions: dict[str, int] = Field(
        default_factory=lambda: {"1h": 60, "1d": 120},
        description="per interval, the sessions of the reference window (just before the recent one)",
    )
    psi_threshold: dict[str, float] = Field(
        default_factory=lambda: {"1h": 2.0, "1d": 3.5},
        description="per interval, a feature whose PSI exceeds this (and 3 × its reference's own noise) is drifting",
    )
    min_values: int = Field(100, ge=10, description="values a window needs (fewer: too_few_values, no verdict)")
    groups: dict[str, list[str]] = Field(
        default_factory=dict, description="symbol groups checked on their own besides 'all' (name -> symbols)"
    )
    audit_sample: int = Field(5, ge=1, description="symbols the daily self-audit recomputes, drawn at random")
    audit_tolerance: float = Field(1e-9, gt=0, description="largest relative difference the self-audit accepts")


class Config(BaseSettings):
    # Not strict at this level (the sections and `intervals` are): for a strict settings class
    # pydantic-settings coerces environment strings laxly before validation ('true' -> 1 for an int).
    # No JSON decoding either: _EnvSource reads values as YAML, like the file.
    model_config = SettingsConfigDict(
        env_prefix="MFS_", env_nested_delimiter="__", enable_decoding=False, extra="forbid", frozen=True
    )

    symbols: list[str] = Field(min_length=1)
    intervals: list[Interval] = Field(default_factory=lambda: list(INTERVALS), strict=True)
    database: DatabaseConfig = DatabaseConfig()
    ingest: IngestConfig = IngestConfig()
    quality: QualityConfig = QualityConfig()
    features: FeaturesConfig = FeaturesConfig()
    runs: RunsConfig = RunsConfig()
    aggregates: AggregatesConfig = AggregatesConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    dashboard: DashboardConfig = DashboardConfig()
    backup: BackupConfig = BackupConfig()
    replica: ReplicaConfig = ReplicaConfig()

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols(cls, value: Any) -> list[str]:
        if not isinstance(value, (str, list)):  # a mapping (MFS_SYMBOLS__X=1) would pass as its keys
            raise ValueError("expected a list of symbols or a comma-separated string")
        try:
            return normalize_symbols(value)
        except SymbolError as exc:  # a validation error, so the message says where the symbols came from
            raise PydanticCustomError("invalid_symbol", "{message}", {"message": str(exc)}) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # replaced by _EnvSource
        dotenv_settings: PydanticBaseSettingsSource,  # unused: no .env files
        file_secret_settings: PydanticBaseSettingsSource,  # unused: no secret directories
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments over environment over YAML over field defaults; no .env files or secret
        # directories. load_config names the file and the environment (tests pass their own).
        path, environ = _SOURCES.get() or (paths.config_path(), os.environ)
        return init_settings, _EnvSource(settings_cls, environ), _YamlSource(settings_cls, yaml_file=path)


# (YAML file, environment) of the load_config call in progress: settings_customise_sources is a
# classmethod, pydantic-settings gives it no per-call arguments.
_SOURCES: ContextVar[tuple[Path, Mapping[str, str]] | None] = ContextVar("mfs_config_sources", default=None)


def _overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """The MFS_* variables that override YAML keys: not secrets, not runtime switches."""
    return {
        name: value
        for name, value in environ.items()
        if name.startswith("MFS_") and name not in SECRET_ENV and name not in RUNTIME_ENV
    }


def _yaml_values(value: Any) -> Any:
    """Read environment strings as YAML scalars or flow collections, as the file would."""
    if isinstance(value, dict):
        return {key: _yaml_values(item) for key, item in value.items()}
    try:
        return yaml.safe_load(value) if isinstance(value, str) and value.strip() else value
    except yaml.YAMLError:  # stays a string: validation then names key, value and variable
        return value


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, given the environment, with YAML values, refusing unknown keys."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The hook pydantic-settings' own .env source overrides: here the given mapping, overrides only,
        # lower-cased as pydantic-settings matches names case-insensitively.
        return {name.lower(): value for name, value in _overrides(self._environ).items()}

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        # pydantic-settings ignores variables naming no field; handing them on lets extra="forbid"
        # refuse them in the same message as any other error.
        for name, raw in self.env_vars.items():
            key = name[len(self.env_prefix) :].split(self.env_nested_delimiter)[0]
            if key not in self.settings_cls.model_fields:
                data.setdefault(key, raw)
        # symbols is a comma list (MFS_SYMBOLS=AAPL,MSFT), not YAML
        return {key: value if key == "symbols" else _yaml_values(value) for key, value in data.items()}


class _YamlSource(YamlConfigSettingsSource):
    """YamlConfigSettingsSource whose file errors name the file."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file_path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{file_path}: the top level must be a mapping of keys")
        return data


def _origin(loc: str, env_origins: dict[str, str], path: Path) -> str:
    """The variable that set ``loc``, a key inside it or a section holding it; else the YAML file."""
    parts = loc.split(".")
    inside = [key for key in env_origins if key.startswith(loc + ".")]
    keys = [loc, *inside, *(".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1))]
    return next((env_origins[key] for key in keys if key in env_origins), str(path))


def _describe(error: Mapping[str, Any], env_origins: dict[str, str], path: Path) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden" and loc in RETIRED_KEYS:
        msg = f"{loc} is no longer a setting: {RETIRED_KEYS[loc]}"
    elif error["type"] == "extra_forbidden":
        msg = f"{loc}: unknown configuration key"
    elif error["type"] == "invalid_symbol":  # normalize_symbols names key and value: symbols[0] = 'A B'
        msg = error["msg"]
    else:
        msg = f"{loc} = {error.get('input')!r}: {error['msg']}"
    return f"{msg} (from {_origin(loc, env_origins, path)})"


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read YAML, apply environment overrides, validate. Raises ConfigError naming key and value."""
    path = Path(path) if path else paths.config_path()
    environ = dict(os.environ if environ is None else environ)
    if not path.is_file():  # YamlConfigSettingsSource would silently skip it
        raise ConfigError(f"configuration file not found: {path}")
    token = _SOURCES.set((path, environ))
    try:
        return Config()
    except ValidationError as exc:
        env_origins = {
            ".".join(name[4:].lower().split("__")): f"environment variable {name}" for name in _overrides(environ)
        }
        lines = [_describe(e, env_origins, path) for e in exc.errors(include_url=False)]
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None
    finally:
        _SOURCES.reset(token)


@lru_cache(maxsize=1)
def get_config() -> Config:
    """The process-wide configuration (tests call ``get_config.cache_clear()`` after changing env)."""
    return load_config()
