"""The dashboard as a background process of the local stack: ``./scripts/run`` starts it, ``./scripts/stop``
stops it, ``mfs stack status`` prints its address. Pid and log in ``.mfs/dashboard/`` (like the
Prefect server's in ``.mfs/prefect/``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from mfs import paths
from mfs.config import get_config
from mfs.errors import MfsError

START_TIMEOUT_S = 60.0
# Popen objects of dashboards this process started, kept so they are reaped (not warned about) when stopped.
_started: dict[int, subprocess.Popen] = {}


def folder() -> Path:
    return paths.state_dir() / "dashboard"


def address(host: str | None = None, port: int | None = None) -> str:
    cfg = get_config().dashboard
    host = host or cfg.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port or cfg.port}/"


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _process() -> psutil.Process | None:
    """The running dashboard recorded in the pid file, if it is still ours (pids get reused)."""
    try:
        proc = psutil.Process(int((folder() / "dashboard.pid").read_text().strip()))
        if proc.status() == psutil.STATUS_ZOMBIE or "dashboard" not in " ".join(proc.cmdline()):
            return None
        return proc
    except (FileNotFoundError, ValueError, psutil.Error):
        return None


def start(host: str | None = None, port: int | None = None) -> tuple[bool, str]:
    """Start ``mfs dashboard`` in the background unless ours runs; (started, address)."""
    url = address(host, port)
    if _process() is not None and answers(url):
        return False, url
    folder().mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "mfs.cli.main", "dashboard"]
    args += ["--host", host] if host else []
    args += ["--port", str(port)] if port else []
    log_path = folder() / "dashboard.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )  # survives the caller, in its own process group
    (folder() / "dashboard.pid").write_text(f"{proc.pid}\n")
    _started[proc.pid] = proc
    deadline = time.monotonic() + START_TIMEOUT_S
    while not answers(url):
        if proc.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-5:])
            raise MfsError(f"the dashboard exited ({proc.returncode}); see {log_path}:\n{tail}")
        if time.monotonic() > deadline:
            raise MfsError(f"the dashboard did not answer at {url} within {START_TIMEOUT_S:.0f} s; see {log_path}")
        time.sleep(0.3)
    return True, url


def stop() -> bool:
    """Stop the background dashboard; False when none ran."""
    proc = _process()
    (folder() / "dashboard.pid").unlink(missing_ok=True)
    if proc is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    _gone, alive = psutil.wait_procs([proc], timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    popen = _started.pop(proc.pid, None)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)
    return True


def status() -> dict[str, object]:
    url = address()
    return {"dashboard": url, "up": answers(url), "log": str(folder() / "dashboard.log")}
