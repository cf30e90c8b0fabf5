"""s3fs (fsspec's S3 filesystem: what pandas, dask and xarray use for ``s3://`` URLs),
unchanged, against the real server.

s3fs needs aiobotocore, which pins botocore to a range behind the suite's boto3, so it lives
in a venv of its own: ``tests/fsspec/install`` builds ``tests/fsspec/.venv`` from the exact
pins in ``tests/fsspec/requirements.txt``. ``tests/fsspec/scenarios.py`` runs one scenario
there with a stock ``S3FileSystem`` (every default but endpoint, region and keys: so
botocore's CRC32 request checksums on PutObject, UploadPart and DeleteObjects, and
``x-amz-checksum-mode: ENABLED`` on every GetObject) and prints what s3fs returned or raised
and every request it sent, as one JSON object. Each test asserts on that and cross-checks
with boto3 what the server stored. Skipped (failed under CARGOHOLD_REQUIRE_CLIENTS=1) when
that venv is missing or holds another s3fs than the pinned one.

What s3fs does that a reader may not expect, all as it does on AWS: ``open(..., "wb")``
buffers a block (50 MiB unless ``block_size``) and sends one part per full block, or a
single PutObject at close for a file that stayed under a block; an open file pins the ETag
it first saw and sends it as ``If-Match`` on every ranged GET, so a file overwritten
meanwhile raises FileExpired; ``"xb"`` sends ``If-None-Match: *`` and, when a multipart
completion is refused with 412, leaves that upload for the caller to abort; directories are
prefixes (``mkdir`` of a prefix creates nothing, ``mkdir`` of a bare bucket name creates the
bucket with the client's region as LocationConstraint); ``rm``/``cp`` of a directory also
delete/copy the directory names they found (deleting a missing key succeeds, copying it is
a 404 that a recursive copy ignores); ``setxattr`` is a CopyObject onto itself with
``REPLACE``, so without ``copy_kwargs={"ContentType": ...}`` the type falls back to
``binary/octet-stream``; a 404 or 403 on HEAD (no body) reaches s3fs as code "404"/"403".

Not covered (s3fs and fsspec quirks, not server behaviour): ``mv(recursive=True)`` of a
prefix (fsspec's ``mv`` copies with ``on_error="raise"``, so the 404 for the prefix's own
name aborts it after the files were copied: fsspec/s3fs#394; files are moved by glob here);
the calls that expand paths (``cat``, ``rm``, ``copy``) on a path holding ``?versionId=``
(fsspec takes ``?`` for a glob character; ``cat_file``/``open``/``info`` take such a path);
``cat_file(path, version_id=...)`` once the current version is a delete marker (s3fs sizes
the current version first; the ``?versionId=`` form works); ``open(path, "xb")`` closed
without a write (s3fs commits the empty file with a plain PutObject, without
If-None-Match); ``find(withdirs=True)`` after an earlier listing of the same tree (s3fs's
directory cache then drops intermediate directories, so each listing here starts from an
empty cache).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.conftest import (
    REGION,
    ServerProcess,
    missing_client,
    purge_bucket,
)
from tests.test_clients import (
    file_sha256,
    multipart_parts,
    object_sha256,
    scenario_runner,
    write_random_file,
)

MIB = 1024 * 1024
FSSPEC_DIR = Path(__file__).parent / "fsspec"
PYTHON = FSSPEC_DIR / ".venv" / "bin" / "python"
SCRIPT = FSSPEC_DIR / "scenarios.py"
EMPTY_MD5_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'

Run = Callable[..., dict[str, Any]]


def pinned_s3fs() -> str:
    for line in (FSSPEC_DIR / "requirements.txt").read_text().splitlines():
        if line.startswith("s3fs=="):
            return line.removeprefix("s3fs==").strip()
    raise AssertionError("tests/fsspec/requirements.txt pins no s3fs")


def missing_requirement() -> str | None:
    """Why s3fs cannot run here, or None."""
    install = "run tests/fsspec/install"
    if not PYTHON.exists():
        return f"{PYTHON} does not exist: {install}"
    probe = subprocess.run([str(PYTHON), "-I", "-c", "import s3fs; print(s3fs.__version__)"],
                           capture_output=True, text=True, check=False, timeout=60)
    if probe.returncode != 0:
        return f"{PYTHON} cannot import s3fs ({probe.stderr.strip()[-200:]}): {install}"
    if (version := probe.stdout.strip()) != pinned_s3fs():
        return f"{PYTHON} has s3fs {version}, requirements.txt pins {pinned_s3fs()}: {install}"
    return None


# Skip at collection, before any server starts for these tests.
if (_reason := missing_requirement()) is not None:
    missing_client(_reason, module=True)


@pytest.fixture
def run_s3fs(server: ServerProcess, bucket: str, tmp_path: Path) -> Iterator[Run]:
    """Run one scenario of scenarios.py against ``server`` and ``bucket``; return its JSON."""
    # (-I keeps PYTHON* variables and user site-packages out as well.)
    run_scenario = scenario_runner([str(PYTHON), "-I", str(SCRIPT)], server, bucket, tmp_path)

    def run(scenario: str, **settings: str) -> dict[str, Any]:
        out = run_scenario(scenario, **settings)
        assert out["s3fsVersion"] == pinned_s3fs()
        # botocore and s3fs retry 5xx answers and dropped connections quietly: one attempt
        # per call (as many requests as responses) and no 5xx shows there were none.
        assert [r for r in out["responses"] if r["status"] >= 500] == []
        assert len(out["requests"]) == len(out["responses"])
        return out

    yield run
    for path in tmp_path.glob("*.bin"):
        path.unlink(missing_ok=True)


def sent(out: dict[str, Any], op: str, path: str | None = None,
         requests: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The requests s3fs sent for operation ``op`` (e.g. "PutObject"), optionally only
    those to ``path`` ("/bucket/key"), in order."""
    return [r for r in (out["requests"] if requests is None else requests)
            if r["op"] == op and (path is None or r["path"] == path)]


