"""The local embedded cluster and MFS_DATABASE_URL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mfs.errors import StorageError
from mfs.storage.connection import connect
from mfs.storage.localdb import LocalCluster
from tests.fixtures.database import free_port

pytestmark = pytest.mark.slow


def test_local_cluster_listens_on_loopback_with_passwords(server_url: str) -> None:
    if os.environ.get("MFS_TEST_DATABASE_URL"):
        pytest.skip("tests run against an external server")
    conn = connect(server_url)
    with conn.cursor() as cur:
        cur.execute("SHOW listen_addresses")
        assert cur.fetchone()[0] == "127.0.0.1"
        cur.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
        assert {r[0] for r in cur.fetchall()} == {"scram-sha-256"}
        cur.execute("SHOW timescaledb.telemetry_level")
        assert cur.fetchone()[0] == "off"
    conn.close()


def test_external_url_starts_nothing_locally_and_migrates_there(tmp_path: Path) -> None:
    """A second cluster plays the external server; the local state folder must stay empty."""
    # pytest's tmp_path is private to root; the server runs as 'postgres' and needs its own folder.
    home = Path(tempfile.mkdtemp(prefix="mfs-second-"))
    home.chmod(0o755)
    second = LocalCluster(root=home / "pg", port=free_port(), user="ext", dbname="store")
    second.init()
    second.start()
    try:
        state = tmp_path / "state"
        env = dict(os.environ, MFS_DATABASE_URL=second.url(), MFS_STATE_DIR=str(state), MFS_DB_PASSWORD="unused")
        env.pop("MFS_TEST_DATABASE_URL", None)
        up = subprocess.run([sys.executable, "-m", "mfs.cli.main", "db", "up"], env=env, capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
        assert "applied 001_initial" in up.stdout
        assert not state.exists(), "nothing local may be created when MFS_DATABASE_URL is set"
        assert "ext:***@" in up.stdout, "the password must not be printed"
        status = subprocess.run(
            [sys.executable, "-m", "mfs.cli.main", "status", "--json"], env=env, capture_output=True, text=True
        )
        assert status.returncode == 0, status.stderr
        assert '"name": "market_data"' in status.stdout
        again = subprocess.run(
            [sys.executable, "-m", "mfs.cli.main", "db", "up"], env=env, capture_output=True, text=True
        )
        assert "nothing to do" in again.stdout
        down = subprocess.run(
            [sys.executable, "-m", "mfs.cli.main", "db", "down"], env=env, capture_output=True, text=True
        )
        assert "not ours to stop" in down.stdout and second.running()
    finally:
        second.destroy()
        shutil.rmtree(home, ignore_errors=True)


def test_wrong_password_is_one_clear_line(tmp_path: Path, password_server_url: str) -> None:
    from sqlalchemy.engine import make_url

    bad = make_url(password_server_url).set(password="wrong").render_as_string(hide_password=False)
    env = dict(os.environ, MFS_DATABASE_URL=bad)
    result = subprocess.run([sys.executable, "-m", "mfs.cli.main", "status"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.startswith("mfs: error: cannot connect to")
    assert "wrong" not in result.stderr
    assert "Traceback" not in result.stderr


def test_reading_the_url_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A getter is a getter: before `mfs db up` the URL is an error naming the fix, and the state
    folder stays as it was."""
    monkeypatch.delenv("MFS_DB_PASSWORD", raising=False)
    cluster = LocalCluster(root=tmp_path / "pg", port=free_port(), user="u", dbname="d")
    with pytest.raises(StorageError, match="run `mfs db up`"):
        cluster.url()
    assert not cluster.root.exists()
