"""Crash safety: kill -9 during uploads, then restart."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import ServerProcess, make_client


def blob_files(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "blobs").rglob("*") if p.is_file()}


def test_kill_9_during_20_uploads_leaves_each_key_absent_or_complete(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # While uploads run, the grace period is what keeps the sweeper off a blob between its
    # rename and its metadata commit, so the first server keeps a real one.
    proc = ServerProcess(data_dir=data_dir,
                         extra_args=["--orphan-grace-seconds", "60",
                                     "--gc-interval-seconds", "0.5"]).start()
    client = make_client(proc.endpoint, connect_timeout=5, read_timeout=30)
    client.create_bucket(Bucket="crash")
    bodies = {f"key-{i}": os.urandom(3 * 1024 * 1024 + i) for i in range(20)}
    digests = {k: hashlib.md5(v).hexdigest() for k, v in bodies.items()}

    def upload(key: str) -> None:
        with contextlib.suppress(Exception):
            make_client(proc.endpoint).put_object(Bucket="crash", Key=key, Body=bodies[key])

    threads = [threading.Thread(target=upload, args=(k,)) for k in bodies]
    for thread in threads:
        thread.start()
    time.sleep(0.4)
    proc.kill()
    for thread in threads:
        thread.join()

    # Nothing is in flight after the restart: sweep every orphan at once.
    proc.extra_args = ["--orphan-grace-seconds", "0", "--gc-interval-seconds", "0.5"]
    proc.start()
    client = make_client(proc.endpoint)
    present = {o["Key"]: o for o in client.list_objects_v2(Bucket="crash").get("Contents", [])}
    for key, body in bodies.items():
        if key in present:
            got = client.get_object(Bucket="crash", Key=key)["Body"].read()
            assert hashlib.md5(got).hexdigest() == digests[key], key
            assert present[key]["Size"] == len(body)
    # Every blob file left over belongs to a listed object once the sweeper has run.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if len(blob_files(data_dir)) == len(present) and not any(
                (data_dir / "tmp").iterdir()):
            break
        time.sleep(0.3)
    assert len(blob_files(data_dir)) == len(present)
    assert not any((data_dir / "tmp").iterdir())
    proc.stop()


def test_data_survives_a_clean_restart(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data").start()
    client = make_client(proc.endpoint)
    client.create_bucket(Bucket="persist")
    client.put_object(Bucket="persist", Key="k", Body=b"durable")
    proc.stop()
    proc.start()
    client = make_client(proc.endpoint)
    assert client.get_object(Bucket="persist", Key="k")["Body"].read() == b"durable"
    proc.stop()


def test_replaced_and_deleted_objects_free_their_blobs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = ServerProcess(data_dir=data_dir,
                         extra_args=["--gc-interval-seconds", "0.3"]).start()
    client: Any = make_client(proc.endpoint)
    client.create_bucket(Bucket="gc-test")
    big = 200 * 1024  # above the inline size: these live in blob files
    client.put_object(Bucket="gc-test", Key="a", Body=b"1" * big)
    client.put_object(Bucket="gc-test", Key="a", Body=b"2" * big)
    client.put_object(Bucket="gc-test", Key="b", Body=b"3" * big)
    client.delete_object(Bucket="gc-test", Key="b")
    # A large object replaced by a small (inline) one frees its blob too.
    client.put_object(Bucket="gc-test", Key="c", Body=b"4" * big)
    client.put_object(Bucket="gc-test", Key="c", Body=b"small now")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(blob_files(data_dir)) != 1:
        time.sleep(0.2)
    assert len(blob_files(data_dir)) == 1
    assert client.get_object(Bucket="gc-test", Key="a")["Body"].read() == b"2" * big
    assert client.get_object(Bucket="gc-test", Key="c")["Body"].read() == b"small now"
    proc.stop()


def test_a_freed_blob_waits_out_the_grace_period_before_the_gc_removes_it(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = ServerProcess(data_dir=data_dir,
                         extra_args=["--gc-interval-seconds", "0.2",
                                     "--freed-blob-grace-seconds", "3"]).start()
    try:
        client: Any = make_client(proc.endpoint)
        client.create_bucket(Bucket="grace-test")
        big = 200 * 1024  # above the inline size: a blob file
        client.put_object(Bucket="grace-test", Key="a", Body=b"1" * big)
        first = blob_files(data_dir)
        client.delete_object(Bucket="grace-test", Key="a")
        freed_at = time.monotonic()
        time.sleep(1.5)  # several GC passes, all inside the grace period
        if time.monotonic() - freed_at < 2.5:
            assert blob_files(data_dir) == first
        deadline = freed_at + 15
        while time.monotonic() < deadline and blob_files(data_dir):
            time.sleep(0.2)
        assert blob_files(data_dir) == set()
        assert time.monotonic() - freed_at >= 3
    finally:
        proc.stop()