def statuses(out: dict[str, Any], op: str) -> list[int]:
    return [r["status"] for r in out["responses"] if r["op"] == op]


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def digest(data: bytes) -> dict[str, Any]:
    """How scenarios.py reports bytes."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def error(result: dict[str, Any]) -> str | None:
    return result.get("error")


def keys(s3: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    """Every key under ``prefix`` with its size, as boto3 lists them."""
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update((o["Key"], o["Size"]) for o in page.get("Contents", []))
    return found


def no_such_bucket(s3: Any, name: str) -> bool:
    try:
        s3.head_bucket(Bucket=name)
    except ClientError as err:
        return bool(err.response["Error"]["Code"] == "404")
    return False


def test_s3fs_open_writes_and_reads_text_binary_and_empty_files_with_one_put_each(
        run_s3fs: Run, s3: Any, bucket: str, tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    small_sha = write_random_file(small, 70_000)
    under = tmp_path / "under-block.bin"
    under_sha = write_random_file(under, 4 * MIB + 1)
    out = run_s3fs("small_files", file=str(small), under_block_file=str(under))

    text = "héllo, wörld\n" * 3
    assert out["text"] == text
    assert out["small"] == {"sha256": small_sha, "size": 70_000}
    assert out["underBlock"] == {"sha256": under_sha, "size": 4 * MIB + 1}
    assert out["empty"] == digest(b"")

    # Each file under its block size went up as one PutObject with botocore's default CRC32;
    # no multipart upload was started for them.
    for key in ("notes/hello.txt", "bin/small.bin", "bin/under-block.bin", "empty.txt"):
        (put,) = sent(out, "PutObject", f"/{bucket}/{key}")
        assert put["headers"]["x-amz-sdk-checksum-algorithm"] == "CRC32"
        assert sent(out, "CreateMultipartUpload", f"/{bucket}/{key}") == []
    (hello,) = sent(out, "PutObject", f"/{bucket}/notes/hello.txt")
    assert hello["headers"]["x-amz-checksum-crc32"] == crc32_b64(text.encode())
    assert hello["headers"]["content-length"] == str(len(text.encode()))

    stored = s3.get_object(Bucket=bucket, Key="notes/hello.txt", ChecksumMode="ENABLED")
    assert stored["Body"].read() == text.encode()
    assert stored["ETag"] == f'"{hashlib.md5(text.encode()).hexdigest()}"'
    assert stored["ChecksumCRC32"] == crc32_b64(text.encode())
    assert object_sha256(s3, bucket, "bin/small.bin") == small_sha
    assert object_sha256(s3, bucket, "bin/under-block.bin") == under_sha
    head = s3.head_object(Bucket=bucket, Key="empty.txt")
    assert (head["ContentLength"], head["ETag"]) == (0, EMPTY_MD5_ETAG)

    # "xb" and pipe(mode="create") send If-None-Match: * (on PutObject, or on
    # CompleteMultipartUpload for a multipart write); a second writer gets 412
    # PreconditionFailed naming the If-None-Match condition, which s3fs raises as
    # FileExistsError. The first writer's object stays.
    for name in ("secondWriter", "secondMultipartWriter", "pipeCreate"):
        assert error(out[name]) == "FileExistsError", out[name]
        assert out[name]["code"] == "PreconditionFailed"
    puts = sent(out, "PutObject", f"/{bucket}/exclusive.txt")
    assert len(puts) == 3 and all(p["headers"]["if-none-match"] == "*" for p in puts)
    (complete,) = sent(out, "CompleteMultipartUpload", f"/{bucket}/exclusive.txt")
    assert complete["headers"]["if-none-match"] == "*"
    assert statuses(out, "PutObject").count(412) == 2
    assert statuses(out, "CompleteMultipartUpload") == [412]
    assert out["exclusive"] == "first writer"
    assert s3.get_object(Bucket=bucket, Key="exclusive.txt")["Body"].read() == b"first writer"
    # The refused completion left its upload in place (as S3 does after a 412); s3fs does
    # not abort it.
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["exclusive.txt"]
    assert uploads[0]["UploadId"] == complete["query"]["uploadId"]


def test_s3fs_open_with_5_mib_blocks_writes_30_mib_as_7_parts_and_reads_it_back_byte_exact(
        run_s3fs: Run, s3: Any, bucket: str, tmp_path: Path) -> None:
    size = 30 * MIB + 12345
    source = tmp_path / "big.bin"
    sha = write_random_file(source, size)
    out = run_s3fs("open_multipart", file=str(source))

    key = "big/written.bin"
    path = f"/{bucket}/{key}"
    assert len(sent(out, "CreateMultipartUpload", path)) == 1
    assert sent(out, "PutObject", path) == []
    parts = sent(out, "UploadPart", path)
    assert [p["query"]["partNumber"] for p in parts] == [str(n) for n in range(1, 8)]
    assert [int(p["headers"]["content-length"]) for p in parts] == [5 * MIB] * 6 + [12345]
    assert all("x-amz-checksum-crc32" in p["headers"] for p in parts)
    (complete,) = sent(out, "CompleteMultipartUpload", path)
    assert complete["body"].count("<Part>") == 7
    assert statuses(out, "UploadPart") == [200] * 7
    assert statuses(out, "CompleteMultipartUpload") == [200]

    assert out["readBack"] == out["catFile"] == sha
    head = s3.head_object(Bucket=bucket, Key=key)
    assert out["info"]["ETag"] == head["ETag"] and head["ETag"].endswith('-7"')
    assert out["info"]["size"] == head["ContentLength"] == size
    assert multipart_parts(s3, bucket, key) == 7
    assert object_sha256(s3, bucket, key) == sha == file_sha256(source)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_s3fs_put_and_get_with_8_mib_chunks_send_4_parts_and_fetch_4_ranges_concurrently(
        run_s3fs: Run, s3: Any, bucket: str, tmp_path: Path) -> None:
    size = 30 * MIB + 12345
    source = tmp_path / "big.bin"
    sha = write_random_file(source, size)
    fetched = tmp_path / "fetched.bin"
    out = run_s3fs("put_get_multipart", file=str(source), out=str(fetched))

    key = "big/put.bin"
    path = f"/{bucket}/{key}"
    (create,) = sent(out, "CreateMultipartUpload", path)
    assert create["headers"]["content-type"] == "application/octet-stream"  # guessed from .bin
    parts = sorted(sent(out, "UploadPart", path), key=lambda p: int(p["query"]["partNumber"]))
    assert [int(p["headers"]["content-length"]) for p in parts] == [8 * MIB] * 3 + [
        size - 24 * MIB]
    assert statuses(out, "CompleteMultipartUpload") == [200]
    # get() and cat_file() of a file over the chunk size: one ranged GET per 8 MiB.
    expected = {f"bytes={s}-{min(s + 8 * MIB, size) - 1}" for s in range(0, size, 8 * MIB)}
    ranged = [r["headers"]["range"] for r in sent(out, "GetObject", path)
              if "range" in r["headers"]]
    assert sorted(ranged) == sorted([*expected, *expected])
    assert statuses(out, "GetObject").count(206) == 8

    assert file_sha256(fetched) == out["cat"] == sha
    assert out["info"]["ETag"] == s3.head_object(Bucket=bucket, Key=key)["ETag"]
    assert multipart_parts(s3, bucket, key) == 4
    assert object_sha256(s3, bucket, key) == sha
    assert s3.head_object(Bucket=bucket, Key=key)["ContentType"] == "application/octet-stream"


def test_s3fs_seek_read_cat_file_and_cat_ranges_return_exact_bytes_of_any_range(
        run_s3fs: Run, s3: Any, bucket: str, tmp_path: Path) -> None:
    size = 12 * MIB + 777
    source = tmp_path / "data.bin"
    write_random_file(source, size)
    data = source.read_bytes()
    key = "ranged/data.bin"
    etag = s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"]  # written by boto3
    reads = [(0, 100), (5 * MIB - 10, 20), (3 * MIB + 5, 2 * MIB), (12 * MIB, 777),
             (size - 77, 1000)]  # the last one runs past the end
    cats: list[tuple[int | None, int | None]] = [
        (10, 20), (-1000, None), (12 * MIB, None), (5 * MIB - 1, 5 * MIB + 1), (None, 16)]
    out = run_s3fs("ranges", key=key, reads=json.dumps(reads), cats=json.dumps(cats))

    assert out["etag"] == etag
    for got, (offset, length) in zip(out["reads"], reads, strict=True):
        piece = data[offset:offset + length]
        assert (got["got"], got["sha256"]) == (len(piece), digest(piece)["sha256"]), got
        assert got["tell"] == offset + len(piece)
    for got, (start, end) in zip(out["cats"], cats, strict=True):
        assert got["data"] == digest(data[start:end]), got
    assert out["catRanges"] == [digest(data[0:10]), digest(data[5 * MIB:5 * MIB + 10]),
                                digest(data[12 * MIB:12 * MIB + 10])]
    assert out["head"] == digest(data[:100]) and out["tail"] == digest(data[-100:])

    # The open file read through ranged GETs that all carry If-Match with its ETag;
    # cat_file sent the range forms S3 knows: first-last, suffix and open-ended.
    gets = sent(out, "GetObject", f"/{bucket}/{key}")
    assert all("range" in g["headers"] for g in gets)
    assert all(g["headers"]["x-amz-checksum-mode"] == "ENABLED" for g in gets)
    pinned = [g for g in gets if "if-match" in g["headers"]]
    assert len(pinned) >= len(reads) and all(g["headers"]["if-match"] == etag for g in pinned)
    ranges = [g["headers"]["range"] for g in gets]
    for form in ("bytes=10-19", "bytes=-1000", f"bytes={12 * MIB}-",
                 f"bytes={5 * MIB - 1}-{5 * MIB}", "bytes=0-15"):
        assert form in ranges
    assert set(statuses(out, "GetObject")) == {206}


def test_s3fs_open_file_raises_file_expired_when_the_object_is_overwritten_under_it(
        run_s3fs: Run, s3: Any, bucket: str) -> None:
    out = run_s3fs("expired")

    assert out["first"] == digest(b"a" * 1000)
    # The next read sent If-Match with the ETag the file opened with: 412, so s3fs raised
    # FileExpired instead of mixing bytes of two objects.
    assert error(out["afterChange"]) == "FileExpired", out["afterChange"]
    assert "OSError" in out["afterChange"]["isinstance"]
    gets = sent(out, "GetObject", f"/{bucket}/changing.bin")
    assert [g["headers"]["if-match"] for g in gets[:2]] == [out["etag"]] * 2
    assert statuses(out, "GetObject")[:2] == [206, 412]
    assert [r["code"] for r in out["responses"] if r["status"] == 412] == ["PreconditionFailed"]
    # Opened again, it sees the new object.
    assert out["reopened"] == digest(b"b" * 1000)
    stored = s3.get_object(Bucket=bucket, Key="changing.bin")
    assert stored["Body"].read() == b"b" * (3 * MIB)
    assert stored["ETag"] == gets[2]["headers"]["if-match"] != out["etag"]


def make_tree(root: Path) -> dict[str, bytes]:
    """120 small files in nested folders (some empty, odd names); {relative path: bytes}."""
    files: dict[str, bytes] = {}
    suffixes = (".csv", ".json", ".txt", ".bin")
    for i in range(116):
        folder = "" if i % 5 == 0 else f"d{i % 4}/sub{i % 3}/" if i % 2 else f"d{i % 4}/"
        files[f"{folder}f{i:03d}{suffixes[i % 4]}"] = os.urandom(i * 37)
    files["with space.txt"] = b"spaces"
    files["d1/ünïcødé.csv"] = b"a,b\n1,2\n"
    files["d2/empty.txt"] = b""
    files["d3/sub2/deeper/still/leaf.json"] = b'{"leaf": true}'
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    return files


def test_s3fs_put_and_get_recursive_round_trip_a_nested_tree_of_120_files(
        run_s3fs: Run, s3: Any, bucket: str, tmp_path: Path) -> None:
    files = make_tree(tmp_path / "tree")
    out = run_s3fs("tree", tree=str(tmp_path / "tree"), out=str(tmp_path / "back"))

    expected = {f"upload/{rel}": len(body) for rel, body in files.items()}
    assert keys(s3, bucket) == expected
    assert out["found"] == {f"{bucket}/{k}": size for k, size in expected.items()}
    assert len(sent(out, "PutObject")) == len(files) == 120
    assert set(statuses(out, "PutObject")) == {200}
    # put() sets the Content-Type guessed from each file name.
    assert s3.head_object(Bucket=bucket, Key="upload/f000.csv")["ContentType"] == "text/csv"
    assert s3.head_object(Bucket=bucket, Key="upload/d1/sub1/f001.json")["ContentType"] == (
        "application/json")
    for rel, body in files.items():
        assert s3.get_object(Bucket=bucket, Key=f"upload/{rel}")["Body"].read() == body
    back = {str(p.relative_to(tmp_path / "back")): p.read_bytes()
            for p in (tmp_path / "back").rglob("*") if p.is_file()}
    assert back == files
    assert len(sent(out, "GetObject")) == len(files)


LISTED = {
    **{f"data/part-0{i}.csv": 10 * i + 1 for i in range(5)},
    "data/part-10.csv": 7, "data/readme.txt": 12,
    "data/year=2023/a.json": 3, "data/year=2023/b.json": 4, "data/year=2024/c.json": 5,
    "data/year=2025/d.json": 6, "data/nested/deeper/e.json": 8,
    "odd/with space.txt": 1, "odd/ünïcødé.txt": 2, "odd/plus+sign.txt": 3,
    "odd/percent%41.txt": 4, "odd/tilde~and,comma.txt": 5, "odd/amp&equals=.txt": 6,
    "top.txt": 9,
}


def test_s3fs_ls_find_glob_du_walk_and_info_see_exactly_the_keys_boto3_stored(
        run_s3fs: Run, s3: Any, bucket: str) -> None:
    for key, size in LISTED.items():
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * size)
    out = run_s3fs("listing")
    b = bucket

    def full(*names: str) -> list[str]:
        return sorted(f"{b}/{n}" for n in names)

    def under(prefix: str) -> list[str]:
        return full(*(k for k in LISTED if k.startswith(prefix)))

    assert out["lsBucket"] == full("data", "odd", "top.txt")
    data_files = {k: s for k, s in LISTED.items() if k.count("/") == 1 and
                  k.startswith("data/")}
    assert out["lsDetail"] == {
        **{f"{b}/{k}": ["file", s] for k, s in data_files.items()},
        **{f"{b}/data/{d}": ["directory", 0]
           for d in ("nested", "year=2023", "year=2024", "year=2025")}}
    assert out["lsOdd"] == under("odd/")
    assert out["find"] == full(*LISTED)
    assert out["findWithDirs"] == sorted([*under("data/"), *full(
        "data", "data/nested", "data/nested/deeper", "data/year=2023", "data/year=2024",
        "data/year=2025")])
    assert out["findMaxdepth"] == full(*data_files)
    assert out["findPrefix"] == under("data/part-0")
    assert out["globCsv"] == under("data/part-")
    assert out["globDeep"] == full(*(k for k in LISTED if k.endswith(".json")))
    assert out["globChar"] == under("data/part-0")
    assert out["globClass"] == under("data/year=2023/") + under("data/year=2024/")
    assert out["du"] == sum(LISTED.values())
    assert out["duData"] == {f"{b}/{k}": s for k, s in LISTED.items() if k.startswith("data/")}
    walked = {root: [dirs, files] for root, dirs, files in out["walk"]}
    assert walked[b] == [["data", "odd"], ["top.txt"]]
    assert walked[f"{b}/data"] == [["nested", "year=2023", "year=2024", "year=2025"],
                                   sorted(k.split("/")[1] for k in data_files)]
    assert walked[f"{b}/data/nested/deeper"] == [[], ["e.json"]]
    assert len(walked) == 8  # the bucket, data, nested, deeper, three years, odd

    checks = out["checks"]
    for prefix in ("data", "data/year=2023"):  # prefixes without any marker object
        assert checks[prefix]["exists"] and checks[prefix]["isdir"]
        assert not checks[prefix]["isfile"]
        assert checks[prefix]["info"]["value"]["type"] == "directory"
    for key in ("data/part-00.csv", "odd/with space.txt"):
        assert checks[key]["exists"] and checks[key]["isfile"] and not checks[key]["isdir"]
        info = checks[key]["info"]["value"]
        head = s3.head_object(Bucket=b, Key=key)
        assert (info["type"], info["size"], info["ETag"]) == (
            "file", LISTED[key], head["ETag"])
    for absent in ("data/part", "nothing"):  # "data/part" starts keys but is no directory
        assert checks[absent] == {"exists": False, "isdir": False, "isfile": False,
                                  "info": checks[absent]["info"]}
        assert error(checks[absent]["info"]) == "FileNotFoundError"
    assert out["bucketInfo"]["type"] == "directory"
    assert out["size"] == 1
    assert out["sizes"] == [1, 11]
    # Listings asked for URL-encoded keys; botocore decoded them back.
    lists = sent(out, "ListObjectsV2")
    assert lists and all(r["query"]["encoding-type"] == "url" for r in lists)


def test_s3fs_sees_prefixes_and_folder_markers_as_directories_and_mkdir_makes_buckets_only(
        run_s3fs: Run, s3: Any, bucket: str) -> None:
    for key, body in {"implicit/deep/file.txt": b"file", "marker-only/": b"",
                      "with-marker/": b"", "with-marker/inside.txt": b"inside"}.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    new = f"{bucket}-new"
    try:
        out = run_s3fs("dirs", new_bucket=new)
    finally:
        if not no_such_bucket(s3, new):
            purge_bucket(s3, new)
    b = bucket

    directory = {"exists": True, "isdir": True, "isfile": False, "type": {"value": "directory"}}
    absent = {"exists": False, "isdir": False, "isfile": False}
    checks = out["checks"]
    for path in ("implicit", "implicit/deep", "marker-only", "with-marker", "made", "made/by",
                 "touched-folder"):
        assert checks[path] == directory, path
    assert checks["implicit/deep/file.txt"] == {"exists": True, "isdir": False, "isfile": True,
                                                "type": {"value": "file"}}
    for path in ("mkdir-dir", "deep", "missing"):  # mkdir/makedirs of a prefix: nothing
        assert {k: v for k, v in checks[path].items() if k != "type"} == absent, path
        assert error(checks[path]["type"]) == "FileNotFoundError"
    # A folder marker lists as an entry of its own folder, as S3 returns it.
    assert out["lsMarkerOnly"] == [f"{b}/marker-only/"]
    assert out["lsWithMarker"] == [f"{b}/with-marker/", f"{b}/with-marker/inside.txt"]
    assert out["lsBucket"] == [f"{b}/{p}" for p in ("implicit", "made", "marker-only",
                                                    "touched-folder", "with-marker")]
    assert error(out["touchNoTruncate"]) == "ValueError"
    assert error(out["rmdirPrefix"]) == "FileExistsError"
    assert keys(s3, b) == {"implicit/deep/file.txt": 4, "marker-only/": 0, "with-marker/": 0,
                           "with-marker/inside.txt": 6, "made/by/touch.txt": 0,
                           "touched-folder/": 0}
    # mkdir/makedirs of a prefix wrote nothing (s3fs only checked the bucket exists).
    writes = [r["path"] for r in out["requests"] if r["method"] in ("PUT", "POST", "DELETE")]
    assert not [p for p in writes if p.startswith((f"/{b}/mkdir-dir", f"/{b}/deep"))]

    # mkdir of a bare name created that bucket, in the client's region.
    assert out["newBucketExistsBefore"] is False and out["newBucketExists"] is True
    (create,) = sent(out, "CreateBucket", f"/{new}")
    assert f"<LocationConstraint>{REGION}</LocationConstraint>" in create["body"]
    assert statuses(out, "CreateBucket") == [200]
    assert error(out["mkdirAgain"]) == "FileExistsError"
    assert out["makedirsExistOk"] == {"value": None}
    assert new in out["lsRoot"] and b in out["lsRoot"]
    # rmdir of a bucket with a key in it: 409 BucketNotEmpty, an OSError; once empty, gone.
    assert error(out["rmdirNotEmpty"]) == "OSError"
    assert out["rmdirNotEmpty"]["code"] == "BucketNotEmpty"
    assert statuses(out, "DeleteBucket") == [409, 204]
    assert out["rmdirEmpty"] == {"value": None} and out["newBucketExistsAfter"] is False
    assert no_such_bucket(s3, new)


def test_s3fs_rm_recursive_pages_through_1005_keys_and_deletes_them_with_delete_objects(
        run_s3fs: Run, s3: Any, bucket: str) -> None:
    out = run_s3fs("rm")

    assert out["foundBefore"] == 1005
    rm_requests = out["rmRequests"]
    pages = sent(out, "ListObjectsV2", requests=rm_requests)
    assert [p["query"]["prefix"] for p in pages] == ["many/", "many/"]
    assert "continuation-token" not in pages[0]["query"]
    assert "continuation-token" in pages[1]["query"]
    # One DeleteObjects per 1000 names, quiet: the 1005 keys, plus the 11 subdirectory names
    # and "many" itself that s3fs deletes too in case they are marker objects.
    deletes = sent(out, "DeleteObjects", requests=rm_requests)
    assert sorted(d["deleteKeys"] for d in deletes) == [17, 1000]
    assert all(d["quiet"] and d["query"] == {"delete": ""} for d in deletes)
    assert all("x-amz-checksum-crc32" in d["headers"] for d in deletes)
    assert not sent(out, "DeleteObject", requests=rm_requests)
    assert out["existsAfter"] is False

    # rm_file: DeleteObject; rm of a list: one DeleteObjects; of a missing key: no error,
    # as deleting a key that is not there succeeds on S3.
    assert statuses(out, "DeleteObject") == [204, 204]
    assert [d["deleteKeys"] for d in sent(out, "DeleteObjects")[2:]] == [2, 1]
    assert out["rmMissing"] == {"value": []} and out["rmFileMissing"] == {"value": None}
    assert out["left"] == [f"{bucket}/keep/four.txt", f"{bucket}/many2/kept.txt",
                           f"{bucket}/manyfile"]
    assert keys(s3, bucket) == {"keep/four.txt": 1, "many2/kept.txt": 4, "manyfile": 4}


def test_s3fs_copy_and_mv_copy_on_the_server_and_preserve_etag_copies_a_multipart_object(
        run_s3fs: Run, s3: Any, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="src/report.csv", Body=b"a,b\n1,2\n",
                  ContentType="text/csv", Metadata={"owner": "analytics"})
    for i in range(10):
        s3.put_object(Bucket=bucket, Key=f"src/dir/{i}.txt", Body=f"file {i}".encode())
    big = tmp_path / "big.bin"
    big_sha = write_random_file(big, 12 * MIB + 5)
    s3.upload_file(str(big), bucket, "src/big.bin", Config=TransferConfig(
        multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
    big_etag = s3.head_object(Bucket=bucket, Key="src/big.bin")["ETag"]
    assert big_etag.endswith('-3"')
    out = run_s3fs("copy")

    # No byte went through the client: copies are CopyObject and UploadPartCopy.
    requests = out["copyRequests"]
    for op in ("GetObject", "PutObject", "UploadPart"):
        assert sent(out, op, requests=requests) == []
    # cp(recursive=True) copies the prefix's own name too: S3 answers 404 NoSuchKey for it,
    # which fsspec ignores for a recursive copy.
    copies = sent(out, "CopyObject", requests=requests)
    assert sorted(c["headers"]["x-amz-copy-source"] for c in copies) == sorted(
        [f"{bucket}/src/report.csv"] * 2 + [f"{bucket}/src/dir/{i}.txt" for i in range(10)] * 2
        + [f"{bucket}/src/dir"])
    assert sorted(statuses(out, "CopyObject")) == [200] * 22 + [404]
    assert [r["code"] for r in out["responses"] if r["op"] == "CopyObject"
            and r["status"] == 404] == ["NoSuchKey"]
    # preserve_etag: the part sizes from HeadObject?partNumber=N, then the same byte ranges
    # through UploadPartCopy, so the copy has the source's multipart ETag.
    part_heads = [r for r in sent(out, "HeadObject", f"/{bucket}/src/big.bin", requests)
                  if "partNumber" in r["query"]]
    assert sorted(r["query"]["partNumber"] for r in part_heads) == ["1", "2", "3"]
    part_copies = sent(out, "UploadPartCopy", requests=requests)
    assert [p["headers"]["x-amz-copy-source-range"] for p in part_copies] == [
        f"bytes=0-{5 * MIB - 1}", f"bytes={5 * MIB}-{10 * MIB - 1}",
        f"bytes={10 * MIB}-{12 * MIB + 4}"]
    assert out["bigEtags"] == [big_etag, big_etag]

    assert keys(s3, bucket, "src/") == {"src/big.bin": 12 * MIB + 5}
    assert out["srcReportExists"] is False
    for key in ("dst/report.csv", "moved/report.csv"):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["Metadata"] == {"owner": "analytics"}
        assert head["ContentType"] == "text/csv"
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"a,b\n1,2\n"
    for folder in ("dst/dir", "moved/dir"):
        assert {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read()
                for k in keys(s3, bucket, f"{folder}/")} == {
            f"{folder}/{i}.txt": f"file {i}".encode() for i in range(10)}
    assert multipart_parts(s3, bucket, "dst/big.bin") == 3
    assert object_sha256(s3, bucket, "dst/big.bin") == big_sha
    assert len(out["find"]) == 2 + 2 + 10 + 10  # big.bin, report.csv, dir/ twice each


def test_s3fs_pipe_cat_xattrs_info_checksum_tags_and_url_agree_with_boto3(
        run_s3fs: Run, s3: Any, bucket: str) -> None:
    out = run_s3fs("metadata")
    b = bucket
    key = "meta/doc.json"

    assert out["catList"] == {f"{b}/meta/alpha.txt": "alpha", f"{b}/meta/beta.txt": "beta"}
    assert out["catGlob"] == out["catList"]
    assert out["catOnError"] == {f"{b}/meta/alpha.txt": digest(b"alpha"),
                                 f"{b}/meta/gamma.txt": {"error": "FileNotFoundError"}}

    # setxattr: CopyObject onto itself with REPLACE, the merged metadata and new type.
    assert out["metadataBefore"] == {"origin": "s3fs", "color": "red"}
    assert (out["color"], out["twoWords"], out["missingAttr"]) == ("blue", "a b", None)
    assert out["metadataAfter"] == {"origin": "s3fs", "two-words": "a b"}
    # The copy_kwargs ContentType went along; the second REPLACE copy named none, so the
    # object fell back to S3's default type, as on AWS.
    assert out["typeAfterSetxattr"] == "application/x-ndjson"
    assert "content-type" not in sent(out, "CopyObject")[1]["headers"]
    for copy in sent(out, "CopyObject"):
        assert copy["path"] == f"/{b}/{key}"
        assert copy["headers"]["x-amz-copy-source"] == f"{b}/{key}"
        assert copy["headers"]["x-amz-metadata-directive"] == "REPLACE"
    assert statuses(out, "CopyObject") == [200, 200]

    head = s3.head_object(Bucket=b, Key=key)
    assert head["Metadata"] == {"origin": "s3fs", "two-words": "a b"}
    assert head["ContentType"] == "binary/octet-stream"
    info = out["info"]
    body_md5 = hashlib.md5(b'{"v": 1}').hexdigest()
    assert info["ETag"] == head["ETag"] == f'"{body_md5}"'
    assert info["size"] == head["ContentLength"] == 8
    assert info["ContentType"] == "binary/octet-stream" and info["type"] == "file"
    assert datetime.fromisoformat(info["LastModified"]) == head["LastModified"]
    assert datetime.fromisoformat(out["modified"]) == head["LastModified"]
    # checksum() is the ETag's MD5 as a number: it changes with the content.
    assert int(out["checksum"]) == int(body_md5, 16)
    assert int(out["checksumAlpha"]) == int(hashlib.md5(b"alpha").hexdigest(), 16)
    assert int(out["checksumAfterRewrite"]) == int(hashlib.md5(b"ALPHA!").hexdigest(), 16)

    assert out["tags"] == {"team": "data", "stage": "test", "extra": "yes"}
    tags = s3.get_object_tagging(Bucket=b, Key=key)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == out["tags"]
    assert out["presignedGet"] == '{"v": 1}'
    assert s3.get_object(Bucket=b, Key="meta/alpha.txt")["Body"].read() == b"ALPHA!"


def test_s3fs_version_aware_reads_an_overwritten_version_by_id_even_after_a_delete(
        run_s3fs: Run, s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    out = run_s3fs("versions")
    key = "v/doc.txt"
    v1, v2 = out["ids"]

    assert v1 and v2 and v1 != v2
    assert out["current"] == "second version"
    assert out["byPath"] == out["byOpen"] == "first version"
    assert (out["infoV1"]["VersionId"], out["infoV1"]["size"]) == (v1, 13)
    assert sorted(out["lsVersions"]) == sorted(
        f"{bucket}/{key}?versionId={v}" for v in (v1, v2))
    assert out["versionInfo"] == [[v2, True, 14], [v1, False, 13]]
    # Reads of a version by id carry versionId in the query.
    assert any(r["query"].get("versionId") == v1 for r in sent(out, "GetObject"))
    assert out["existsAfterRm"] is False
    assert (out["v1AfterRm"], out["v2AfterRm"]) == ("first version", "second version")
    assert error(out["missingVersion"]) == "FileNotFoundError"

    listed = s3.list_object_versions(Bucket=bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [
        (v2, False), (v1, False)]
    (marker,) = listed["DeleteMarkers"]
    assert marker["Key"] == key and marker["IsLatest"]
    old = s3.get_object(Bucket=bucket, Key=key, VersionId=v1)
    assert old["Body"].read() == b"first version" and old["VersionId"] == v1


def test_s3fs_with_a_wrong_secret_raises_permission_error_and_stores_nothing(
        run_s3fs: Run, s3: Any, bucket: str, tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="existing.txt", Body=b"existing")
    local = tmp_path / "local.bin"
    write_random_file(local, 1000)
    new = f"{bucket}-new"
    out = run_s3fs("wrong_secret", file=str(local), new_bucket=new)

    calls = ("pipe", "openWrite", "openWriteMultipart", "put", "ls", "cat", "info", "rm",
             "rmFile", "copy", "mkdir", "unknownKeyPipe", "unknownKeyLs")
    for name in calls:
        assert error(out[name]) == "PermissionError", (name, out[name])
    # Answers with a body name the reason; HEAD answers (cat, info) are a bare 403.
    for name in ("pipe", "openWrite", "openWriteMultipart", "put", "ls", "rm", "rmFile",
                 "copy", "mkdir"):
        assert out[name]["code"] == "SignatureDoesNotMatch", name
    assert out["unknownKeyPipe"]["code"] == out["unknownKeyLs"]["code"] == "InvalidAccessKeyId"
    assert {r["status"] for r in out["responses"]} == {403}

    assert keys(s3, bucket) == {"existing.txt": 8}
    assert s3.get_object(Bucket=bucket, Key="existing.txt")["Body"].read() == b"existing"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert no_such_bucket(s3, new)


def test_s3fs_raises_file_not_found_for_missing_keys_and_a_missing_bucket_and_creates_nothing(
        run_s3fs: Run, s3: Any, bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    write_random_file(local, 1000)
    new = f"{bucket}-missing"
    out = run_s3fs("missing", file=str(local), new_bucket=new, out=str(tmp_path / "got.bin"))

    for name in ("cat", "catFile", "catFileRange", "open", "info", "size", "get", "ls",
                 "copy", "bucketLs", "bucketInfo", "bucketCatFile", "bucketOpen",
                 "bucketPipe", "bucketPut", "bucketFind", "bucketRmdir", "bucketOpenWrite"):
        assert error(out[name]) == "FileNotFoundError", (name, out[name])
    # GET answers 404 NoSuchKey or NoSuchBucket (HEAD answers a bare 404).
    assert out["catFileRange"]["code"] == out["get"]["code"] == "NoSuchKey"
    for name in ("bucketLs", "bucketCatFile", "bucketPipe", "bucketPut", "bucketRmdir",
                 "bucketOpenWrite"):
        assert out[name]["code"] == "NoSuchBucket", name
    assert out["exists"] == out["bucketExists"] == out["bucketIsdir"] == {"value": False}
    assert out["rm"] == {"value": []}  # deleting a key that is not there is no error
    assert out["localLeft"] is False
    assert {r["status"] for r in out["responses"]} <= {200, 404}
    assert statuses(out, "PutObject") == [404, 404, 404]

    assert no_such_bucket(s3, new)
    assert keys(s3, bucket) == {}
