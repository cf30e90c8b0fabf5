"""The lifecycle worker acting on real buckets, with a lifecycle "day" of two seconds.

Each test starts its own server (``--lifecycle-day-seconds 2``, a pass every 0.3 s), puts a
configuration with boto3 and watches the rule take effect through the S3 API, the way a
user would. A rule with Days=1 acts between two and four seconds after its start time (the
day boundary after one day has passed), so waits poll (``eventually``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cargohold import lifecycle_worker
from cargohold.lifecycle import LifecycleConfig, LifecycleRule
from cargohold.lifecycle_worker import LifecycleWorker, due_before
from cargohold.store.base import Account, Bucket, ObjectRecord, Upload
from cargohold.store.sqlite import SqliteStore
from tests.conftest import ServerProcess, admin, eventually, make_client, new_bucket
from tests.test_post_object import post, presign

DAY = 2.0
ARGS = ["--lifecycle-day-seconds", str(DAY), "--lifecycle-interval-seconds", "0.3",
        "--gc-interval-seconds", "0.3", "--orphan-grace-seconds", "3600"]


@pytest.fixture
def lifecycle_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir=tmp_path / "data", extra_args=ARGS).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(lifecycle_server: ServerProcess) -> Any:
    return make_client(lifecycle_server.endpoint)



def rules(*items: dict[str, Any]) -> dict[str, Any]:
    return {"Rules": [{"Status": "Enabled", **item} for item in items]}




def versions_of(client: Any, bucket: str, key: str | None = None) -> list[tuple[str, bool]]:
    """(kind, is latest) of every version, newest first: kind is "v" or "marker"."""
    listed = client.list_object_versions(Bucket=bucket)
    items = [(v["LastModified"], v["VersionId"], "v", v["IsLatest"], v["Key"])
             for v in listed.get("Versions", [])]
    items += [(m["LastModified"], m["VersionId"], "marker", m["IsLatest"], m["Key"])
              for m in listed.get("DeleteMarkers", [])]
    # The listing's own order is by key then newest first; keep it per key.
    order = {(v["Key"], v["VersionId"]): i for i, v in enumerate(
        sorted(listed.get("Versions", []) + listed.get("DeleteMarkers", []),
               key=lambda v: (v["Key"], -v["LastModified"].timestamp())))}
    items.sort(key=lambda item: order[(item[4], item[1])])
    return [(kind, latest) for _, _, kind, latest, k in items if key is None or k == key]


def keys_of(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_expiration_days_deletes_old_objects_under_the_prefix_only(client: Any) -> None:
    bucket = new_bucket(client)
    client.put_object(Bucket=bucket, Key="logs/a", Body=b"a")
    client.put_object(Bucket=bucket, Key="keep/b", Body=b"b")
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "logs", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 1}}))
    eventually(lambda: keys_of(client, bucket) == ["keep/b"])
    # Never versioned: the object is simply gone, no delete marker is left behind.
    assert versions_of(client, bucket) == [("v", True)]


def test_an_object_is_not_expired_before_its_day_has_come(client: Any) -> None:
    bucket = new_bucket(client)
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "slow", "Filter": {}, "Expiration": {"Days": 3}}))
    client.put_object(Bucket=bucket, Key="young", Body=b"x")
    written = time.time()
    # Days=3 with two-second days: due at the boundary after written + 6 s, never sooner.
    while time.time() < written + 5:
        assert keys_of(client, bucket) == ["young"]
        time.sleep(0.5)
    eventually(lambda: keys_of(client, bucket) == [])


def test_a_disabled_rule_does_nothing(client: Any) -> None:
    bucket = new_bucket(client)
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
        "Rules": [{"ID": "off", "Status": "Disabled", "Filter": {},
                   "Expiration": {"Days": 1}}]})
    time.sleep(3 * DAY)
    assert keys_of(client, bucket) == ["k"]


def test_an_expiration_date_in_the_past_expires_everything_under_the_prefix(
        client: Any) -> None:
    bucket = new_bucket(client)
    client.put_object(Bucket=bucket, Key="old/1", Body=b"1")
    client.put_object(Bucket=bucket, Key="new/1", Body=b"1")
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "dated", "Filter": {"Prefix": "old/"},
         "Expiration": {"Date": datetime(2020, 1, 1, tzinfo=UTC)}}))
    eventually(lambda: keys_of(client, bucket) == ["new/1"])


def test_current_versions_expire_into_delete_markers_in_a_versioned_bucket(
        client: Any) -> None:
    bucket = new_bucket(client, versioned=True)
    put = client.put_object(Bucket=bucket, Key="doc", Body=b"v1")
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "expire", "Filter": {}, "Expiration": {"Days": 1}}))
    eventually(lambda: versions_of(client, bucket) == [("marker", True), ("v", False)])
    with pytest.raises(ClientError) as exc:
        client.get_object(Bucket=bucket, Key="doc")
    assert exc.value.response["Error"]["Code"] == "NoSuchKey"
    # The data is still there as a noncurrent version, byte for byte.
    old = client.get_object(Bucket=bucket, Key="doc", VersionId=put["VersionId"])
    assert old["Body"].read() == b"v1"
    # And the marker is not expired again: one marker, however many passes run.
    time.sleep(3 * DAY)
    assert versions_of(client, bucket) == [("marker", True), ("v", False)]


def test_noncurrent_versions_vanish_after_their_days_keeping_the_newest_ones(
        client: Any) -> None:
    bucket = new_bucket(client, versioned=True)
    for body in (b"1", b"2", b"3", b"4"):
        client.put_object(Bucket=bucket, Key="k", Body=body)
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "noncurrent", "Filter": {"Prefix": ""},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}}))
    eventually(lambda: versions_of(client, bucket) == [("v", True), ("v", False)])
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"4"
    listed = client.list_object_versions(Bucket=bucket)["Versions"]
    (noncurrent,) = [v for v in listed if not v["IsLatest"]]
    kept = client.get_object(Bucket=bucket, Key="k", VersionId=noncurrent["VersionId"])
    assert kept["Body"].read() == b"3"


def test_a_lone_expired_delete_marker_is_removed(client: Any) -> None:
    bucket = new_bucket(client, versioned=True)
    client.put_object(Bucket=bucket, Key="gone", Body=b"x")
    client.delete_object(Bucket=bucket, Key="gone")  # marker over one noncurrent version
    client.put_object(Bucket=bucket, Key="stays", Body=b"y")
    client.delete_object(Bucket=bucket, Key="stays")
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "clean", "Filter": {"Prefix": "gone"},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
         "Expiration": {"ExpiredObjectDeleteMarker": True}}))
    # First the noncurrent version goes, then the marker is alone and goes too; the other
    # key (outside the prefix) keeps its history.
    eventually(lambda: versions_of(client, bucket, "gone") == [])
    assert versions_of(client, bucket, "stays") == [("marker", True), ("v", False)]
    client.delete_bucket_lifecycle(Bucket=bucket)


def test_a_delete_marker_with_versions_behind_it_is_not_removed(client: Any) -> None:
    bucket = new_bucket(client, versioned=True)
    client.put_object(Bucket=bucket, Key="k", Body=b"x")
    client.delete_object(Bucket=bucket, Key="k")
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "markers", "Filter": {}, "Expiration": {"ExpiredObjectDeleteMarker": True}}))
    time.sleep(3 * DAY)
    assert versions_of(client, bucket) == [("marker", True), ("v", False)]


def test_incomplete_multipart_uploads_are_aborted_and_their_parts_reclaimed(
        client: Any, lifecycle_server: ServerProcess) -> None:
    bucket = new_bucket(client)
    blobs = lifecycle_server.data_dir / "blobs"
    before = _blob_files(blobs)
    upload = client.create_multipart_upload(Bucket=bucket, Key="tmp/big")
    client.upload_part(Bucket=bucket, Key="tmp/big", UploadId=upload["UploadId"],
                       PartNumber=1, Body=b"p" * (64 * 1024))
    kept = client.create_multipart_upload(Bucket=bucket, Key="other/big")
    assert len(_blob_files(blobs)) == len(before) + 1
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "abort", "Filter": {"Prefix": "tmp/"},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}))
    eventually(lambda: [u["UploadId"] for u in client.list_multipart_uploads(
        Bucket=bucket).get("Uploads", [])] == [kept["UploadId"]])
    with pytest.raises(ClientError) as exc:
        client.list_parts(Bucket=bucket, Key="tmp/big", UploadId=upload["UploadId"])
    assert exc.value.response["Error"]["Code"] == "NoSuchUpload"
    # The part's blob is queued by the abort and removed by the collector.
    eventually(lambda: _blob_files(blobs) == before)


def test_rules_due_while_the_server_was_down_are_applied_after_a_restart(
        lifecycle_server: ServerProcess) -> None:
    client = make_client(lifecycle_server.endpoint)
    plain = new_bucket(client)
    versioned = new_bucket(client, versioned=True)
    client.put_object(Bucket=plain, Key="a", Body=b"a")
    for body in (b"1", b"2"):
        client.put_object(Bucket=versioned, Key="v", Body=body)
    client.put_object(Bucket=versioned, Key="m", Body=b"m")
    client.delete_object(Bucket=versioned, Key="m")
    upload = client.create_multipart_upload(Bucket=plain, Key="u")
    client.put_bucket_lifecycle_configuration(Bucket=plain, LifecycleConfiguration=rules(
        {"ID": "all", "Filter": {}, "Expiration": {"Days": 1},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}))
    client.put_bucket_lifecycle_configuration(Bucket=versioned, LifecycleConfiguration=rules(
        {"ID": "versions", "Filter": {},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
        {"ID": "markers", "Filter": {}, "Expiration": {"ExpiredObjectDeleteMarker": True}}))
    lifecycle_server.stop()  # in the middle: configured, but nothing due yet
    time.sleep(2 * DAY + 0.5)  # everything falls due while the server is down
    lifecycle_server.start()
    client = make_client(lifecycle_server.endpoint)
    eventually(lambda: keys_of(client, plain) == [])
    eventually(lambda: client.list_multipart_uploads(Bucket=plain).get("Uploads") is None)
    eventually(lambda: versions_of(client, versioned) == [("v", True)])
    assert client.get_object(Bucket=versioned, Key="v")["Body"].read() == b"2"
    with pytest.raises(ClientError):
        client.list_parts(Bucket=plain, Key="u", UploadId=upload["UploadId"])
    # The counters live in the store: they add up across the restart.
    expected = {"expired": 1, "noncurrent_removed": 2, "delete_markers_removed": 1,
                "uploads_aborted": 1}
    eventually(lambda: admin(lifecycle_server, "lifecycle", "status")["totals"] == expected)
    last = admin(lifecycle_server, "lifecycle", "status")["last_pass"]
    assert last["finished"] >= last["started"]


def test_the_worker_logs_and_counts_what_it_did(lifecycle_server: ServerProcess) -> None:
    client = make_client(lifecycle_server.endpoint)
    bucket = new_bucket(client)
    for i in range(3):
        client.put_object(Bucket=bucket, Key=f"x/{i}", Body=b"x")
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "count-me", "Filter": {}, "Expiration": {"Days": 1}}))
    eventually(lambda: keys_of(client, bucket) == [])
    # The three writes may straddle a lifecycle day boundary (two seconds here), so they
    # can fall due in different passes: each pass logs what it did, and the lines add up.
    logged = re.compile(rf"bucket {re.escape(bucket)} rule 'count-me': (\d+) expired")
    eventually(lambda: sum(map(int, logged.findall(lifecycle_server.log()))) == 3)
    eventually(lambda: admin(lifecycle_server, "lifecycle", "status")["totals"]["expired"] == 3)


def test_put_get_and_head_announce_the_expiration_that_applies(client: Any) -> None:
    bucket = new_bucket(client)
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "later", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 30}}))
    put = client.put_object(Bucket=bucket, Key="tmp/x", Body=b"x")
    head = client.head_object(Bucket=bucket, Key="tmp/x")
    got = client.get_object(Bucket=bucket, Key="tmp/x")
    for response in (put, head, got):
        header = response["ResponseMetadata"]["HTTPHeaders"]["x-amz-expiration"]
        assert header.endswith('rule-id="later"')
        when = parsedate_to_datetime(header.split('"')[1]).timestamp()
        # 30 days of two seconds after the write, rounded up to a day boundary.
        assert when % DAY == 0
        assert head["LastModified"].timestamp() + 60 - 1 <= when <= time.time() + 60 + DAY
    other = client.put_object(Bucket=bucket, Key="keep/x", Body=b"x")
    assert "x-amz-expiration" not in other["ResponseMetadata"]["HTTPHeaders"]


def test_copy_complete_and_a_browser_post_announce_the_expiration_too(client: Any) -> None:
    bucket = new_bucket(client)
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "soon", "Filter": {}, "Expiration": {"Days": 7}}))
    client.put_object(Bucket=bucket, Key="src", Body=b"x")
    copied = client.copy_object(Bucket=bucket, Key="copy",
                                CopySource={"Bucket": bucket, "Key": "src"})
    upload = client.create_multipart_upload(Bucket=bucket, Key="mp")
    part = client.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
                              PartNumber=1, Body=b"p")
    completed = client.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    url, fields = presign(client, bucket, "posted")
    posted = post(url, fields)
    assert posted.status == 204, posted.body
    announced = [copied["ResponseMetadata"]["HTTPHeaders"].get("x-amz-expiration"),
                 completed["ResponseMetadata"]["HTTPHeaders"].get("x-amz-expiration"),
                 posted.headers.get("x-amz-expiration")]
    for header in announced:
        assert header is not None and header.endswith('rule-id="soon"'), announced

def test_multipart_uploads_announce_when_a_rule_will_abort_them(client: Any) -> None:
    bucket = new_bucket(client)
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=rules(
        {"ID": "abort-later", "Filter": {}, "AbortIncompleteMultipartUpload": {
            "DaysAfterInitiation": 50}}))
    created = client.create_multipart_upload(Bucket=bucket, Key="u")
    assert created["AbortRuleId"] == "abort-later"
    parts = client.list_parts(Bucket=bucket, Key="u", UploadId=created["UploadId"])
    assert parts["AbortRuleId"] == "abort-later"
    assert parts["AbortDate"] == created["AbortDate"]
    assert created["AbortDate"].timestamp() >= time.time() + 50 * DAY - DAY - 1
    client.abort_multipart_upload(Bucket=bucket, Key="u", UploadId=created["UploadId"])


def test_due_before_counts_days_from_the_next_day_boundary() -> None:
    # Written at 10:00 with Days=1: due at the second midnight, not 24 hours later.
    day = 86400.0
    midnight = 1_700_006_400.0  # a multiple of 86400
    written = midnight + 10 * 3600
    assert not written < due_before(midnight + day + 23 * 3600, 1, day)
    assert written < due_before(midnight + 2 * day, 1, day)


def _blob_files(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


# --- the worker against a store directly: pages of a few entries, days that have passed

OWNER = "a" * 64
REAL_DAY = 86400.0
LATER = 10 * REAL_DAY  # a pass this far in the future finds every rule due


def with_store(tmp_path: Path,
               body: Callable[[SqliteStore], Awaitable[None]]) -> None:
    """Run ``body`` on a fresh store holding the account that owns the test buckets."""

    async def run() -> None:
        store = SqliteStore(tmp_path / "meta.db")
        await store.open()
        try:
            await store.create_account(Account(OWNER, "owner", "Owner", "o@example.com",
                                               time.time()))
            await body(store)
        finally:
            await store.close()

    asyncio.run(run())


async def make_bucket(store: SqliteStore, name: str, versioning: str,
                      *rules: LifecycleRule) -> None:
    await store.create_bucket(Bucket(name, OWNER, "nyc3", time.time()), max_buckets=100)
    if versioning:
        await store.set_bucket_versioning(name, versioning)
    await store.set_bucket_lifecycle(name, LifecycleConfig(rules).to_json())


async def put(store: SqliteStore, bucket: str, key: str) -> str:
    return await store.put_object(ObjectRecord(bucket=bucket, key=key, blob_id="", size=1,
                                               etag="e" * 32, last_modified=time.time(),
                                               inline=b"x"))


async def history(store: SqliteStore, bucket: str) -> list[tuple[str, str, bool]]:
    page = await store.list_object_versions(bucket)
    return [(e.key, e.version_id, e.delete_marker) for e in page.entries]


def worker(store: SqliteStore) -> LifecycleWorker:
    return LifecycleWorker(store, day_seconds=REAL_DAY, interval_seconds=60)


def test_one_pass_removes_every_due_noncurrent_version_however_the_pages_fall(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle_worker, "BATCH", 3)

    async def body(store: SqliteStore) -> None:
        await make_bucket(store, "all", "Enabled",
                          LifecycleRule("nc", noncurrent_days=1))
        await make_bucket(store, "keep2", "Enabled",
                          LifecycleRule("nc2", noncurrent_days=1, newer_noncurrent_versions=2))
        made = {name: [await put(store, name, "k") for _ in range(7)]
                for name in ("all", "keep2")}
        done = await worker(store).run_once(now=time.time() + LATER)
        # Pages of 3 end on a version the pass removes: the next page must still resume
        # in the same key's history rather than skip the rest of it.
        assert await history(store, "all") == [("k", made["all"][-1], False)]
        assert await history(store, "keep2") == [
            ("k", v, False) for v in reversed(made["keep2"][-3:])]
        assert done["noncurrent_removed"] == 6 + 4

    with_store(tmp_path, body)


def test_one_pass_aborts_every_due_upload_of_a_key_however_the_pages_fall(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle_worker, "BATCH", 2)

    async def body(store: SqliteStore) -> None:
        await make_bucket(store, "b", "", LifecycleRule("abort", abort_days=1))
        start = time.time()
        # Later uploads get smaller ids: resuming "after" a vanished id by id order skips.
        for i, upload_id in enumerate(("d" * 32, "c" * 32, "b" * 32, "a" * 32)):
            await store.create_upload(Upload(upload_id, "b", "k", OWNER, start + i))
        done = await worker(store).run_once(now=start + LATER)
        assert done["uploads_aborted"] == 4
        assert (await store.list_uploads("b")).uploads == []

    with_store(tmp_path, body)


def test_an_expiration_in_days_also_removes_lone_delete_markers_old_enough(
        tmp_path: Path) -> None:
    async def body(store: SqliteStore) -> None:
        await make_bucket(store, "b", "Enabled",
                          LifecycleRule("expire", expiration_days=1, prefix="p/"))
        for key in ("p/lone", "p/behind", "q/outside"):
            version = await put(store, "b", key)
            await store.delete_object("b", key)
            if key != "p/behind":
                await store.delete_object("b", key, version)  # the marker is all that is left
        young = await worker(store).run_once(now=time.time())
        assert young["delete_markers_removed"] == 0
        done = await worker(store).run_once(now=time.time() + LATER)
        # S3: with Days, expired object delete markers go once old enough to satisfy them.
        assert done["delete_markers_removed"] == 1
        assert [(k, m) for k, _, m in await history(store, "b")] == [
            ("p/behind", True), ("p/behind", False), ("q/outside", True)]

    with_store(tmp_path, body)


def test_a_bucket_deleted_during_a_pass_does_not_stop_the_others(tmp_path: Path) -> None:
    async def body(store: SqliteStore) -> None:
        rule = LifecycleRule("expire", expiration_days=1)
        await make_bucket(store, "a-gone", "", rule)
        await make_bucket(store, "b-kept", "", rule)
        await put(store, "b-kept", "k")
        listed = await store.buckets_with_lifecycle()
        await store.delete_bucket("a-gone")  # after the pass read the bucket list

        async def stale() -> list[Bucket]:
            return listed

        store.buckets_with_lifecycle = stale  # type: ignore[method-assign]
        done = await worker(store).run_once(now=time.time() + LATER)
        assert done["expired"] == 1
        assert await history(store, "b-kept") == []
        assert await store.get_setting(lifecycle_worker.STATUS_SETTING) is not None

    with_store(tmp_path, body)
