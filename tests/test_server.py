"""The server process: settings, first start, workers, limits."""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cargohold import cli, config
from cargohold.server import describe_meta
from tests import rawhttp
from tests.conftest import ServerProcess, admin, default_meta, free_port, make_client
from tests.test_buckets import error_code


def _args(**values: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    argv = []
    for name, value in values.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


def test_flags_win_over_environment_which_wins_over_the_config_file(tmp_path: Path) -> None:
    toml = tmp_path / "cargohold.toml"
    toml.write_text('port = 7000\nregion = "ams3"\ndata-dir = "/from/file"\nworkers = 3\n')
    settings = config.load(_args(config=toml, port=7002),
                           {"CARGOHOLD_PORT": "7001", "CARGOHOLD_REGION": "sfo3"})
    assert settings.port == 7002
    assert settings.region == "sfo3"
    assert settings.data_dir == "/from/file"
    assert settings.workers == 3


def test_unknown_or_malformed_settings_are_refused(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("prot = 1\n")
    with pytest.raises(SystemExit):
        config.load(_args(config=toml), {})
    with pytest.raises(SystemExit):
        config.load(_args(), {"CARGOHOLD_PORT": "not-a-number"})


def test_first_start_generates_root_credentials_and_prints_them_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    meta = default_meta()  # the same store (SQLite or PostgreSQL) for all three starts
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGOHOLD_")}
    if meta:
        env["CARGOHOLD_META"] = meta
    outputs = []
    for _ in range(2):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cargohold", "serve", "--port", str(port),
             "--data-dir", str(data_dir), "--workers", "1"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
        outputs.append((out, port))
    first, second = outputs[0][0], outputs[1][0]
    assert "generated root credentials" in first
    access = first.split("access key:")[1].split()[0]
    secret = first.split("secret key:")[1].split()[0]
    assert secret not in second and "generated" not in second
    proc = ServerProcess(data_dir=data_dir, meta=meta, env={"CARGOHOLD_ROOT_ACCESS_KEY": "",
                                                            "CARGOHOLD_ROOT_SECRET_KEY": ""})
    proc.start()
    try:
        make_client(proc.endpoint, access, secret).list_buckets()
    finally:
        proc.stop()


def test_two_workers_share_the_port_and_the_store(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data", extra_args=["--workers", "2"]).start()
    try:
        time.sleep(1.0)  # both workers bound
        client = make_client(proc.endpoint)
        client.create_bucket(Bucket="workers")

        def put(i: int) -> None:
            make_client(proc.endpoint).put_object(Bucket="workers", Key=f"k{i}",
                                                  Body=os.urandom(1000 + i))

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(put, range(200)))
        listed = client.list_objects_v2(Bucket="workers")
        assert listed["KeyCount"] == 200
        assert proc.process is not None
        assert len(spawned_workers(proc.process.pid)) == 2
    finally:
        proc.stop()


def spawned_workers(parent: int) -> list[int]:
    """Child processes of ``parent`` started by multiprocessing's spawn (not its helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def test_bucket_limit_per_account_is_enforced(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data", extra_args=["--max-buckets", "2"]).start()
    try:
        client = make_client(proc.endpoint)
        client.create_bucket(Bucket="one-bucket")
        client.create_bucket(Bucket="two-bucket")
        with pytest.raises(ClientError) as exc:
            client.create_bucket(Bucket="three-bucket")
        assert error_code(exc) == "TooManyBuckets"
    finally:
        proc.stop()


@pytest.mark.parametrize("target", ["huge", "huge?partNumber=1&uploadId=any"])
def test_oversize_upload_is_refused_before_the_body_is_sent(server: ServerProcess,
                                                            bucket: str, target: str) -> None:
    size = 5 * 1024**3 + 1
    url = f"{server.endpoint}/{bucket}/{target}"
    headers = rawhttp.sign_v4("PUT", url, payload_hash="UNSIGNED-PAYLOAD")
    with rawhttp.open_request(server.port, "PUT", f"/{bucket}/{target}", headers,
                              ["Expect: 100-continue", f"Content-Length: {size}"]) as sock:
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"<Code>EntityTooLarge</Code>" in answer


def test_sdk_x_id_query_parameter_is_ignored_for_routing(server: ServerProcess, s3: Any,
                                                         bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="xid", Body=b"x")
    url = f"{server.endpoint}/{bucket}?list-type=2&x-id=ListObjectsV2"
    resp = rawhttp.send("GET", url, rawhttp.sign_v4("GET", url))
    assert resp.status == 200
    assert b"<Key>xid</Key>" in resp.body
    url = f"{server.endpoint}/{bucket}/xid?x-id=GetObject"
    assert rawhttp.send("GET", url, rawhttp.sign_v4("GET", url)).body == b"x"


@pytest.mark.parametrize(("flags", "message"), [
    (["--meta", "mysql://db/cargohold"], "--meta must be a postgresql:// URL"),
    (["--lease-seconds", "0"], "--lease-seconds must be positive"),
])
def test_serve_refuses_a_bad_metadata_store_or_lease_before_it_starts(
        tmp_path: Path, flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", "--data-dir", str(tmp_path / "data"), "--port", str(free_port()),
                  *flags])
    assert message in str(exc.value.code)


def test_the_start_up_line_names_the_metadata_store_without_its_password() -> None:
    assert describe_meta(config.Settings()) == "sqlite"
    shown = describe_meta(config.Settings(
        meta="postgresql://gw:s3cr3t@db.internal:5433/cargohold"))
    assert shown == "postgresql db.internal:5433/cargohold" and "s3cr3t" not in shown


def test_admin_migrate_reports_the_latest_schema_version(server: ServerProcess) -> None:
    from cargohold.store import postgres, sqlite

    migrations = postgres.MIGRATIONS if server.meta else sqlite.MIGRATIONS
    assert admin(server, "migrate") == {"schema_version": migrations[-1][0]}
