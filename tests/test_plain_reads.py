"""The plain-read path (cargohold/http/plainread.py): a signed GET/HEAD of a small object by
its bucket's owner, answered without aiohttp's request objects.

The worker runs in this process (its own thread and event loop, the real start-up code on a
real data directory) so the tests can count which requests the plain path answered; the
clients are boto3 and raw HTTP as everywhere else. The general path is the reference: the
same request with one header the plain path does not know goes that way.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cargohold.config import Settings
from cargohold.http import plainread
from cargohold.server import Worker, bootstrap, start_worker
from tests.conftest import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    TEST_STORE,
    ServerProcess,
    admin,
    free_port,
    make_client,
)
from tests.rawhttp import sign_v4

# The plain path needs the SQLite store's inline reads; the worker here always has one.
pytestmark = pytest.mark.skipif(TEST_STORE != "sqlite",
                                reason="the SQLite pass covers this in-process worker")

# Answered, and differing by design, on every response.
_PER_RESPONSE = {"x-amz-request-id", "x-amz-id-2", "date"}


class InProcessWorker:
    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(data_dir=str(data_dir), port=free_port(), region=REGION,
                                 workers=1, root_access_key=ACCESS_KEY,
                                 root_secret_key=SECRET_KEY)
        self.endpoint = f"http://127.0.0.1:{self.settings.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.run(bootstrap(self.settings))
        self.worker: Worker = self.run(start_worker(self.settings, 0))
        # For the admin CLI helper, which works on the data directory.
        self.process = ServerProcess(data_dir=data_dir, meta="")

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    @property
    def answered(self) -> int:
        assert self.worker.plain_reads is not None
        return self.worker.plain_reads.answered

    def stop(self) -> None:
        self.run(self.worker.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessWorker]:
    started = InProcessWorker(tmp_path_factory.mktemp("plain") / "data")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def client(worker: InProcessWorker) -> Any:
    s3 = make_client(worker.endpoint)
    s3.create_bucket(Bucket="plain")
    return s3


def exchange(worker: InProcessWorker, method: str, path: str,
             extra: dict[str, str] | None = None,
             signed_extra: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]],
                                                                  bytes]:
    """Status, header lines in order, body; ``extra`` is sent unsigned, ``signed_extra``
    signed."""
    url = worker.endpoint + path
    headers = sign_v4(method, url, headers=signed_extra)
    headers.update(extra or {})
    conn = http.client.HTTPConnection("127.0.0.1", worker.settings.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{worker.settings.port}")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def both_ways(worker: InProcessWorker, method: str, path: str,
              signed_extra: dict[str, str] | None = None) -> tuple[Any, Any]:
    """The request answered by the plain path, then by the general path."""
    before = worker.answered
    plain = exchange(worker, method, path, signed_extra=signed_extra)
    assert worker.answered == before + 1, "the plain path did not answer"
    general = exchange(worker, method, path, extra={"X-Take": "the general path"},
                       signed_extra=signed_extra)
    assert worker.answered == before + 1, "the plain path answered a header it does not know"
    return plain, general


def comparable(answer: tuple[int, list[tuple[str, str]], bytes]) -> Any:
    status, headers, body = answer
    return status, [(n, v) for n, v in headers if n.lower() not in _PER_RESPONSE], body


def test_plain_gets_and_heads_answer_byte_for_byte_as_the_general_path(
        worker: InProcessWorker, client: Any) -> None:
    client.put_object(Bucket="plain", Key="simple.txt", Body=b"hello", ContentType="text/plain")
    client.put_object(
        Bucket="plain", Key="dir/ü ber+%20 x.bin", Body=b"\x00\x01" * 700,
        ContentEncoding="gzip", CacheControl="max-age=60", ContentDisposition="inline",
        ContentLanguage="de", Expires="Wed, 21 Oct 2026 07:28:00 GMT",
        Metadata={"colour": "blue", "shape": "round"}, Tagging="a=1&b=2",
        ChecksumAlgorithm="SHA256")
    client.put_object(Bucket="plain", Key="empty", Body=b"")
    paths = ["/plain/simple.txt", "/plain/dir/%C3%BC%20ber%2B%2520%20x.bin", "/plain/empty"]
    for path in paths:
        for method in ("GET", "HEAD"):
            for extra in (None, {"x-amz-checksum-mode": "ENABLED"}):
                plain, general = both_ways(worker, method, path, extra)
                assert plain[0] == 200
                assert comparable(plain) == comparable(general), (method, path, extra)
                names = {n.lower() for n, _ in plain[1]}
                assert names >= _PER_RESPONSE
    status, headers, body = exchange(worker, "GET", paths[1],
                                     signed_extra={"x-amz-checksum-mode": "ENABLED"})
    answered = dict(headers)
    assert status == 200 and body == b"\x00\x01" * 700
    assert answered["x-amz-meta-colour"] == "blue" and answered["x-amz-tagging-count"] == "2"
    assert "x-amz-checksum-sha256" in answered


def test_a_versioned_objects_plain_read_names_its_version(worker: InProcessWorker,
                                                          client: Any) -> None:
    client.create_bucket(Bucket="plain-versions")
    client.put_bucket_versioning(Bucket="plain-versions",
                                 VersioningConfiguration={"Status": "Enabled"})
    version = client.put_object(Bucket="plain-versions", Key="k", Body=b"v1")["VersionId"]
    plain, general = both_ways(worker, "GET", "/plain-versions/k")
    assert dict(plain[1])["x-amz-version-id"] == version
    assert comparable(plain) == comparable(general)


def test_a_plain_read_sees_an_overwrite_and_a_delete_at_once(worker: InProcessWorker,
                                                             client: Any) -> None:
    client.put_object(Bucket="plain", Key="changing", Body=b"first")
    assert exchange(worker, "GET", "/plain/changing")[2] == b"first"
    client.put_object(Bucket="plain", Key="changing", Body=b"second")
    before = worker.answered
    assert exchange(worker, "GET", "/plain/changing")[2] == b"second"
    assert worker.answered == before + 1
    client.delete_object(Bucket="plain", Key="changing")
    status, _, body = exchange(worker, "GET", "/plain/changing")
    assert status == 404 and b"<Code>NoSuchKey</Code>" in body
    assert worker.answered == before + 1


def test_reads_outside_the_plain_case_take_the_general_path_and_its_answers(
        worker: InProcessWorker, client: Any) -> None:
    client.put_object(Bucket="plain", Key="k", Body=b"0123456789")
    url = worker.endpoint + "/plain/k"
    cases: list[tuple[str, dict[str, str], int, bytes | None]] = [
        ("/plain/k", {"Range": "bytes=2-4"}, 206, b"234"),
        ("/plain/k", {"If-None-Match": '"nope"'}, 200, b"0123456789"),
        ("/plain/k", {"If-Match": '"nope"'}, 412, None),
        ("/plain/k?response-cache-control=no-cache", {}, 200, b"0123456789"),
        ("/plain/k?versionId=null", {}, 200, b"0123456789"),
        ("/plain/missing", {}, 404, None),
        ("/no-such-bucket/k", {}, 404, None),
    ]
    before = worker.answered
    for path, signed_extra, status, body in cases:
        answer = exchange(worker, "GET", path, signed_extra=signed_extra)
        assert answer[0] == status, (path, signed_extra, answer)
        if body is not None:
            assert answer[2] == body
    # A wrong signature: refused by the general path, with its code.
    headers = sign_v4("GET", url)
    headers["Authorization"] = headers["Authorization"][:-4] + "0000"
    conn = http.client.HTTPConnection("127.0.0.1", worker.settings.port, timeout=10)
    conn.request("GET", "/plain/k", headers=headers)
    refused = conn.getresponse()
    assert refused.status == 403 and b"SignatureDoesNotMatch" in refused.read()
    conn.close()
    # Unsigned: anonymous, refused.
    conn = http.client.HTTPConnection("127.0.0.1", worker.settings.port, timeout=10)
    conn.request("GET", "/plain/k")
    assert conn.getresponse().status == 403
    conn.close()
    assert worker.answered == before


def test_another_account_and_a_limited_key_are_judged_by_the_general_path(
        worker: InProcessWorker, client: Any) -> None:
    client.put_object(Bucket="plain", Key="owned", Body=b"mine")
    stranger = admin(worker.process, "account", "create", "plain-stranger")
    outsider = make_client(worker.endpoint, stranger["access_key"], stranger["secret_key"])
    limited = admin(worker.process, "key", "create", "--account", "root", "--grant",
                    "plain:read")
    reader = make_client(worker.endpoint, limited["access_key"], limited["secret_key"])
    before = worker.answered
    with pytest.raises(client.exceptions.ClientError) as refused:
        outsider.get_object(Bucket="plain", Key="owned")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert reader.get_object(Bucket="plain", Key="owned")["Body"].read() == b"mine"
    assert worker.answered == before


def test_a_bucket_policy_denying_its_owner_is_obeyed(worker: InProcessWorker,
                                                     client: Any) -> None:
    client.create_bucket(Bucket="plain-denied")
    client.put_object(Bucket="plain-denied", Key="k", Body=b"x")
    client.put_bucket_policy(Bucket="plain-denied", Policy=(
        '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*",'
        '"Action":"s3:GetObject","Resource":"arn:aws:s3:::plain-denied/*"}]}'))
    before = worker.answered
    status, _, body = exchange(worker, "GET", "/plain-denied/k")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body
    assert worker.answered == before


def test_boto3_reads_take_the_plain_path(worker: InProcessWorker, client: Any) -> None:
    # What a stock SDK sends (its user agent, invocation ids, checksum mode) is plain.
    client.put_object(Bucket="plain", Key="sdk", Body=b"from boto3")
    before = worker.answered
    assert client.get_object(Bucket="plain", Key="sdk")["Body"].read() == b"from boto3"
    assert client.head_object(Bucket="plain", Key="sdk")["ContentLength"] == 10
    assert worker.answered == before + 2


def test_a_fault_in_the_plain_path_leaves_the_answer_to_the_general_path(
        worker: InProcessWorker, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client.put_object(Bucket="plain", Key="faulty", Body=b"still served")

    def broken(*args: Any, **kwargs: Any) -> dict[str, str]:
        raise RuntimeError("a bug in the plain path")

    # Only the plain path's reference: the general path keeps its own.
    monkeypatch.setattr(plainread, "object_headers", broken)
    before = worker.answered
    status, _, body = exchange(worker, "GET", "/plain/faulty")
    assert (status, body) == (200, b"still served")
    assert worker.answered == before
