"""The local Prefect stack: a Prefect server with its own database and process workers, started
in the background with logs and pid files in ``.mfs/prefect/``.

Why a module and not shell: ``scripts/run``, ``scripts/stop``, the ``mfs stack`` verbs and the
end-to-end tests must start and stop the same things the same way. Facts of Prefect 3.8.8 it
relies on: telemetry must be switched off or a lookup fails and logs errors; PREFECT_HOME's
parent must exist; the 3.8.8 worker often ignores the first SIGTERM, so workers are stopped
before the server and signalled again after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from sqlalchemy.engine import make_url

from mfs import paths
from mfs.config import get_config
from mfs.errors import MfsError
from mfs.logs import get_logger
from mfs.storage import migrations
from mfs.storage.connection import connect, external_url, with_database
from mfs.storage.localdb import default_cluster

log = get_logger("mfs.orchestration.stack")
PREFECT_DATABASE = "prefect"
STOP_GRACE_S = 10.0
# Popen objects of processes we started, kept so they are reaped (not warned about) when stopped.
_started: dict[int, subprocess.Popen] = {}


class StackError(MfsError):
    """The local Prefect server or a worker could not be started or reached."""


def prefect_bin() -> str:
    """The ``prefect`` executable of the interpreter running us (the project's .venv)."""
    return str(Path(sys.executable).with_name("prefect"))


def telemetry_off_env() -> dict[str, str]:
    return {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def local_prefect_database_url() -> str | None:
    """``postgresql+asyncpg://…/prefect`` in the local cluster, or None when the store is an
    external server (then the Prefect server keeps SQLite in its home)."""
    if external_url():
        return None
    cluster = default_cluster()
    if not cluster.running():
        return None
    return prefect_database_url(with_database(cluster.url(), PREFECT_DATABASE))


def prefect_database_url(url: str) -> str:
    """Create the PostgreSQL database named in ``url`` for a Prefect server (with pg_trgm) and
    return it in the driver form Prefect wants. PostgreSQL, not SQLite: with two workers and the
    scheduler writing at once, SQLite answers "database is locked" and the API returns 503."""
    migrations.ensure_database(url)
    conn = connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:  # Prefect's migrations need trigram indexes (contrib)
            cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    finally:
        conn.close()
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@dataclass
class PrefectStack:
    """One Prefect server on 127.0.0.1:port plus workers, all state under ``root``."""

    root: Path
    port: int
    database_url: str | None = None  # None: SQLite under root/home
    extra_env: dict[str, str] = field(default_factory=dict)
    remote_api_url: str | None = None  # a server elsewhere (docker-compose, another machine)

    @classmethod
    def default(cls) -> PrefectStack:
        return cls(root=paths.state_dir() / "prefect", port=get_config().orchestration.server_port)

    # -- addresses and environment -------------------------------------------------------------
    @classmethod
    def remote(cls, api_url: str) -> PrefectStack:
        """Deploy to / run workers against a server we did not start (PREFECT_API_URL)."""
        return cls(root=paths.state_dir() / "prefect", port=0, remote_api_url=api_url.rstrip("/"))

    @property
    def api_url(self) -> str:
        return self.remote_api_url or f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")

    def env(self) -> dict[str, str]:
        """Environment for every Prefect process of this stack (and for `prefect` CLI calls)."""
        (self.root / "home").mkdir(parents=True, exist_ok=True)  # Prefect needs PREFECT_HOME's parent
        env = dict(os.environ)
        env.pop("PREFECT_PROFILE", None)
        env.update(telemetry_off_env())
        env.update(
            {
                "PREFECT_HOME": str(self.root / "home"),
                "PREFECT_API_URL": self.api_url,
                "PREFECT_LOGGING_EXTRA_LOGGERS": "mfs",  # our structlog lines reach the UI
                "MFS_PROJECT_ROOT": str(paths.project_root()),  # the deployments' pull step
                "MFS_LOG_FORMAT": env.get("MFS_LOG_FORMAT", "json"),
            }
        )
        if not self.remote_api_url:
            env.update({"PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(self.port)})
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    def prefect(
        self, *args: str, timeout: float = 300, check: bool = True, unset: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess:
        """Run the ``prefect`` CLI against this stack from the project root (without ``unset``)."""
        env = {k: v for k, v in self.env().items() if k not in unset}
        result = subprocess.run(
            [prefect_bin(), *args],
            env=env,
            cwd=paths.project_root(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise StackError(
                f"prefect {' '.join(args)} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}"
            )
        return result

    # -- processes -----------------------------------------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.root / f"{name}.pid"

    def _log_file(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def _process(self, name: str) -> psutil.Process | None:
        """The live process recorded in ``name.pid``, if it is still ours (pids get reused)."""
        try:
            pid = int(self._pid_file(name).read_text().strip())
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or "prefect" not in " ".join(proc.cmdline()):
                return None
            return proc
        except (FileNotFoundError, ValueError, psutil.Error):
            return None

    def _spawn(self, name: str, args: list[str]) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "home").mkdir(exist_ok=True)
        with self._log_file(name).open("ab") as logf:
            proc = subprocess.Popen(
                [prefect_bin(), *args],
                env=self.env(),
                cwd=paths.project_root(),
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # survives the caller; own process group
        self._pid_file(name).write_text(f"{proc.pid}\n")
        _started[proc.pid] = proc
        return proc.pid

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_server(self, timeout_s: float = 120) -> bool:
        """Start the server unless it already answers; returns True when it was started."""
        if self.healthy():
            return False
        if self.remote_api_url:
            raise StackError(f"no Prefect server answers at {self.api_url}")
        if self._process("server") is None:
            self._spawn("server", ["server", "start", "--host", "127.0.0.1", "--port", str(self.port)])
            log.info("prefect server starting", url=self.ui_url, log=str(self._log_file("server")))
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self._process("server") is None:
                raise StackError(
                    f"the Prefect server exited; see {self._log_file('server')}:\n{self.log_tail('server')}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"the Prefect server did not answer at {self.api_url} within {timeout_s:.0f} s; "
                    f"see {self._log_file('server')}"
                )
            time.sleep(0.5)
        return True

    def worker_names(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("worker-*.pid") if self._process(p.stem))

    def start_worker(self, name: str = "worker-1", pool: str | None = None) -> bool:
        """Start a process worker polling the work pool unless one with this name runs."""
        if not name.startswith("worker-"):
            raise ValueError(f"worker names start with 'worker-': {name!r}")
        if self._process(name):
            return False
        pool = pool or get_config().orchestration.work_pool
        self._spawn(
            name, ["worker", "start", "--pool", pool, "--name", f"{name}@{os.uname().nodename}", "--type", "process"]
        )
        log.info("prefect worker started", worker=name, pool=pool)
        return True

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join(self._log_file(name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def _stop(self, name: str) -> bool:
        proc = self._process(name)
        self._pid_file(name).unlink(missing_ok=True)
        if proc is None:
            return False
        try:
            return self._terminate(proc)
        finally:
            self._reap(proc.pid)

    def _terminate(self, proc: psutil.Process) -> bool:
        group = [proc, *proc.children(recursive=True)]
        for _attempt in range(2):  # the 3.8.8 worker often ignores the first SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            _gone, alive = psutil.wait_procs(group, timeout=STOP_GRACE_S / 2)
            if not alive:
                return True
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        return True

    @staticmethod
    def _reap(pid: int) -> None:
        popen = _started.pop(pid, None)
        if popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)

    def stop(self) -> list[str]:
        """Stop workers first (they report to the server while shutting down), then the server."""
        stopped = [name for name in sorted(p.stem for p in self.root.glob("worker-*.pid")) if self._stop(name)]
        if self._stop("server"):
            stopped.append("server")
        return stopped

    def status(self) -> dict[str, object]:
        return {
            "ui": self.ui_url,
            "api": self.api_url,
            "server": self.healthy(),
            "workers": self.worker_names(),
            "logs": str(self.root),
        }
