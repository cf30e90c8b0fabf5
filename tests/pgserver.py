"""A PostgreSQL server for the tests: a database of their own for each store or test server.

Where the server comes from, in order:

* ``CARGOHOLD_TEST_PG``: a ``postgresql://`` URL of a server where the tests may
  ``CREATE DATABASE`` (CI starts one). The databases made are dropped at exit.
* Otherwise a private cluster from the local PostgreSQL binaries (``initdb``/``pg_ctl`` on
  PATH or under ``/usr/lib/postgresql/*/bin``), started lazily, once per test process, in a
  temporary directory (trust authentication, TCP on 127.0.0.1 only, ``fsync=off``) and
  removed at interpreter exit. As root, ``initdb`` refuses to run, so both run as the
  ``postgres`` user (``runuser``), which owns the directory.
* Neither: the calling test is skipped (it fails instead with ``CARGOHOLD_REQUIRE_PG=1``).

Server processes started by the tests connect with the same URLs, so they must not outlive
the test process that made them (the ``ServerProcess`` fixtures stop them first).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

T = TypeVar("T")

ENV_DSN = "CARGOHOLD_TEST_PG"
ENV_REQUIRE = "CARGOHOLD_REQUIRE_PG"
_START_ATTEMPTS = 3  # a free port can be taken between probing it and the server binding it

_lock = threading.Lock()
_cluster: _Cluster | None = None
_cluster_error: str | None = None  # why no local cluster could start (remembered)
_external_databases: list[str] = []  # made on CARGOHOLD_TEST_PG, dropped at exit


@dataclass
class _Cluster:
    """A private PostgreSQL cluster in a temporary directory."""

    bin_dir: Path
    root: Path
    port: int = 0
    as_user: list[str] = field(default_factory=list)  # ["runuser", "-u", "postgres", "--"]
    start_prefix: list[str] = field(default_factory=list)  # wraps pg_ctl start (a namespace)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, *args: str, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *self.as_user, *args], capture_output=True, text=True,
                              timeout=120, check=False)

    def start(self) -> None:
        result = self.run(str(self.bin_dir / "initdb"), "-D", str(self.data), "--auth=trust",
                          "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stdout}{result.stderr}")
        failure = ""
        for _ in range(_START_ATTEMPTS):
            self.port = _free_port()
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=200 -c shared_buffers=32MB")
            result = self.run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w",
                              "-t", "60", "-l", str(self.root / "server.log"), "-o", options,
                              "start", prefix=self.start_prefix)
            if result.returncode == 0:
                return
            failure = result.stdout + result.stderr + _tail(self.root / "server.log")
        raise RuntimeError(f"pg_ctl start failed: {failure}")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                     "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _find_bin_dir() -> Path | None:
    """The directory holding initdb and pg_ctl: PATH first, then the newest Debian layout."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        found = Path(initdb).resolve().parent
        if (found / "pg_ctl").exists():
            return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit()
                        else 0)
    for candidate in reversed(candidates):
        if Path(candidate).with_name("pg_ctl").exists():
            return Path(candidate).parent
    return None


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(ENV_REQUIRE) == "1":
        pytest.fail(f"PostgreSQL is required ({ENV_REQUIRE}=1) but unavailable: {reason}")
    pytest.skip(f"no PostgreSQL for the tests: {reason}")


def _local_cluster() -> _Cluster:
    """This process's private cluster, started on first use."""
    global _cluster, _cluster_error
    with _lock:
        if _cluster is not None:
            return _cluster
        if _cluster_error is not None:
            _unavailable(_cluster_error)
        bin_dir = _find_bin_dir()
        if bin_dir is None:
            _cluster_error = (f"set {ENV_DSN} or install PostgreSQL (initdb and pg_ctl were "
                              "not found)")
            _unavailable(_cluster_error)
        # Not pytest's tmp_path: as root, that directory is closed to the postgres user.
        root = Path(tempfile.mkdtemp(prefix="cargohold-pg-"))
        try:
            as_user = _as_postgres_user(root)
        except LookupError as exc:
            shutil.rmtree(root, ignore_errors=True)
            _cluster_error = str(exc)
            _unavailable(_cluster_error)
        cluster = _Cluster(bin_dir, root, as_user=as_user)
        try:
            cluster.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            cluster.stop()
            _cluster_error = f"could not start a private cluster: {exc}"
            _unavailable(_cluster_error)
        atexit.register(cluster.stop)
        _cluster = cluster
        return cluster


