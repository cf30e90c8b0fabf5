"""Server access logs: the PutBucketLogging/GetBucketLogging API, records of every kind of
request delivered as log files into the target bucket, field by field, exactly once across
a restart; and the record formatter on its own."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cargohold import accesslog, errors
from cargohold.logdelivery import LogDeliverer, RecordBuffer
from cargohold.store.base import Account, Bucket, LogRecord, ObjectRecord
from cargohold.store.blobs import BlobStore
from cargohold.store.sqlite import SqliteStore
from tests import rawhttp
from tests.conftest import ServerProcess, admin, make_client
from tests.test_buckets import error_code, status
from tests.test_copy import copy_source_sent_as
from tests.test_tls import make_verified_client, self_signed

DELIVERY = ["--log-delivery-interval-seconds", "0.5"]
PREFIX = "logs/src/"
KEY_NAME = re.compile(r"^(?P<prefix>.*)\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9A-F]{16}$")
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
# The documented fields in order: bare fields are \S+, three are quoted.
LINE = re.compile(
    r"^(?P<bucket_owner>\S+) (?P<bucket>\S+) \[(?P<time>[^\]]+)\] (?P<remote_ip>\S+) "
    r"(?P<requester>\S+) (?P<request_id>\S+) (?P<operation>\S+) (?P<key>\S+) "
    + _QUOTED.replace("(", "(?P<request_uri>", 1)
    + r" (?P<status>\d{3}) (?P<error_code>\S+) (?P<bytes_sent>\S+) (?P<object_size>\S+) "
    r"(?P<total_time>\S+) (?P<turnaround_time>\S+) "
    + _QUOTED.replace("(", "(?P<referrer>", 1) + " "
    + _QUOTED.replace("(", "(?P<user_agent>", 1)
    + r" (?P<version_id>\S+) (?P<host_id>\S+) (?P<signature_version>\S+) "
    r"(?P<cipher_suite>\S+) (?P<auth_type>\S+) (?P<host_header>\S+) (?P<tls_version>\S+)$"
)


def parse(line: str) -> dict[str, str]:
    """One record's fields by name; fails the test on a line that does not parse."""
    found = LINE.match(line)
    assert found is not None, f"unparseable log record: {line!r}"
    return found.groupdict()


# ------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def logged_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir=tmp_path_factory.mktemp("accesslog") / "data",
                         extra_args=DELIVERY).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(logged_server: ServerProcess) -> Any:
    return make_client(logged_server.endpoint)


def new_bucket(client: Any) -> str:
    name = f"log-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return name


def enable(client: Any, source: str, target: str, prefix: str = PREFIX) -> None:
    client.put_bucket_logging(Bucket=source, BucketLoggingStatus={
        "LoggingEnabled": {"TargetBucket": target, "TargetPrefix": prefix}})


def log_records(client: Any, target: str, prefix: str = "") -> list[dict[str, str]]:
    """Every record delivered into ``target`` under ``prefix``, with its file's key."""
    records = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=target,
                                                                 Prefix=prefix):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=target, Key=item["Key"])["Body"].read()
            for line in body.decode("utf-8").splitlines():
                records.append({**parse(line), "file": item["Key"]})
    return records


def wait_for(client: Any, target: str, request_ids: set[str], prefix: str = "",
             timeout: float = 30.0) -> list[dict[str, str]]:
    """The delivered records, once every one of ``request_ids`` has one."""
    deadline = time.monotonic() + timeout
    while True:
        records = log_records(client, target, prefix)
        missing = request_ids - {r["request_id"] for r in records}
        if not missing:
            return records
        if time.monotonic() > deadline:
            pytest.fail(f"no log record for {sorted(missing)} after {timeout}s")
        time.sleep(0.3)


def request_id(response: dict[str, Any]) -> str:
    return str(response["ResponseMetadata"]["RequestId"])


def error_request_id(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["ResponseMetadata"]["RequestId"])


# ------------------------------------------------------------------------ config API


