"""The embedded local cluster: PostgreSQL 15 + TimescaleDB in a git-ignored project folder.

It listens on 127.0.0.1 only, on its own port, with password authentication (scram-sha-256).
The superuser's password comes from MFS_DB_PASSWORD or is generated once into the state folder
(mode 0600). PostgreSQL refuses to run as root, so as root the server runs as ``postgres``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from mfs import paths
from mfs.config import get_config
from mfs.errors import StorageError
from mfs.logs import get_logger

PG_BIN = Path("/usr/lib/postgresql/15/bin")
log = get_logger("mfs.storage.localdb")

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_preload_libraries": "'timescaledb'",
    "timescaledb.telemetry_level": "off",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "max_connections": "100",
    "shared_buffers": "'256MB'",
    "work_mem": "'32MB'",
    "maintenance_work_mem": "'256MB'",
    "max_worker_processes": "16",
    "timescaledb.max_background_workers": "8",
    "password_encryption": "'scram-sha-256'",
    "logging_collector": "off",
}


def ensure_server_installed() -> None:
    """Install PostgreSQL 15 and build TimescaleDB when missing (scripts/install-timescaledb)."""
    script = paths.scripts_dir() / "install-timescaledb"
    result = subprocess.run([str(script)], capture_output=True, text=True)
    if result.returncode != 0:
        raise StorageError((result.stderr.strip() or result.stdout.strip() or f"{script} failed").replace("\n", "\n  "))


@dataclass(frozen=True)
class LocalCluster:
    root: Path
    port: int
    user: str = "mfs"
    dbname: str = "mfs"
    # timescaledb.license written at initdb: 'timescale' (community) or 'apache'; None writes no
    # setting, as the project's first version did (then each TimescaleDB library uses its default).
    edition: str | None = "timescale"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def password_file(self) -> Path:
        return self.root / "superuser-password"

    @property
    def reader_password_file(self) -> Path:
        return self.root / "reader-password"

    def reader_password(self) -> str | None:
        """The mfs_reader login password ``ensure_reader_password`` generated, if it did."""
        file = self.reader_password_file
        return file.read_text().strip() if file.exists() else None

    def ensure_reader_password(self) -> str:
        """Generate (once, 0600) the password `mfs db up` gives mfs_reader on this cluster when
        MFS_READER_PASSWORD is unset: readers such as the dashboard then log in as the role itself."""
        existing = self.reader_password()
        if existing:
            return existing
        self.root.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(24)
        fd = os.open(self.reader_password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        return value

    # -- identity ---------------------------------------------------------------------------
    def _os_user(self) -> str | None:
        """As root the server runs as 'postgres'; otherwise as the current user."""
        return "postgres" if os.geteuid() == 0 else None

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        user = self._os_user()
        cmd = (["runuser", "-u", user, "--"] if user else []) + args
        result = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            raise StorageError(f"{Path(args[0]).name} failed: {(result.stderr or result.stdout).strip()}")
        return result

    def password(self) -> str:
        """MFS_DB_PASSWORD, else the one ``init`` generated; reading it creates nothing."""
        env = os.environ.get("MFS_DB_PASSWORD")
        if env:
            return env
        if self.password_file.exists():
            return self.password_file.read_text().strip()
        raise StorageError(f"no local database in {self.root}: run `mfs db up` (or set MFS_DATABASE_URL)")

    def _ensure_password(self) -> str:
        """The superuser password, generated once (0600) by the first ``init``."""
        if os.environ.get("MFS_DB_PASSWORD") or self.password_file.exists():
            return self.password()
        value = secrets.token_urlsafe(24)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        return value

    def url(self, dbname: str | None = None) -> str:
        return (
            f"postgresql://{self.user}:{quote(self.password(), safe='')}@127.0.0.1:{self.port}/{dbname or self.dbname}"
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialized():
            return False
        return self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "status"], check=False).returncode == 0

    def init(self) -> None:
        """initdb with password auth on 127.0.0.1 and our settings; refuses to touch existing data."""
        if self.initialized():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        os_user = self._os_user()
        if os_user:
            uid = pwd.getpwnam(os_user).pw_uid
            for path in (self.root, self.socket_dir):
                os.chown(path, uid, -1)
            self._check_traversable(os_user)
        pwfile = self.root / ".initdb-pw"
        pwfile.write_text(self._ensure_password() + "\n")
        try:
            if os_user:
                os.chown(pwfile, pwd.getpwnam(os_user).pw_uid, -1)
            pwfile.chmod(0o600)
            self._run(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        settings = dict(SERVER_SETTINGS, port=str(self.port), unix_socket_directories=f"'{self.socket_dir}'")
        if self.edition is not None:
            settings["timescaledb.license"] = f"'{self.edition}'"
        with (self.data_dir / "postgresql.conf").open("a") as fh:
            fh.write("\n# --- mfs ---\n")
            for key, value in settings.items():
                fh.write(f"{key} = {value}\n")
        # Only loopback, only with a password.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )

    def _check_traversable(self, os_user: str) -> None:
        probe = self._run(["test", "-x", str(self.root)], check=False)
        if probe.returncode != 0:
            raise StorageError(
                f"the '{os_user}' user cannot reach {self.root}: make its parent folders traversable "
                f"(chmod o+x) or set MFS_STATE_DIR to a folder it can reach"
            )

    def start(self) -> None:
        if self.running():
            return
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        os_user = self._os_user()
        if os_user:
            for path in (self.socket_dir, self.log_file):
                os.chown(path, pwd.getpwnam(os_user).pw_uid, -1)
        result = self._run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60", "start"],
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join(self.log_file.read_text().splitlines()[-8:])
            raise StorageError(f"PostgreSQL did not start on 127.0.0.1:{self.port}:\n{tail}")

    def stop(self) -> None:
        if self.running():
            self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def restart(self) -> None:
        self._run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-l", str(self.log_file), "restart"]
        )

    def destroy(self) -> None:
        """Stop and delete the cluster's folder (tests' throwaway clusters)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def default_cluster() -> LocalCluster:
    cfg = get_config().database
    return LocalCluster(
        root=paths.state_dir() / "pg", port=cfg.port, user=cfg.user, dbname=cfg.name, edition=cfg.edition
    )


def edition_cluster(edition: str) -> LocalCluster:
    """A local cluster running ``edition``: the default one when it is configured so, else a
    second one beside it (``pg-<edition>``, the next port up) for tests and side-by-side benchmarks."""
    cfg = get_config().database
    if edition == cfg.edition:
        return default_cluster()
    return LocalCluster(
        root=paths.state_dir() / f"pg-{edition}", port=cfg.port + 1, user=cfg.user, dbname=cfg.name, edition=edition
    )
