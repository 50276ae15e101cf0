"""A throw-away PostgreSQL server for tests: a fresh cluster in a temporary folder, on a free port.

:class:`PostgresServer` runs the distribution's own server binaries (Debian's ``postgresql`` package puts
them in ``/usr/lib/postgresql/<major>/bin``; any major version found there will do, or ``PATH``'s). The
cluster listens on 127.0.0.1 only, with its unix socket in its own folder, and trusts local connections;
it runs without fsync, as nothing in it has to survive. PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` user (``runuser``), in a folder that user owns. ``stop()`` stops the server
and removes the folder; it is safe to call twice, is called when a start fails half-way, and at exit.

    with PostgresServer() as server:
        server.create_database("t1")
        engine = create_engine(server.url("t1"))
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from rerankd_support.harness import HOST, free_port

__all__ = ["PostgresServer", "PostgresUnavailable", "find_bin_dir"]

USER = "postgres"  # the OS user the server runs as when we are root, and the database superuser
START_ATTEMPTS = 3  # a free port can be taken by someone else between finding it and listening on it
START_TIMEOUT_S = 60

# For tests: nothing here must survive a crash, and many connections come from several pools at once.
SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "max_connections": "300",
    "shared_buffers": "'128MB'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
    "log_statement": "'none'",
    "timezone": "'UTC'",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path)) or (0,)


def find_bin_dir() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres``: the newest /usr/lib/postgresql/*/bin, else
    PATH's. Raises :class:`PostgresUnavailable` with what to install when there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key, reverse=True)
    found += [path for path in [shutil.which("initdb")] if path]
    for initdb in found:
        folder = Path(initdb).parent
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin or on PATH: "
        "install them (`apt-get install -y postgresql`; `make install-test` does it)"
    )


class PostgresServer:
    """A PostgreSQL cluster of its own: ``start()``, ``create_database(name)``, ``url(name)``, ``stop()``."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir
        self.port = 0
        self.root: Path | None = None
        self._as_root = os.geteuid() == 0
        self._running = False

    # -- paths ------------------------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root

    @property
    def log_path(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "server.log"

    # -- running the binaries ------------------------------------------------------------------------------
    def _command(self, name: str, *args: str) -> list[str]:
        assert self.bin_dir is not None
        command = [str(self.bin_dir / name), *args]
        return ["runuser", "-u", USER, "--", *command] if self._as_root else command

    def _run(self, name: str, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        result = subprocess.run(
            self._command(name, *args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{name} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                f"{self._log_tail()}"
            )

    def _log_tail(self, chars: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""
        return f"\n--- server log ---\n{text[-chars:]}"

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> PostgresServer:
        """Initialise the cluster and start the server; on any failure stop what was started and raise."""
        if self._running:
            return self
        self.bin_dir = self.bin_dir or find_bin_dir()
        atexit.register(self.stop)
        try:
            self._init_cluster()
            last: Exception | None = None
            for _ in range(START_ATTEMPTS):
                self.port = free_port()
                try:
                    self._run(
                        "pg_ctl",
                        "start",
                        "--wait",
                        f"--timeout={START_TIMEOUT_S}",
                        f"--pgdata={self.data_dir}",
                        f"--log={self.log_path}",
                        f"--options=-p {self.port} -k {self.socket_dir}",
                        timeout=START_TIMEOUT_S + 10,
                    )
                except RuntimeError as error:  # most likely the port was taken meanwhile: another one
                    last = error
                    self._pg_ctl_stop()
                    continue
                self._running = True
                return self
            raise RuntimeError(f"PostgreSQL did not start in {START_ATTEMPTS} attempts") from last
        except BaseException:
            self.stop()
            raise

    def _init_cluster(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rerankd-pg-"))
        if self._as_root:
            try:
                owner = pwd.getpwnam(USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"PostgreSQL refuses to run as root and there is no '{USER}' user to run it as: "
                    "install Debian's postgresql package (`apt-get install -y postgresql`), which adds it"
                ) from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb",
            f"--pgdata={self.data_dir}",
            f"--username={USER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# rerankd tests\n")
            conf.writelines(f"{name} = {value}\n" for name, value in SETTINGS.items())
        # Only the unix socket in this folder and 127.0.0.1: nothing from elsewhere, not even ::1.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n", encoding="utf-8"
        )

    def _pg_ctl_stop(self) -> None:
        if self.root is None or not (self.data_dir / "postmaster.pid").exists():
            return
        try:
            self._run("pg_ctl", "stop", "--wait", "--mode=fast", f"--pgdata={self.data_dir}", timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "stop", "--wait", "--mode=immediate", f"--pgdata={self.data_dir}", timeout=30)

    def stop(self) -> None:
        """Stop the server (if it runs) and remove its folder; safe to call more than once."""
        try:
            self._pg_ctl_stop()
        finally:
            self._running = False
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None
            atexit.unregister(self.stop)

    @property
    def running(self) -> bool:
        return self._running

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases ----------------------------------------------------------------------------------------
    def url(self, dbname: str = "postgres", driver: str = "psycopg") -> str:
        """A SQLAlchemy URL for a database of this server (``postgresql+psycopg://...``)."""
        assert self._running, "the server is not running"
        return f"postgresql+{driver}://{USER}@{HOST}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string (for psycopg or psql)."""
        assert self._running, "the server is not running"
        return f"host={HOST} port={self.port} user={USER} dbname={dbname}"

    def execute(self, statements: Sequence[str], dbname: str = "postgres") -> None:
        """Run statements one by one, each in its own transaction (CREATE DATABASE needs that)."""
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement.encode())

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"not a plain database name: {name!r}")
        deadline = time.monotonic() + 10
        while True:
            try:
                self.execute([f'CREATE DATABASE "{name}"'])
                break
            except Exception as error:  # template1 busy for a moment: another CREATE DATABASE is copying it
                if "being accessed by other users" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return self.url(name)