def test_logging_configuration_round_trips_and_turns_off(client: Any) -> None:
    source, target = new_bucket(client), new_bucket(client)
    assert "LoggingEnabled" not in client.get_bucket_logging(Bucket=source)
    client.put_bucket_logging(Bucket=source, BucketLoggingStatus={"LoggingEnabled": {
        "TargetBucket": target, "TargetPrefix": "access/",
        # Accepted and ignored (said so in cargohold/accesslog.py).
        "TargetGrants": [{"Grantee": {"Type": "Group",
                                      "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
                          "Permission": "READ"}]}})
    enabled = client.get_bucket_logging(Bucket=source)["LoggingEnabled"]
    assert enabled["TargetBucket"] == target and enabled["TargetPrefix"] == "access/"
    client.put_bucket_logging(Bucket=source, BucketLoggingStatus={})
    assert "LoggingEnabled" not in client.get_bucket_logging(Bucket=source)


def test_a_missing_target_bucket_is_refused(client: Any) -> None:
    source = new_bucket(client)
    with pytest.raises(ClientError) as exc:
        enable(client, source, f"missing-{uuid.uuid4().hex[:12]}")
    assert error_code(exc) == "InvalidTargetBucketForLogging" and status(exc) == 400
    assert "does not exist" in exc.value.response["Error"]["Message"]
    assert "LoggingEnabled" not in client.get_bucket_logging(Bucket=source)


def test_a_bucket_cannot_log_into_itself(client: Any) -> None:
    source = new_bucket(client)
    with pytest.raises(ClientError) as exc:
        enable(client, source, source)
    assert error_code(exc) == "InvalidTargetBucketForLogging" and status(exc) == 400
    assert "differ" in exc.value.response["Error"]["Message"]


def test_the_target_bucket_must_have_the_same_owner(logged_server: ServerProcess,
                                                    client: Any) -> None:
    created = admin(logged_server, "account", "create", f"other-{uuid.uuid4().hex[:8]}")
    other = make_client(logged_server.endpoint, created["access_key"], created["secret_key"])
    theirs, mine = new_bucket(other), new_bucket(client)
    with pytest.raises(ClientError) as exc:
        enable(client, mine, theirs)
    assert error_code(exc) == "InvalidTargetBucketForLogging" and status(exc) == 400
    assert "owner" in exc.value.response["Error"]["Message"]
    # Nor may the other account configure (or read) logging of a bucket it does not own.
    with pytest.raises(ClientError) as exc:
        enable(other, mine, theirs)
    assert error_code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        other.get_bucket_logging(Bucket=mine)
    assert error_code(exc) == "AccessDenied"


def test_a_limited_key_logs_only_into_a_bucket_it_may_write(logged_server: ServerProcess,
                                                            client: Any) -> None:
    source, target, elsewhere = new_bucket(client), new_bucket(client), new_bucket(client)
    key = admin(logged_server, "key", "create", "--account", "root",
                "--grant", f"{source}:fullaccess", "--grant", f"{target}:readwrite")
    limited = make_client(logged_server.endpoint, key["access_key"], key["secret_key"])
    with pytest.raises(ClientError) as exc:
        enable(limited, source, elsewhere)
    assert error_code(exc) == "AccessDenied"
    enable(limited, source, target)
    assert limited.get_bucket_logging(Bucket=source)["LoggingEnabled"]["TargetBucket"] == target


def test_a_malformed_document_is_refused(logged_server: ServerProcess, client: Any) -> None:
    source, target = new_bucket(client), new_bucket(client)
    body = (f"<BucketLoggingStatus><LoggingEnabled><TargetBucket>{target}</TargetBucket>"
            "</LoggingEnabled></BucketLoggingStatus>").encode()
    url = f"{logged_server.endpoint}/{source}?logging"
    response = rawhttp.send("PUT", url, rawhttp.sign_v4("PUT", url, body=body), body)
    assert response.status == 400 and b"<Code>MalformedXML</Code>" in response.body


# ------------------------------------------------------------------------- delivery


def test_every_kind_of_request_is_delivered_as_documented(logged_server: ServerProcess,
                                                          client: Any) -> None:
    source, target = new_bucket(client), new_bucket(client)
    enable(client, source, target)
    owner = client.list_buckets()["Owner"]["ID"]
    endpoint = logged_server.endpoint
    ids: dict[str, str] = {}

    ids["put"] = request_id(client.put_object(Bucket=source, Key="dir/a b.txt",
                                              Body=b"hello world"))
    ids["get"] = request_id(client.get_object(Bucket=source, Key="dir/a b.txt"))
    ids["range"] = request_id(client.get_object(Bucket=source, Key="dir/a b.txt",
                                                Range="bytes=0-4"))
    ids["head"] = request_id(client.head_object(Bucket=source, Key="dir/a b.txt"))
    ids["list"] = request_id(client.list_objects_v2(Bucket=source, Prefix="dir/"))
    ids["copy"] = request_id(client.copy_object(
        Bucket=source, Key="copy.txt", CopySource={"Bucket": source, "Key": "dir/a b.txt"}))
    ids["delete"] = request_id(client.delete_object(Bucket=source, Key="copy.txt"))
    with pytest.raises(ClientError) as exc:
        client.get_object(Bucket=source, Key="missing.txt")
    ids["missing"] = error_request_id(exc)
    # Anonymous, with a referrer and a user agent that needs escaping.
    anonymous = rawhttp.send("GET", f"{endpoint}/{source}/dir/a%20b.txt?x-foo=bar",
                             {"Referer": "https://example.com/page",
                              "User-Agent": 'odd "agent" \\ 1.0'})
    assert anonymous.status == 403
    ids["anonymous"] = anonymous.headers["x-amz-request-id"]
    # A presigned URL: SigV4 in the query string.
    url = client.generate_presigned_url("get_object", Params={"Bucket": source,
                                                              "Key": "dir/a b.txt"})
    presigned = rawhttp.send("GET", url)
    assert presigned.status == 200
    ids["presigned"] = presigned.headers["x-amz-request-id"]
    # SigV2 in the Authorization header.
    v2_url = f"{endpoint}/{source}?location"
    v2 = rawhttp.send("GET", v2_url, rawhttp.sign_v2("GET", v2_url))
    assert v2.status == 200
    ids["sigv2"] = v2.headers["x-amz-request-id"]
    # A bad signature: refused before the bucket is looked at, still logged.
    forger = make_client(endpoint, secret_key="not-the-secret")
    with pytest.raises(ClientError) as exc:
        forger.head_object(Bucket=source, Key="dir/a b.txt")
    ids["forged"] = exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    ids["logging"] = request_id(client.get_bucket_logging(Bucket=source))
    # A CORS preflight (refused: the bucket has no CORS rules), answered without auth.
    preflight = rawhttp.send("OPTIONS", f"{endpoint}/{source}/dir/a%20b.txt",
                             {"Origin": "https://app.example.com",
                              "Access-Control-Request-Method": "GET"})
    assert preflight.status == 403
    ids["preflight"] = preflight.headers["x-amz-request-id"]

    records = wait_for(client, target, set(ids.values()), PREFIX)
    by_id: dict[str, list[dict[str, str]]] = {}
    for record in records:
        by_id.setdefault(record["request_id"], []).append(record)
        assert KEY_NAME.match(record["file"]) is not None, record["file"]
        assert record["file"].startswith(PREFIX)
        assert record["bucket_owner"] == owner and record["bucket"] == source
        assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000",
                            record["time"]), record["time"]
        assert record["remote_ip"] == "127.0.0.1"
        assert record["host_id"] == record["request_id"]
        assert record["cipher_suite"] == "-" and record["tls_version"] == "-"
        assert record["host_header"] == f"127.0.0.1:{logged_server.port}"
        assert record["total_time"].isdigit() and record["turnaround_time"].isdigit()
        assert int(record["turnaround_time"]) <= int(record["total_time"])

    def one(name: str) -> dict[str, str]:
        found = by_id[ids[name]]
        assert len(found) == 1, found
        return found[0]

    put = one("put")
    assert put["operation"] == "REST.PUT.OBJECT" and put["key"] == "dir/a%20b.txt"
    assert put["request_uri"] == f"PUT /{source}/dir/a%20b.txt HTTP/1.1"
    assert (put["status"], put["error_code"], put["bytes_sent"], put["object_size"]) == (
        "200", "-", "-", "11")
    assert put["requester"] == owner
    assert (put["signature_version"], put["auth_type"]) == ("SigV4", "AuthHeader")
    assert put["user_agent"].startswith("Boto3/") and put["referrer"] == "-"
    assert put["version_id"] == "-"

    get = one("get")
    assert (get["operation"], get["status"], get["bytes_sent"], get["object_size"]) == (
        "REST.GET.OBJECT", "200", "11", "11")
    ranged = one("range")
    assert (ranged["status"], ranged["bytes_sent"], ranged["object_size"]) == ("206", "5", "11")
    head = one("head")
    assert (head["operation"], head["bytes_sent"], head["object_size"]) == (
        "REST.HEAD.OBJECT", "-", "11")
    listing = one("list")
    assert listing["operation"] == "REST.GET.BUCKET" and listing["key"] == "-"
    assert listing["request_uri"].startswith(f"GET /{source}?list-type=2")
    assert int(listing["bytes_sent"]) > 0 and listing["object_size"] == "-"

    copy = sorted(by_id[ids["copy"]], key=lambda r: r["operation"])
    assert [r["operation"] for r in copy] == ["REST.COPY.OBJECT", "REST.COPY.OBJECT_GET"]
    assert [r["key"] for r in copy] == ["copy.txt", "dir/a%20b.txt"]
    assert copy[1]["bytes_sent"] == "-"

    delete = one("delete")
    assert (delete["operation"], delete["status"], delete["key"]) == (
        "REST.DELETE.OBJECT", "204", "copy.txt")
    missing = one("missing")
    assert (missing["operation"], missing["status"], missing["error_code"]) == (
        "REST.GET.OBJECT", "404", "NoSuchKey")
    assert int(missing["bytes_sent"]) > 0  # the error document

    anon = one("anonymous")
    assert (anon["requester"], anon["signature_version"], anon["auth_type"]) == ("-", "-", "-")
    assert (anon["status"], anon["error_code"]) == ("403", "AccessDenied")
    assert anon["request_uri"] == f"GET /{source}/dir/a%20b.txt?x-foo=bar HTTP/1.1"
    assert anon["referrer"] == "https://example.com/page"
    assert anon["user_agent"] == 'odd \\"agent\\" \\\\ 1.0'

    pre = one("presigned")
    assert (pre["operation"], pre["status"], pre["requester"]) == ("REST.GET.OBJECT", "200",
                                                                   owner)
    assert (pre["signature_version"], pre["auth_type"]) == ("SigV4", "QueryString")
    assert "X-Amz-Signature=" in pre["request_uri"]

    forged = one("forged")
    assert (forged["operation"], forged["status"], forged["error_code"]) == (
        "REST.HEAD.OBJECT", "403", "SignatureDoesNotMatch")
    assert forged["requester"] == "-"
    assert (forged["signature_version"], forged["auth_type"]) == ("SigV4", "AuthHeader")

    sigv2 = one("sigv2")
    assert (sigv2["operation"], sigv2["signature_version"], sigv2["auth_type"]) == (
        "REST.GET.LOCATION", "SigV2", "AuthHeader")
    assert one("logging")["operation"] == "REST.GET.LOGGING_STATUS"
    options = one("preflight")
    assert (options["operation"], options["status"], options["error_code"]) == (
        "REST.OPTIONS.PREFLIGHT", "403", "AccessForbidden")

    files = client.list_objects_v2(Bucket=target, Prefix=PREFIX)["Contents"]
    head_file = client.head_object(Bucket=target, Key=files[0]["Key"])
    assert head_file["ContentType"] == "text/plain"


