"""``mfs dashboard`` from the shell: serves on the loopback interface by default, reads as
mfs_reader, starts and stops in the background as part of the stack; bad input is one line.
(The pages themselves, in a browser: tests/dashboard.)"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from mfs.cli.main import main
from tests.fixtures.database import free_port


def _listening(pid: int, port: int) -> list[str]:
    proc = psutil.Process(pid)
    return [c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == "LISTEN" and c.laddr.port == port]


@pytest.mark.slow
def test_the_dashboard_binds_the_loopback_interface_and_answers(db, tmp_path, reader_login) -> None:
    port = free_port()
    env = dict(
        os.environ,
        PREFECT_API_URL="http://127.0.0.1:9/api",
        MFS_STATE_DIR=str(tmp_path),
        MFS_READER_PASSWORD=reader_login,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mfs.cli.main", "dashboard", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"dashboard: http://127.0.0.1:{port}/ (reading as mfs_reader"), first
        deadline = time.monotonic() + 30
        while not _listening(proc.pid, port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _listening(proc.pid, port) == ["127.0.0.1"]  # dashboard.host's default: this machine only
        page = httpx.get(f"http://127.0.0.1:{port}/market", timeout=10)
        assert page.status_code == 200 and "mfs dashboard" in page.text
        assert "waitress" in page.headers.get("server", "")  # a WSGI server, not Flask's development one
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_background_start_status_and_stop(db, tmp_path, config_env, capsys, reader_login) -> None:
    port = free_port()
    config_env(
        MFS_STATE_DIR=str(tmp_path),
        MFS_DASHBOARD__PORT=str(port),
        PREFECT_API_URL="http://127.0.0.1:9/api",
        MFS_READER_PASSWORD=reader_login,  # the store's, read before the state folder moves to tmp_path
    )
    try:
        assert main(["dashboard", "--background"]) == 0
        assert capsys.readouterr().out.strip() == f"dashboard started: http://127.0.0.1:{port}/"
        assert (tmp_path / "dashboard" / "dashboard.pid").exists()
        assert main(["stack", "status"]) == 0
        assert f"dashboard: http://127.0.0.1:{port}/" in capsys.readouterr().out
    finally:
        assert main(["dashboard", "--stop"]) == 0
    assert capsys.readouterr().out.strip() == "dashboard stopped"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=5)


def test_a_bad_port_is_one_line(capsys) -> None:
    assert main(["dashboard", "--port", "80"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mfs: error: --port must be 1024-65535, got 80"