def _as_postgres_user(root: Path) -> list[str]:
    """The prefix that runs a cluster's commands: initdb refuses to run as root, so root
    hands ``root`` (the cluster's directory) and them to the ``postgres`` user.

    ``LookupError`` when running as root without a ``postgres`` user.
    """
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise LookupError("running as root and there is no postgres user to run initdb"
                          ) from None
    shutil.chown(root, user="postgres")
    return ["runuser", "-u", "postgres", "--"]


@contextlib.contextmanager
def database_on_a_small_disk(mib: int) -> Iterator[str]:
    """The DSN of a database whose tables live on a private ``mib`` MiB tmpfs.

    A cluster of its own, started inside a mount namespace that mounts the tmpfs: the
    database is created in a tablespace there, so its tables fill a real disk (PostgreSQL
    answers SQLSTATE 53100, disk full) while the WAL, on the cluster's own disk, keeps
    working. Root mounts in a plain mount namespace and runs PostgreSQL as ``postgres``;
    anyone else in a user namespace of their own. Skips (or fails under
    ``CARGOHOLD_REQUIRE_PG=1``) without PostgreSQL binaries; skips when no tmpfs can be
    mounted.
    """
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        _unavailable("initdb and pg_ctl were not found")
    root = Path(tempfile.mkdtemp(prefix="cargohold-pg-small-"))
    try:
        try:
            as_user = _as_postgres_user(root)
        except LookupError as exc:
            _unavailable(str(exc))
        small = root / "small"
        small.mkdir()
        if as_user:
            namespace = ["unshare", "--mount"]
            become = 'chown postgres "$0/ts" && exec "$@"'
        else:
            # Mounting takes root in the namespace, and PostgreSQL refuses to run as root:
            # a nested user namespace maps the caller back to their own ids.
            namespace = ["unshare", "--user", "--map-root-user", "--mount"]
            become = (f"exec unshare --user --map-user={os.geteuid()} "
                      f'--map-group={os.getegid()} "$@"')
        mount = f'mount -t tmpfs -o size={mib}m tmpfs "$0" && mkdir "$0/ts" && {become}'
        prefix = [*namespace, "sh", "-c", mount, str(small)]
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, text=True,
                                   timeout=30, check=False)
        except FileNotFoundError:
            pytest.skip("cannot mount a private tmpfs here: no unshare command")
        if probe.returncode != 0:
            pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.strip()}")
        cluster = _Cluster(bin_dir, root, as_user=as_user, start_prefix=prefix)
        try:
            cluster.start()
            _run_async(_execute(cluster.dsn,
                                f"CREATE TABLESPACE small LOCATION '{small / 'ts'}'",
                                "CREATE DATABASE small_disk TABLESPACE small"))
            yield _with_database(cluster.dsn, "small_disk")
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def admin_dsn() -> str:
    """A DSN of a database on the test server where ``CREATE DATABASE`` is allowed."""
    external = os.environ.get(ENV_DSN, "")
    if external:
        return external
    return _local_cluster().dsn


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{ENV_DSN} must be a postgresql:// URL, got {dsn!r}")
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _run_async(make: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even under a running event loop."""
    result: list[T] = []
    error: list[BaseException] = []

    def main() -> None:
        try:
            result.append(asyncio.run(make))
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=main, name="cargohold-pgserver")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def _execute(dsn: str, *statements: str) -> None:
    import asyncpg

    deadline = time.monotonic() + 30
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
            break
        except asyncpg.CannotConnectNowError:  # still starting up
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def fresh_database_dsn() -> str:
    """Create an empty database with a unique name on the test server; return its DSN."""
    admin = admin_dsn()
    name = f"cargohold_{secrets.token_hex(8)}"
    try:
        _run_async(_execute(admin, f'CREATE DATABASE "{name}"'))
    except (OSError, ImportError) as exc:
        _unavailable(f"cannot create a database on {_redacted(admin)}: {exc!r}")
    if os.environ.get(ENV_DSN):
        with _lock:
            if not _external_databases:
                atexit.register(_drop_external_databases)
            _external_databases.append(name)
    return _with_database(admin, name)


def _drop_external_databases() -> None:
    """Best effort: drop what the tests made on a shared server (nothing may still use it)."""
    admin = os.environ.get(ENV_DSN, "")
    if not admin or not _external_databases:
        return
    statements = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
                  for name in _external_databases]
    with contextlib.suppress(Exception):
        _run_async(_execute(admin, *statements))


def _redacted(dsn: str) -> str:
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