def test_website_pages_are_logged_with_their_status_and_error_code(
        logged_server: ServerProcess, client: Any) -> None:
    source, target = new_bucket(client), new_bucket(client)
    enable(client, source, target)
    client.put_object(Bucket=source, Key="index.html", Body=b"<h1>home</h1>",
                      ContentType="text/html", ACL="public-read")
    client.put_bucket_website(Bucket=source, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"}})
    host = {"Host": f"{source}.nyc3-static.localhost:{logged_server.port}"}
    home = rawhttp.send("GET", f"{logged_server.endpoint}/", host)
    missing = rawhttp.send("GET", f"{logged_server.endpoint}/nowhere.html", host)
    assert (home.status, missing.status) == (200, 403)  # the bucket is not listable
    ids = {home.headers["x-amz-request-id"]: "-", missing.headers["x-amz-request-id"]:
           "AccessDenied"}
    records = [r for r in wait_for(client, target, set(ids), PREFIX)
               if r["request_id"] in ids]
    assert sorted((r["operation"], r["status"], r["error_code"]) for r in records) == [
        ("WEBSITE.GET.OBJECT", "200", "-"), ("WEBSITE.GET.OBJECT", "403", "AccessDenied")]
    assert all(r["error_code"] == ids[r["request_id"]] for r in records)


def test_unlogged_buckets_and_other_prefixes_stay_apart(client: Any) -> None:
    first, second, quiet, target = (new_bucket(client) for _ in range(4))
    enable(client, first, target, "first/")
    enable(client, second, target, "second/")
    one = request_id(client.put_object(Bucket=first, Key="k", Body=b"1"))
    two = request_id(client.put_object(Bucket=second, Key="k", Body=b"2"))
    unlogged = request_id(client.put_object(Bucket=quiet, Key="k", Body=b"3"))
    records = wait_for(client, target, {one, two})
    assert {r["request_id"] for r in records if r["file"].startswith("first/")} >= {one}
    assert {r["request_id"] for r in records if r["file"].startswith("second/")} >= {two}
    assert all(r["bucket"] == first for r in records if r["file"].startswith("first/"))
    assert all(r["bucket"] == second for r in records if r["file"].startswith("second/"))
    assert unlogged not in {r["request_id"] for r in records}


def test_log_files_written_into_a_logged_target_are_not_logged(client: Any) -> None:
    source, target, meta = new_bucket(client), new_bucket(client), new_bucket(client)
    enable(client, source, target, "")
    enable(client, target, meta, "")
    put = request_id(client.put_object(Bucket=source, Key="k", Body=b"x"))
    wait_for(client, target, {put})  # reads target: those reads are logged into meta
    time.sleep(1.5)  # a few more delivery rounds
    records = log_records(client, meta)
    assert records, "the reads of the target bucket are logged"
    # Delivery writes through the store, not HTTP: no PUT ever shows in the target's log.
    assert {r["operation"] for r in records} <= {"REST.GET.BUCKET", "REST.GET.OBJECT"}


def test_https_requests_record_the_cipher_suite_and_tls_version(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    proc = ServerProcess(data_dir=tmp_path / "data",
                         extra_args=[*DELIVERY, "--tls-cert", str(cert), "--tls-key", str(key)])
    proc.start()
    try:
        client = make_verified_client(proc, cert)
        source, target = new_bucket(client), new_bucket(client)
        enable(client, source, target)
        put = request_id(client.put_object(Bucket=source, Key="k", Body=b"x"))
        (record,) = [r for r in wait_for(client, target, {put}) if r["request_id"] == put]
        assert record["tls_version"] in ("TLSv1.2", "TLSv1.3")
        assert record["cipher_suite"] != "-"
    finally:
        proc.stop()


def test_no_record_is_lost_or_repeated_across_a_restart(tmp_path: Path) -> None:
    proc = ServerProcess(data_dir=tmp_path / "data", extra_args=DELIVERY).start()
    try:
        client = make_client(proc.endpoint)
        source, target = new_bucket(client), new_bucket(client)
        enable(client, source, target)
        client.put_object(Bucket=source, Key="k", Body=b"payload")
        sent = [request_id(client.head_object(Bucket=source, Key="k")) for _ in range(40)]
        # At once: most of these records are still in the worker's memory.
        proc.stop()
        proc.start()
        records = wait_for(make_client(proc.endpoint), target, set(sent), PREFIX)
        mine = [r["request_id"] for r in records if r["request_id"] in set(sent)]
        assert sorted(mine) == sorted(sent)  # each exactly once
        # A few more rounds deliver nothing twice.
        time.sleep(1.5)
        again = [r["request_id"] for r in log_records(make_client(proc.endpoint), target)
                 if r["request_id"] in set(sent)]
        assert sorted(again) == sorted(sent)
    finally:
        proc.stop()


# ------------------------------------------------------------- store and deliverer

OWNER, OTHER = "a" * 64, "b" * 64


def test_delivery_commits_each_file_with_the_removal_of_its_records(tmp_path: Path) -> None:
    asyncio.run(_delivery(tmp_path))


async def _delivery(tmp: Path) -> None:
    store = SqliteStore(tmp / "meta.db")
    await store.open()
    blobs = BlobStore(tmp)
    try:
        for account in (OWNER, OTHER):
            await store.create_account(Account(account, account[:4], "", "", 1.0))
        await store.create_bucket(Bucket("target", OWNER, "nyc3", 1.0), 100)
        lines = [f"{OWNER} src {i:03d} " + "x" * 300 for i in range(400)]
        await store.append_log_records([LogRecord("target", "p/", line, 1.0)
                                        for line in lines])
        # A record of another owner's bucket (the target changed hands since), and one for
        # a target that is gone: neither can be delivered, both are dropped.
        await store.append_log_records([LogRecord("target", "p/", f"{OTHER} src x", 1.0),
                                        LogRecord("gone", "", f"{OWNER} src y", 1.0)])
        assert await store.pending_log_targets() == ["gone", "target"]

        written = await LogDeliverer(store, blobs, 1.0, batch_limit=300).run_once()
        assert written == 2  # 300 records, then 100: one file per batch
        assert await store.pending_log_targets() == []
        page = await store.list_objects("target", prefix="p/")
        files = [f for e in page.entries if (f := await store.get_object("target", e.key))]
        assert len(files) == 2 and all(KEY_NAME.match(f.key) for f in files)
        delivered: list[str] = []
        for found in files:
            assert found.content_type == "text/plain"
            if found.inline is not None:
                data = found.inline
            else:  # past 64 KiB: a blob, like any large PUT
                data = Path(blobs.path(found.blob_id)).read_bytes()
            delivered += data.decode().splitlines()
        assert sorted(delivered) == sorted(lines)
        assert sorted(bool(f.blob_id) for f in files) == [False, True]

        # Two deliveries of the same records: exactly one wins, the other changes nothing.
        await store.append_log_records([LogRecord("target", "q/", f"{OWNER} src z", 1.0)])
        batch = await store.take_log_batch("target", 10)
        ids = [record_id for record_id, _, _ in batch]

        def log_file(key: str) -> ObjectRecord:
            return ObjectRecord(bucket="target", key=key, blob_id="", size=1, etag="0" * 32,
                                last_modified=1.0, inline=b"z")

        assert await store.deliver_log_object(log_file("q/one"), ids, OWNER)
        with pytest.raises(errors.ConditionalRequestConflict):
            await store.deliver_log_object(log_file("q/two"), ids, OWNER)
        assert await store.get_object("target", "q/one") is not None
        assert await store.get_object("target", "q/two") is None
    finally:
        await store.close()


def test_records_wait_in_memory_and_in_the_queue_while_the_disk_is_down_to_its_reserve(
        tmp_path: Path) -> None:
    asyncio.run(_held_back(tmp_path))


async def _held_back(tmp: Path) -> None:
    store = SqliteStore(tmp / "meta.db")
    await store.open()
    # A reserve larger than any disk: every claim on the disk is refused.
    blobs = BlobStore(tmp, min_free_bytes=1 << 62)
    try:
        await store.create_account(Account(OWNER, "owner", "", "", 1.0))
        await store.create_bucket(Bucket("target", OWNER, "nyc3", 1.0), 100)
        # Records queued before the disk filled: their log file does not fit, so they stay.
        queued = [f"{OWNER} src q{i:03d} " + "x" * 300 for i in range(400)]
        await store.append_log_records([LogRecord("target", "p/", line, 1.0)
                                        for line in queued])
        deliverer = LogDeliverer(store, blobs, 1.0)
        assert await deliverer.run_once() == 0
        assert await store.pending_log_targets() == ["target"]
        # New records do not go into the queue either: they wait in the worker's buffer.
        buffer = RecordBuffer(store, check_room=blobs.check_room)
        fresh = [f"{OWNER} src m{i:03d}" for i in range(10)]
        for line in fresh:
            buffer.add(LogRecord("target", "p/", line, 2.0))
        with pytest.raises(errors.InsufficientStorage):
            await buffer.flush()
        assert len(buffer) == len(fresh)
        assert [line for _, _, line in await store.take_log_batch("target", 1000)
                if " src m" in line] == []

        blobs.min_free_bytes = 0  # deletes made room
        assert await buffer.flush() == len(fresh)
        assert await deliverer.run_once() >= 1
        assert await store.pending_log_targets() == []
        page = await store.list_objects("target", prefix="p/")
        delivered: list[str] = []
        for entry_ in page.entries:
            found = await store.get_object("target", entry_.key)
            assert found is not None
            data = (found.inline if found.inline is not None
                    else Path(blobs.path(found.blob_id)).read_bytes())
            delivered += data.decode().splitlines()
        assert sorted(delivered) == sorted(queued + fresh)
    finally:
        await store.close()


def test_a_buffer_held_back_for_room_retries_on_its_interval_not_per_request(
        tmp_path: Path) -> None:
    async def main() -> tuple[int, list[str]]:
        store = SqliteStore(tmp_path / "meta.db")
        await store.open()
        try:
            await store.create_account(Account(OWNER, "owner", "", "", 1.0))
            await store.create_bucket(Bucket("target", OWNER, "nyc3", 1.0), 100)
            asked: list[int] = []

            async def no_room(incoming: int) -> None:
                asked.append(incoming)
                raise errors.InsufficientStorage()

            buffer = RecordBuffer(store, interval_seconds=0.2, batch_size=1,
                                  check_room=no_room)
            buffer.start()
            buffer.add(LogRecord("target", "p/", "first", 1.0))
            await asyncio.sleep(0.05)  # refused once: held from now on
            for i in range(2000):  # a busy server's requests over ~0.5 s
                buffer.add(LogRecord("target", "p/", f"line {i}", 1.0))
                if i % 20 == 0:
                    await asyncio.sleep(0.005)
            refusals = len(asked)
            buffer.check_room = None  # deletes made room
            await buffer.close()
            lines = [line for _, _, line in await store.take_log_batch("target", 5000)]
            return refusals, lines
        finally:
            await store.close()

    refusals, lines = asyncio.run(main())
    assert refusals <= 6  # the first, then one per 0.2 s interval, not one per request
    assert lines == ["first"] + [f"line {i}" for i in range(2000)]


# ----------------------------------------------------------------------- formatter


def entry(**changes: Any) -> accesslog.Entry:
    values: dict[str, Any] = dict(
        bucket_owner="79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be",
        bucket="awsexamplebucket1", time=1549411238.0, remote_ip="192.0.2.3",
        requester="79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be",
        request_id="3E57427F3EXAMPLE", operation="REST.GET.VERSIONING", key=None,
        method="GET", target="/awsexamplebucket1?versioning", protocol="HTTP/1.1",
        status=200, error_code="", bytes_sent=113, object_size=None, total_ms=7,
        turnaround_ms=None, referrer="", user_agent="S3Console/0.4", version_id="",
        host_id="s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234=",
        signature_version="SigV2", cipher_suite="ECDHE-RSA-AES128-GCM-SHA256",
        auth_type="AuthHeader", host_header="awsexamplebucket1.s3.us-west-1.amazonaws.com",
        tls_version="TLSv1.1",
    )
    values.update(changes)
    return accesslog.Entry(**values)


def test_the_formatter_reproduces_s3s_documented_example() -> None:
    # The first record of the example in "Amazon S3 server access log format".
    assert accesslog.format_line(entry()) == (
        "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be awsexamplebucket1 "
        "[06/Feb/2019:00:00:38 +0000] 192.0.2.3 "
        "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE "
        'REST.GET.VERSIONING - "GET /awsexamplebucket1?versioning HTTP/1.1" 200 - 113 - 7 - '
        '"-" "S3Console/0.4" - '
        "s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV2 "
        "ECDHE-RSA-AES128-GCM-SHA256 AuthHeader awsexamplebucket1.s3.us-west-1.amazonaws.com "
        "TLSv1.1")


def test_the_formatter_uses_dashes_for_empty_and_zero_fields() -> None:
    fields = parse(accesslog.format_line(entry(
        requester="", error_code="", bytes_sent=0, object_size=0, total_ms=None,
        signature_version="", auth_type="", cipher_suite="", tls_version="")))
    assert fields["requester"] == "-" and fields["bytes_sent"] == "-"
    assert fields["object_size"] == "0"  # an empty object has a size
    assert fields["total_time"] == "-" and fields["referrer"] == "-"
    assert (fields["signature_version"], fields["auth_type"]) == ("-", "-")


def test_the_formatter_keeps_every_field_in_its_place() -> None:
    line = accesslog.format_line(entry(
        key="dir/a b+c%d/ü.txt", user_agent='x "y" \\z\n', referrer="r\tr",
        host_header="evil host", version_id="v 1", error_code="NoSuchKey"))
    assert "\n" not in line
    fields = parse(line)
    assert fields["key"] == "dir/a%20b%2Bc%25d/%C3%BC.txt"
    assert fields["user_agent"] == 'x \\"y\\" \\\\z\\x0a'
    assert fields["referrer"] == "r\\x09r"
    assert fields["host_header"] == "evil%20host" and fields["version_id"] == "v%201"
    assert fields["error_code"] == "NoSuchKey"


def test_operation_names_follow_s3() -> None:
    name = accesslog.operation_name
    assert name("GetObject", "GET", True) == "REST.GET.OBJECT"
    assert name("ListObjectsV2", "GET", False) == "REST.GET.BUCKET"
    assert name("DeleteObjects", "POST", False) == "REST.POST.MULTI_OBJECT_DELETE"
    assert name("PutBucketLogging", "PUT", False) == "REST.PUT.LOGGING_STATUS"
    assert name("Unknown", "PATCH", True) == "REST.PATCH.OBJECT"
    assert name("", "OPTIONS", False) == "REST.OPTIONS.PREFLIGHT"


def test_signature_shapes() -> None:
    assert accesslog.signature_of("AWS4-HMAC-SHA256 Credential=x", "") == ("SigV4",
                                                                           "AuthHeader")
    assert accesslog.signature_of("AWS key:sig", "") == ("SigV2", "AuthHeader")
    assert accesslog.signature_of(None, "X-Amz-Algorithm=a&X-Amz-Signature=b") == (
        "SigV4", "QueryString")
    assert accesslog.signature_of(None, "AWSAccessKeyId=k&Signature=s&Expires=1") == (
        "SigV2", "QueryString")
    assert accesslog.signature_of(None, "x=1") == ("", "")


def test_a_copy_logs_into_its_source_bucket_under_the_key_the_copy_read(client: Any) -> None:
    """The source's log names the key the handler copied: the copy source decoded as S3
    decodes it (a form value: "+" is a space), whatever spelling the client sent."""
    source, target, destination = new_bucket(client), new_bucket(client), new_bucket(client)
    enable(client, source, target)
    client.put_object(Bucket=source, Key="a b+c.txt", Body=b"copied")
    client.put_object(Bucket=source, Key="a+b+c.txt", Body=b"not this one")
    with copy_source_sent_as(client, f"/{source}/a+b%2Bc.txt?versionId=null"):
        copied = request_id(client.copy_object(Bucket=destination, Key="copy.txt",
                                               CopySource="placeholder/key"))
    assert client.get_object(Bucket=destination, Key="copy.txt")["Body"].read() == b"copied"
    records = [r for r in wait_for(client, target, {copied}) if r["request_id"] == copied]
    assert [(r["operation"], r["bucket"], r["key"], r["version_id"]) for r in records] == [
        ("REST.COPY.OBJECT_GET", source, "a%20b%2Bc.txt", "null")]


def test_log_object_names_and_times() -> None:
    key = accesslog.log_object_key("logs/", 1549411238.0)
    assert re.fullmatch(r"logs/2019-02-06-00-00-38-[0-9A-F]{16}", key)
    assert accesslog.format_time(1549411238.9) == "[06/Feb/2019:00:00:38 +0000]"


def test_the_configuration_document_is_parsed_strictly() -> None:
    parse_config = accesslog.LoggingConfig.parse
    assert parse_config(b"<BucketLoggingStatus/>") is None
    config = parse_config(
        b'<BucketLoggingStatus xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<LoggingEnabled><TargetBucket>t</TargetBucket><TargetPrefix></TargetPrefix>"
        b"<TargetGrants/></LoggingEnabled></BucketLoggingStatus>")
    assert config == accesslog.LoggingConfig("t", "")
    assert accesslog.LoggingConfig.from_text(config.to_text()) == config
    with pytest.raises(errors.MalformedXML):
        parse_config(b"<LoggingEnabled/>")
    with pytest.raises(errors.MalformedXML):
        parse_config(b"<BucketLoggingStatus><LoggingEnabled><TargetBucket>t</TargetBucket>"
                     b"</LoggingEnabled></BucketLoggingStatus>")
    with pytest.raises(errors.InvalidTargetBucketForLogging):
        parse_config(b"<BucketLoggingStatus><LoggingEnabled><TargetBucket></TargetBucket>"
                     b"<TargetPrefix>p</TargetPrefix></LoggingEnabled></BucketLoggingStatus>")
