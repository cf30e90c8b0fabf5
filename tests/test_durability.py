"""Crash safety: kill -9 during uploads, then restart."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ServerProcess, eventually, make_client
from tests.test_post_object import error_of, post, presign


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


def _on_a_small_file_system(data_dir: Path, mib: int) -> list[str]:
    """A command prefix that runs the server with ``data_dir`` on a private ``mib`` MiB
    tmpfs: a user and mount namespace, so no root is needed and nothing outlives it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    prefix = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
              f'mount -t tmpfs -o size={mib}m tmpfs "$0" && exec "$@"', str(data_dir)]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    except FileNotFoundError:  # no unshare (util-linux)
        pytest.skip("cannot mount a private tmpfs here: no unshare command")
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.decode().strip()}")
    return prefix


def _refusal(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"], exc.value.response[
        "Error"]["Code"]


def test_a_full_disk_refuses_uploads_with_insufficient_storage_and_loses_nothing(
        tmp_path: Path) -> None:
    # No reserve: the uploads run into the file system's own ENOSPC.
    data_dir = tmp_path / "data"
    proc = ServerProcess(data_dir=data_dir,
                         extra_args=["--gc-interval-seconds", "0.5", "--min-free-bytes", "0"],
                         command_prefix=_on_a_small_file_system(data_dir, 16)).start()
    try:
        client = make_client(proc.endpoint)
        client.create_bucket(Bucket="full")
        kept = os.urandom(6 * 1024 * 1024)
        client.put_object(Bucket="full", Key="kept", Body=kept)

        too_big = os.urandom(12 * 1024 * 1024)
        assert _refusal(lambda: client.put_object(Bucket="full", Key="too-big", Body=too_big)
                        ) == (507, "InsufficientStorage")
        upload = client.create_multipart_upload(Bucket="full", Key="parts")["UploadId"]
        assert _refusal(lambda: client.upload_part(Bucket="full", Key="parts", PartNumber=1,
                                                   UploadId=upload, Body=too_big)
                        ) == (507, "InsufficientStorage")
        assert client.list_parts(Bucket="full", Key="parts", UploadId=upload).get(
            "Parts", []) == []
        client.abort_multipart_upload(Bucket="full", Key="parts", UploadId=upload)

        # The refused uploads' partial files are gone: another 6 MiB fits beside "kept".
        fits = os.urandom(6 * 1024 * 1024)
        client.put_object(Bucket="full", Key="fits", Body=fits)
        listed = [o["Key"] for o in client.list_objects_v2(Bucket="full")["Contents"]]
        assert listed == ["fits", "kept"]
        assert client.get_object(Bucket="full", Key="kept")["Body"].read() == kept
        assert client.get_object(Bucket="full", Key="fits")["Body"].read() == fits
        assert _refusal(lambda: client.head_object(Bucket="full", Key="too-big"))[0] == 404

        # Deleting frees the space (through the collector) for the next upload.
        assert _refusal(lambda: client.put_object(Bucket="full", Key="later", Body=fits)
                        ) == (507, "InsufficientStorage")
        client.delete_object(Bucket="full", Key="kept")

        def fits_again() -> bool:
            try:
                client.put_object(Bucket="full", Key="later", Body=fits)
            except ClientError:
                return False
            return True

        eventually(fits_again, what="an upload into the space a delete freed")
        assert client.get_object(Bucket="full", Key="later")["Body"].read() == fits
    finally:
        proc.stop()


