"""Fixtures: the real cargohold server on a free port, driven by real clients.

Each xdist worker starts its own server (``server`` is session-scoped), so tests in
different workers never share state; tests that need a fresh server (restarts, kill -9)
start their own with :class:`ServerProcess`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import boto3
import pytest
from botocore.config import Config

from cargohold import cli

ACCESS_KEY = "CHTESTROOTKEY0000001"
SECRET_KEY = "test-root-secret-key-for-cargohold-0001"
REGION = "nyc3"
# The metadata store the servers started by tests use: "sqlite" (the default) or
# "postgresql" (scripts/test's second pass: each server gets a database of its own).
TEST_STORE = os.environ.get("CARGOHOLD_TEST_STORE", "sqlite")
# With CARGOHOLD_REQUIRE_CLIENTS=1 (as .ci/run sets) a missing client or browser fails the
# tests that need it instead of skipping them, so CI cannot pass without running them.
REQUIRE_CLIENTS = os.environ.get("CARGOHOLD_REQUIRE_CLIENTS") == "1"


def missing_client(reason: str, *, module: bool = False) -> NoReturn:
    """Skip the calling test (or, with ``module``, the module being collected) because a
    stock client it drives is not here; fail instead under CARGOHOLD_REQUIRE_CLIENTS=1."""
    if REQUIRE_CLIENTS:
        pytest.fail(f"CARGOHOLD_REQUIRE_CLIENTS=1, but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def headless_chromium(args: list[str], profile: Path,
                      timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run Debian's Chromium headless with a fresh profile and ``args``, as the browser tests
    do. The flags keep it off the network it would otherwise call home to (this machine's
    closed network refuses those connections, many at a time)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        missing_client("chromium is not installed (apt-get install chromium)")
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A ``cargohold serve`` child process with its own data directory."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    meta: str = field(default_factory=lambda: default_meta())  # "" = embedded SQLite
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # Runs before the server command (e.g. a wrapper that mounts its data directory).
    command_prefix: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        env = {**os.environ, "CARGOHOLD_ROOT_ACCESS_KEY": ACCESS_KEY,
               "CARGOHOLD_ROOT_SECRET_KEY": SECRET_KEY, **self.env}
        if self.meta:
            env["CARGOHOLD_META"] = self.meta
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [*self.command_prefix, sys.executable, "-m", "cargohold", "serve",
             "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data_dir),
             "--region", REGION, "--workers", "1", *self.extra_args],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def default_meta() -> str:
    """``--meta`` for a new test server: a fresh PostgreSQL database in the PostgreSQL
    pass, else empty (SQLite in the server's data directory)."""
    if TEST_STORE == "postgresql":
        from tests.pgserver import fresh_database_dsn

        return fresh_database_dsn()
    return ""


def make_client(endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY,
                **config: Any) -> Any:
    """A stock boto3 S3 client (default checksum behaviour) against ``endpoint``."""
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key, region_name=REGION,
        config=Config(retries={"max_attempts": 1}, **config),
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("cargohold") / "data"
    proc = ServerProcess(data_dir=data_dir).start()
    yield proc
    proc.stop()
    # Blobs of deleted test objects wait for the collector; do not leave gigabytes behind.
    shutil.rmtree(data_dir / "blobs", ignore_errors=True)


@pytest.fixture(scope="session")
def s3(server: ServerProcess) -> Any:
    return make_client(server.endpoint)


def fresh_bucket(s3: Any) -> Iterator[str]:
    """Create a uniquely named bucket; afterwards abort its uploads, delete every version
    and delete marker in it, remove it."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    yield name
    with contextlib.suppress(Exception):  # the test may have deleted it, or locked it out
        purge_bucket(s3, name)


def new_bucket(client: Any, versioned: bool = False) -> str:
    """A uniquely named bucket (versioning Enabled with ``versioned``), left in place: for
    tests on servers of their own, which go with their data directory."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name,
                                     VersioningConfiguration={"Status": "Enabled"})
    return name


def purge_bucket(s3: Any, name: str) -> None:
    """Abort the bucket's uploads, delete every version and delete marker, then it."""
    for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        items = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if items:
            s3.delete_objects(Bucket=name, Delete={"Objects": items, "Quiet": True})
    s3.delete_bucket(Bucket=name)


def eventually(check: Callable[[], bool], timeout: float = 20.0,
               what: str = "the condition") -> None:
    """Poll ``check`` until it holds (background work: GC, lifecycle, delivery)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        time.sleep(0.2)


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """A fresh bucket, emptied and removed afterwards."""
    yield from fresh_bucket(s3)


@pytest.fixture
def other_bucket(s3: Any) -> Iterator[str]:
    """A second fresh bucket, for copies and cross-bucket cases."""
    yield from fresh_bucket(s3)


@pytest.fixture
def aws_env(server: ServerProcess, tmp_path: Path) -> dict[str, str]:
    """Environment for the aws cli: credentials, region, no user config."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "aws-credentials"),
        "AWS_MAX_ATTEMPTS": "1",
    }


def aws_cli() -> str:
    found = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    if found is None:
        pytest.fail("the aws cli is not installed (pip install awscli)")
    return found


@dataclass
class AdminResult:
    """What ``cargohold admin`` printed and returned."""

    returncode: int
    stdout: str
    stderr: str


def admin(server: ServerProcess, *args: str, check: bool = True) -> Any:
    """``cargohold admin --json ARGS`` on the server's store, run in this process: a fresh
    interpreter per call cost seconds under xdist (the console entry point itself is
    tested in test_admin). With ``check``, the parsed JSON; else an :class:`AdminResult`.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            meta = ["--meta", server.meta] if server.meta else []
            code = cli.main(["admin", "--data-dir", str(server.data_dir), *meta, "--json",
                             *args])
        except SystemExit as exc:  # argparse refusing the arguments
            code = exc.code if isinstance(exc.code, int) else 1
    result = AdminResult(code, out.getvalue(), err.getvalue())
    if check:
        assert code == 0, result.stderr
        return json.loads(result.stdout)
    return result