def test_the_free_space_reserve_keeps_deletes_working_on_a_full_disk(tmp_path: Path) -> None:
    # Filled to the last byte, SQLite had no room in its WAL and refused most deletes; the
    # reserve stops uploads (and copies) short of that.
    data_dir = tmp_path / "data"
    proc = ServerProcess(data_dir=data_dir,
                         extra_args=["--gc-interval-seconds", "0.5",
                                     "--min-free-bytes", str(4 * 1024 * 1024)],
                         command_prefix=_on_a_small_file_system(data_dir, 16)).start()
    try:
        client = make_client(proc.endpoint)
        client.create_bucket(Bucket="reserve")
        bodies: dict[str, bytes] = {}
        while True:
            key, body = f"k{len(bodies):03d}", os.urandom(256 * 1024)
            try:
                client.put_object(Bucket="reserve", Key=key, Body=body)
            except ClientError as exc:
                assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 507
                assert exc.response["Error"]["Code"] == "InsufficientStorage"
                assert "keeps 4194304 bytes" in exc.response["Error"]["Message"]
                break
            bodies[key] = body
            assert len(bodies) < 64, "the reserve never refused an upload"
        assert len(bodies) >= 20
        # A browser POST and a ranged part copy write their bytes anew: refused as well.
        url, fields = presign(client, "reserve", "posted")
        posted = post(url, fields, ("posted.bin", os.urandom(256 * 1024), "text/plain"))
        assert posted.status == 507, posted.body
        assert error_of(posted)[0] == "InsufficientStorage"
        upload = client.create_multipart_upload(Bucket="reserve", Key="copy")["UploadId"]
        assert _refusal(lambda: client.upload_part_copy(
            Bucket="reserve", Key="copy", UploadId=upload, PartNumber=1,
            CopySource={"Bucket": "reserve", "Key": "k000"}, CopySourceRange="bytes=1-262143")
                        ) == (507, "InsufficientStorage")
        client.abort_multipart_upload(Bucket="reserve", Key="copy", UploadId=upload)

        for key, body in bodies.items():
            assert client.get_object(Bucket="reserve", Key=key)["Body"].read() == body
        for key in bodies:
            client.delete_object(Bucket="reserve", Key=key)
        assert "Contents" not in client.list_objects_v2(Bucket="reserve")

        def fits_again() -> bool:
            try:
                client.put_object(Bucket="reserve", Key="later", Body=os.urandom(1024 * 1024))
            except ClientError:
                return False
            return True

        eventually(fits_again, what="an upload into the space the deletes freed")
    finally:
        proc.stop()


def test_access_logs_wait_while_the_disk_is_down_to_its_reserve(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = ServerProcess(data_dir=data_dir,
                         extra_args=["--gc-interval-seconds", "0.5",
                                     "--log-delivery-interval-seconds", "1",
                                     "--min-free-bytes", str(4 * 1024 * 1024)],
                         command_prefix=_on_a_small_file_system(data_dir, 16)).start()
    try:
        client = make_client(proc.endpoint)
        client.create_bucket(Bucket="src")
        client.create_bucket(Bucket="logs")
        client.put_bucket_logging(Bucket="src", BucketLoggingStatus={
            "LoggingEnabled": {"TargetBucket": "logs", "TargetPrefix": "l/"}})
        keys = []
        # Blobs (not inline objects, which a PostgreSQL store keeps in its database) until
        # less than the smallest blob is left above the reserve.
        for size in (256 * 1024, 64 * 1024 + 1):
            while True:
                key = f"k{len(keys):03d}"
                try:
                    client.put_object(Bucket="src", Key=key, Body=os.urandom(size))
                except ClientError as exc:
                    assert exc.response["Error"]["Code"] == "InsufficientStorage"
                    break
                keys.append(key)
                assert len(keys) < 200, "the reserve never refused an upload"

        def delivered() -> str:
            listed = client.list_objects_v2(Bucket="logs").get("Contents", [])
            return "".join(client.get_object(Bucket="logs", Key=item["Key"])["Body"].read()
                           .decode() for item in listed)

        def records_held() -> bool:
            for _ in range(50):
                client.list_objects_v2(Bucket="src", MaxKeys=1)
            return "access-log records held in memory, not queued" in proc.log()

        # New records wait in the worker's memory, not in the queue (whose rows would take
        # the room kept for deletes); records queued before stay queued, since their log
        # file does not fit either.
        eventually(records_held, what="records held back from the queue")
        missing = "marker-while-full"
        _refusal(lambda: client.head_object(Bucket="src", Key=missing))
        time.sleep(2.5)  # two delivery passes
        assert missing not in delivered()

        for key in keys:
            client.delete_object(Bucket="src", Key=key)
        eventually(lambda: missing in delivered(), what="delivery once deletes made room")
        line = next(line for line in delivered().splitlines() if missing in line)
        assert "REST.HEAD.OBJECT" in line and " 404 NoSuchKey " in line
    finally:
        proc.stop()
