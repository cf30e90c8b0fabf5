"""s3fs scenarios for tests/test_client_s3fs.py, run with tests/fsspec/.venv/bin/python.

``python scenarios.py NAME`` runs one scenario against a cargohold server with a stock
``s3fs.S3FileSystem`` (every default but the endpoint, region and keys) and prints one JSON
object: what s3fs returned or raised, plus every request it sent (``requests``: operation,
method, path, query, the headers that matter) and the status of every response
(``responses``). Settings come from the environment: CH_ENDPOINT, CH_ACCESS_KEY,
CH_SECRET_KEY, CH_REGION, CH_BUCKET, and per scenario CH_FILE, CH_TREE, CH_OUT, ... The
pytest module cross-checks with boto3 what the server stored.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import s3fs

MIB = 1024 * 1024
# Request headers worth reporting (besides every x-amz-* header but the date).
HEADERS = {"range", "if-match", "if-none-match", "content-type", "content-length",
           "content-md5", "content-encoding"}

_lock = threading.Lock()
REQUESTS: list[dict[str, Any]] = []
RESPONSES: list[dict[str, Any]] = []


def setting(name: str) -> str:
    return os.environ[f"CH_{name.upper()}"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _before_send(request: Any, event_name: str, **_: Any) -> None:
    """Record one request as it goes on the wire (signed, after botocore's handlers)."""
    url = urllib.parse.urlsplit(request.url)
    headers = {k.lower(): _text(v) for k, v in request.headers.items()}
    record: dict[str, Any] = {
        "op": event_name.rsplit(".", 1)[-1],
        "method": request.method,
        "path": urllib.parse.unquote(url.path),
        "query": dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)),
        "headers": {k: v for k, v in headers.items()
                    if (k.startswith("x-amz-") and k != "x-amz-date") or k in HEADERS},
    }
    body = request.body if isinstance(request.body, bytes | str) else b""
    if record["op"] in ("CreateBucket", "CompleteMultipartUpload"):
        record["body"] = _text(body)
    elif record["op"] == "DeleteObjects":
        text = _text(body)
        record["deleteKeys"] = text.count("<Key>")
        record["quiet"] = "<Quiet>true</Quiet>" in text
    with _lock:
        REQUESTS.append(record)


def _after_call(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
    """Record the status (and S3 error code) of every response, errors included."""
    with _lock:
        RESPONSES.append({"op": model.name, "status": http_response.status_code,
                          "code": parsed.get("Error", {}).get("Code")})


def connect(secret: str | None = None, access_key: str | None = None,
            **options: Any) -> s3fs.S3FileSystem:
    """A stock S3FileSystem for the server, its requests recorded."""
    fs = s3fs.S3FileSystem(
        key=access_key or setting("access_key"), secret=secret or setting("secret_key"),
        client_kwargs={"endpoint_url": setting("endpoint"), "region_name": setting("region")},
        **options)
    events = fs.s3.meta.events
    events.register("before-send.s3", _before_send)
    events.register("after-call.s3", _after_call)
    return fs


def outcome(call: Callable[[], Any]) -> dict[str, Any]:
    """What ``call`` returned, or the exception s3fs raised (with the S3 error behind it)."""
    try:
        value = call()
    except Exception as exc:
        cause = exc.__cause__
        response = getattr(cause, "response", None) or {}
        return {"error": type(exc).__name__,
                "isinstance": [c.__name__ for c in type(exc).__mro__],
                "errno": getattr(exc, "errno", None), "message": str(exc),
                "code": response.get("Error", {}).get("Code")}
    return {"value": value}


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return {"bytes": len(value), "sha256": sha256(value)}
    if isinstance(value, BaseException):
        return {"error": type(value).__name__}
    return repr(value)


def digest_reads(read: Callable[[int], bytes], size: int = MIB) -> str:
    digest = hashlib.sha256()
    while chunk := read(size):
        digest.update(chunk)
    return digest.hexdigest()


# -- scenarios ------------------------------------------------------------------------------

def small_files() -> dict[str, Any]:
    """open() in text and binary modes: one PutObject each, exclusive create ("xb")."""
    fs, b = connect(), setting("bucket")
    out: dict[str, Any] = {}
    text = "héllo, wörld\n" * 3
    with fs.open(f"{b}/notes/hello.txt", "w", encoding="utf-8") as f:
        f.write(text)
    with fs.open(f"{b}/notes/hello.txt", "r", encoding="utf-8") as f:
        out["text"] = f.read()
    with open(setting("file"), "rb") as src, fs.open(f"{b}/bin/small.bin", "wb") as dst:
        dst.write(src.read())
    with fs.open(f"{b}/bin/small.bin", "rb") as f:
        out["small"] = {"sha256": sha256(f.read()), "size": f.size}
    # Under the block size: buffered whole and sent as one PutObject at close.
    with open(setting("under_block_file"), "rb") as src, \
            fs.open(f"{b}/bin/under-block.bin", "wb", block_size=5 * MIB) as dst:
        while chunk := src.read(MIB):
            dst.write(chunk)
    with fs.open(f"{b}/bin/under-block.bin", "rb") as f:
        out["underBlock"] = {"sha256": digest_reads(f.read), "size": f.size}
    with fs.open(f"{b}/empty.txt", "wb"):
        pass
    out["empty"] = fs.cat_file(f"{b}/empty.txt")
    # Exclusive creation: If-None-Match: * on the PutObject / CompleteMultipartUpload.
    with fs.open(f"{b}/exclusive.txt", "xb") as f:
        f.write(b"first writer")

    def second_writer() -> None:
        with fs.open(f"{b}/exclusive.txt", "xb") as f:
            f.write(b"second writer")

    def second_multipart_writer() -> None:
        with fs.open(f"{b}/exclusive.txt", "xb", block_size=5 * MIB) as f:
            f.write(os.urandom(6 * MIB))

    out["secondWriter"] = outcome(second_writer)
    out["secondMultipartWriter"] = outcome(second_multipart_writer)
    out["pipeCreate"] = outcome(lambda: fs.pipe(f"{b}/exclusive.txt", b"third", mode="create"))
    out["exclusive"] = fs.cat_file(f"{b}/exclusive.txt").decode()
    return out


def open_multipart() -> dict[str, Any]:
    """Writing more than a block through open(): a multipart upload, one part per block."""
    fs, b = connect(), setting("bucket")
    key = f"{b}/big/written.bin"
    with open(setting("file"), "rb") as src, fs.open(key, "wb", block_size=5 * MIB) as dst:
        while chunk := src.read(MIB):
            dst.write(chunk)
    with fs.open(key, "rb") as f:
        read_back = digest_reads(f.read)
    return {"readBack": read_back, "catFile": sha256(fs.cat_file(key)),
            "info": fs.info(key, refresh=True)}


def put_get_multipart() -> dict[str, Any]:
    """put()/get() of a file over the chunk size: concurrent parts up, ranges down."""
    fs, b = connect(), setting("bucket")
    key = f"{b}/big/put.bin"
    fs.put(setting("file"), key, chunksize=8 * MIB)
    fs.get(key, setting("out"), chunksize=8 * MIB)
    return {"info": fs.info(key, refresh=True),
            "cat": sha256(fs.cat_file(key, chunksize=8 * MIB))}


def ranges() -> dict[str, Any]:
    """Ranged reads: seek/read on an open file, cat_file with start/end, cat_ranges,
    head/tail."""
    fs, b = connect(), setting("bucket")
    key = f"{b}/{setting('key')}"
    reads = []
    with fs.open(key, "rb", block_size=MIB) as f:
        etag = f.details["ETag"]
        for offset, length in json.loads(setting("reads")):
            f.seek(offset)
            data = f.read(length)
            reads.append({"offset": offset, "length": length, "got": len(data),
                          "sha256": sha256(data), "tell": f.tell()})
    cats = [{"start": start, "end": end, "data": fs.cat_file(key, start=start, end=end)}
            for start, end in json.loads(setting("cats"))]
    starts, ends = [0, 5 * MIB, 12 * MIB], [10, 5 * MIB + 10, 12 * MIB + 10]
    return {"etag": etag, "reads": reads, "cats": cats,
            "catRanges": fs.cat_ranges([key] * 3, starts, ends),
            "head": fs.head(key, 100), "tail": fs.tail(key, 100)}


def expired() -> dict[str, Any]:
    """An open file pins the ETag it saw (If-Match): a changed object raises FileExpired."""
    fs, b = connect(), setting("bucket")
    key = f"{b}/changing.bin"
    fs.pipe(key, b"a" * (3 * MIB))
    f = fs.open(key, "rb", block_size=MIB, cache_type="none")
    first = f.read(1000)
    fs.pipe(key, b"b" * (3 * MIB))

    def read_on() -> bytes:
        f.seek(2 * MIB)
        data: bytes = f.read(1000)
        return data

    out = {"first": first, "etag": f.details["ETag"], "afterChange": outcome(read_on)}
    f.close()
    with fs.open(key, "rb", block_size=MIB, cache_type="none") as g:
        g.seek(2 * MIB)
        out["reopened"] = g.read(1000)
    return out


def tree() -> dict[str, Any]:
    """put/get of a local directory tree, recursively."""
    fs, b = connect(), setting("bucket")
    fs.put(setting("tree") + "/", f"{b}/upload/", recursive=True)
    found = fs.find(f"{b}/upload", detail=True)
    fs.get(f"{b}/upload/", setting("out") + "/", recursive=True)
    return {"found": {name: info["size"] for name, info in found.items()}}


def listing() -> dict[str, Any]:
    """ls, find, glob, du, walk, info/exists/isdir/isfile on what boto3 stored."""
    fs, b = connect(), setting("bucket")

    def fresh(call: Callable[[], Any]) -> Any:
        fs.invalidate_cache()  # each answer from its own listings, not an earlier one's
        return call()

    out: dict[str, Any] = {
        "lsBucket": fresh(lambda: fs.ls(b)),
        "lsDetail": {i["name"]: [i["type"], i["size"]]
                     for i in fresh(lambda: fs.ls(f"{b}/data", detail=True))},
        "lsOdd": fresh(lambda: fs.ls(f"{b}/odd")),
        "find": fresh(lambda: fs.find(b)),
        "findWithDirs": fresh(lambda: fs.find(f"{b}/data", withdirs=True)),
        "findMaxdepth": fresh(lambda: fs.find(f"{b}/data", maxdepth=1)),
        "findPrefix": fresh(lambda: fs.find(f"{b}/data", prefix="part-0")),
        "globCsv": fresh(lambda: fs.glob(f"{b}/data/*.csv")),
        "globDeep": fresh(lambda: fs.glob(f"{b}/data/**/*.json")),
        "globChar": fresh(lambda: fs.glob(f"{b}/data/part-0?.csv")),
        "globClass": fresh(lambda: fs.glob(f"{b}/data/year=202[34]/*")),
        "du": fresh(lambda: fs.du(b)),
        "duData": fresh(lambda: fs.du(f"{b}/data", total=False)),
        "walk": fresh(lambda: [[root, sorted(dirs), sorted(files)]
                               for root, dirs, files in fs.walk(b)]),
    }
    def check(path: str) -> dict[str, Any]:
        return {"exists": fresh(lambda: fs.exists(path)), "isdir": fresh(lambda: fs.isdir(path)),
                "isfile": fresh(lambda: fs.isfile(path)),
                "info": fresh(lambda: outcome(lambda: fs.info(path)))}

    out["checks"] = {path: check(f"{b}/{path}") for path in (
        "data", "data/year=2023", "data/part-00.csv", "data/part", "nothing",
        "odd/with space.txt")}
    out["bucketInfo"] = fs.info(b)
    out["size"] = fs.size(f"{b}/data/part-00.csv")
    out["sizes"] = fs.sizes([f"{b}/data/part-00.csv", f"{b}/data/part-01.csv"])
    return out


def dirs() -> dict[str, Any]:
    """Directories: implicit prefixes, folder/ markers, touch, mkdir/makedirs/rmdir."""
    fs, b, new = connect(), setting("bucket"), setting("new_bucket")
    out: dict[str, Any] = {"checks": {}}
    fs.touch(f"{b}/made/by/touch.txt")
    fs.touch(f"{b}/touched-folder/")
    fs.mkdir(f"{b}/mkdir-dir")  # a prefix in an existing bucket: nothing to create
    fs.makedirs(f"{b}/deep/er/still", exist_ok=True)

    def check(path: str) -> dict[str, Any]:
        fs.invalidate_cache()
        return {"exists": fs.exists(path), "isdir": fs.isdir(path), "isfile": fs.isfile(path),
                "type": outcome(lambda: fs.info(path)["type"])}

    for path in ("implicit", "implicit/deep", "implicit/deep/file.txt", "marker-only",
                 "with-marker", "made", "made/by", "touched-folder", "mkdir-dir", "deep",
                 "missing"):
        out["checks"][path] = check(f"{b}/{path}")
    fs.invalidate_cache()
    out["lsMarkerOnly"] = fs.ls(f"{b}/marker-only")
    out["lsWithMarker"] = fs.ls(f"{b}/with-marker")
    out["lsBucket"] = fs.ls(b)
    out["touchNoTruncate"] = outcome(lambda: fs.touch(f"{b}/made/by/touch.txt",
                                                      truncate=False))
    out["rmdirPrefix"] = outcome(lambda: fs.rmdir(f"{b}/implicit"))
    # A path that is only a bucket name: mkdir creates the bucket (in the client's region).
    out["newBucketExistsBefore"] = fs.exists(new)
    fs.mkdir(new)
    out["newBucketExists"] = fs.exists(new)
    out["mkdirAgain"] = outcome(lambda: fs.mkdir(new))
    out["makedirsExistOk"] = outcome(lambda: fs.makedirs(new, exist_ok=True))
    fs.pipe(f"{new}/inside.txt", b"inside")
    out["lsRoot"] = fs.ls("", refresh=True)
    out["rmdirNotEmpty"] = outcome(lambda: fs.rmdir(new))
    fs.rm(f"{new}/inside.txt")
    out["rmdirEmpty"] = outcome(lambda: fs.rmdir(new))
    out["newBucketExistsAfter"] = fs.exists(new)
    return out


def rm() -> dict[str, Any]:
    """rm(recursive=True) of 1005 keys: a paged listing, then DeleteObjects by the 1000."""
    fs, b = connect(), setting("bucket")
    fs.pipe({f"{b}/many/{i // 100:02d}/{i:04d}.txt": b"x" for i in range(1005)})
    fs.pipe({f"{b}/many2/kept.txt": b"kept", f"{b}/manyfile": b"kept",
             f"{b}/keep/one.txt": b"1", f"{b}/keep/two.txt": b"2",
             f"{b}/keep/three.txt": b"3", f"{b}/keep/four.txt": b"4"})
    out: dict[str, Any] = {"foundBefore": len(fs.find(f"{b}/many"))}
    mark = len(REQUESTS)
    fs.rm(f"{b}/many", recursive=True)
    out["rmRequests"] = REQUESTS[mark:]
    out["existsAfter"] = fs.exists(f"{b}/many")
    fs.rm_file(f"{b}/keep/one.txt")
    fs.rm([f"{b}/keep/two.txt", f"{b}/keep/three.txt"])
    out["rmMissing"] = outcome(lambda: fs.rm(f"{b}/keep/never-there.txt"))
    out["rmFileMissing"] = outcome(lambda: fs.rm_file(f"{b}/keep/never-there.txt"))
    out["left"] = fs.find(b)
    return out


def copy() -> dict[str, Any]:
    """copy/cp/mv (CopyObject), and an ETag-preserving copy of a multipart object
    (HeadObject?partNumber=N, then UploadPartCopy of the same ranges)."""
    fs, b = connect(), setting("bucket")
    mark = len(REQUESTS)
    fs.copy(f"{b}/src/report.csv", f"{b}/dst/report.csv")
    fs.cp(f"{b}/src/dir", f"{b}/dst/dir", recursive=True)
    fs.mv(f"{b}/src/report.csv", f"{b}/moved/report.csv")
    # mv(recursive=True) of a prefix fails in fsspec (it copies the prefix's own name too,
    # with on_error="raise", and S3 has no such key): move its files by glob instead.
    fs.mv(f"{b}/src/dir/*", f"{b}/moved/dir/")
    fs.copy(f"{b}/src/big.bin", f"{b}/dst/big.bin", preserve_etag=True)
    fs.invalidate_cache()
    return {"copyRequests": REQUESTS[mark:], "find": fs.find(b),
            "bigEtags": [fs.info(f"{b}/{k}", refresh=True)["ETag"]
                         for k in ("src/big.bin", "dst/big.bin")],
            "srcReportExists": fs.exists(f"{b}/src/report.csv")}


def metadata() -> dict[str, Any]:
    """pipe/cat, xattrs (metadata through CopyObject REPLACE), info, checksum, tags, url."""
    fs, b = connect(), setting("bucket")
    out: dict[str, Any] = {}
    fs.pipe({f"{b}/meta/alpha.txt": b"alpha", f"{b}/meta/beta.txt": b"beta"})
    out["catList"] = {k: v.decode() for k, v in
                      fs.cat([f"{b}/meta/alpha.txt", f"{b}/meta/beta.txt"]).items()}
    out["catGlob"] = {k: v.decode() for k, v in fs.cat(f"{b}/meta/*.txt").items()}
    out["catOnError"] = fs.cat([f"{b}/meta/alpha.txt", f"{b}/meta/gamma.txt"],
                               on_error="return")
    key = f"{b}/meta/doc.json"
    fs.pipe(key, b'{"v": 1}', ContentType="application/json",
            Metadata={"origin": "s3fs", "color": "red"})
    out["metadataBefore"] = fs.metadata(key)
    fs.setxattr(key, copy_kwargs={"ContentType": "application/x-ndjson"}, color="blue",
                two_words="a b")
    out["color"] = fs.getxattr(key, "color")
    out["twoWords"] = fs.getxattr(key, "two_words")
    out["missingAttr"] = fs.getxattr(key, "nope")
    out["typeAfterSetxattr"] = fs.info(key, refresh=True)["ContentType"]
    # Without copy_kwargs the REPLACE copy names no Content-Type: S3 resets it.
    fs.setxattr(key, color=None)
    out["metadataAfter"] = fs.metadata(key)
    out["info"] = fs.info(key, refresh=True)
    out["checksum"] = str(fs.checksum(key, refresh=True))
    out["modified"] = fs.modified(key)
    fs.put_tags(key, {"team": "data", "stage": "test"})
    fs.put_tags(key, {"extra": "yes"}, mode="m")
    out["tags"] = fs.get_tags(key)
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            fs.url(key, expires=60)) as resp:
        out["presignedGet"] = resp.read().decode()
    # checksum() follows the content: rewrite another key and ask again.
    out["checksumAlpha"] = str(fs.checksum(f"{b}/meta/alpha.txt", refresh=True))
    fs.pipe(f"{b}/meta/alpha.txt", b"ALPHA!")
    out["checksumAfterRewrite"] = str(fs.checksum(f"{b}/meta/alpha.txt", refresh=True))
    return out


def versions() -> dict[str, Any]:
    """version_aware=True on a versioned bucket: old versions by id, after a delete too."""
    fs, b = connect(version_aware=True), setting("bucket")
    key = f"{b}/v/doc.txt"
    ids = []
    for body in (b"first version", b"second version"):
        with fs.open(key, "wb") as f:
            f.write(body)
        ids.append(f.version_id)
    v1, v2 = ids
    out: dict[str, Any] = {"ids": ids}
    out["current"] = fs.cat_file(key).decode()
    out["byPath"] = fs.cat_file(f"{key}?versionId={v1}").decode()
    with fs.open(key, "rb", version_id=v1) as f:
        out["byOpen"] = f.read().decode()
    out["infoV1"] = fs.info(key, version_id=v1)
    out["lsVersions"] = fs.ls(f"{b}/v", versions=True)
    out["versionInfo"] = [[v["VersionId"], v["IsLatest"], v["Size"]]
                          for v in fs.object_version_info(key)]
    fs.rm(key)  # a delete marker on top
    fs.invalidate_cache()
    out["existsAfterRm"] = fs.exists(key)
    out["v1AfterRm"] = fs.cat_file(f"{key}?versionId={v1}").decode()
    out["v2AfterRm"] = fs.cat_file(f"{key}?versionId={v2}").decode()
    out["missingVersion"] = outcome(
        lambda: fs.cat_file(f"{key}?versionId=00000000000000000000000000000000"))
    return out


def wrong_secret() -> dict[str, Any]:
    """A wrong secret (and an unknown access key): PermissionError everywhere."""
    b = setting("bucket")
    fs = connect(secret="not-the-secret-" + setting("secret_key"))
    out: dict[str, Any] = {}

    def write(size: int, block: int = 50 * MIB) -> None:
        with fs.open(f"{b}/written-{size}.bin", "wb", block_size=block) as f:
            f.write(b"w" * size)

    out["pipe"] = outcome(lambda: fs.pipe(f"{b}/piped.txt", b"nope"))
    out["openWrite"] = outcome(lambda: write(1000))
    out["openWriteMultipart"] = outcome(lambda: write(6 * MIB, 5 * MIB))
    out["put"] = outcome(lambda: fs.put(setting("file"), f"{b}/put.bin"))
    out["ls"] = outcome(lambda: fs.ls(b))
    out["cat"] = outcome(lambda: fs.cat(f"{b}/existing.txt"))
    out["info"] = outcome(lambda: fs.info(f"{b}/existing.txt"))
    out["rm"] = outcome(lambda: fs.rm(f"{b}/existing.txt"))
    out["rmFile"] = outcome(lambda: fs.rm_file(f"{b}/existing.txt"))
    out["copy"] = outcome(lambda: fs.copy(f"{b}/existing.txt", f"{b}/copied.txt"))
    out["mkdir"] = outcome(lambda: fs.mkdir(setting("new_bucket")))
    stranger = connect(access_key="CHUNKNOWNACCESSKEY01")
    out["unknownKeyPipe"] = outcome(lambda: stranger.pipe(f"{b}/stranger.txt", b"nope"))
    out["unknownKeyLs"] = outcome(lambda: stranger.ls(b))
    return out


def missing() -> dict[str, Any]:
    """Missing keys and a missing bucket: FileNotFoundError."""
    fs, b, nb = connect(), setting("bucket"), setting("new_bucket")
    out: dict[str, Any] = {}
    local = setting("out")
    for name, call in {
        "cat": lambda: fs.cat(f"{b}/no/such.txt"),
        "catFile": lambda: fs.cat_file(f"{b}/no/such.txt"),
        "catFileRange": lambda: fs.cat_file(f"{b}/no/such.txt", start=0, end=10),
        "open": lambda: fs.open(f"{b}/no/such.txt", "rb"),
        "info": lambda: fs.info(f"{b}/no/such.txt"),
        "size": lambda: fs.size(f"{b}/no/such.txt"),
        "get": lambda: fs.get(f"{b}/no/such.txt", local),
        "ls": lambda: fs.ls(f"{b}/no"),
        "rm": lambda: fs.rm(f"{b}/no/such.txt"),
        "copy": lambda: fs.copy(f"{b}/no/such.txt", f"{b}/copy.txt"),
        "exists": lambda: fs.exists(f"{b}/no/such.txt"),
        "bucketLs": lambda: fs.ls(nb),
        "bucketInfo": lambda: fs.info(nb),
        "bucketCatFile": lambda: fs.cat_file(f"{nb}/key.txt"),
        "bucketOpen": lambda: fs.open(f"{nb}/key.txt", "rb"),
        "bucketPipe": lambda: fs.pipe(f"{nb}/key.txt", b"data"),
        "bucketPut": lambda: fs.put(setting("file"), f"{nb}/put.bin"),
        "bucketFind": lambda: fs.find(nb),
        "bucketRmdir": lambda: fs.rmdir(nb),
        "bucketExists": lambda: fs.exists(nb),
        "bucketIsdir": lambda: fs.isdir(nb),
    }.items():
        fs.invalidate_cache()
        out[name] = outcome(call)

    def write_to_missing_bucket() -> None:
        with fs.open(f"{nb}/written.txt", "wb") as f:
            f.write(b"data")

    out["bucketOpenWrite"] = outcome(write_to_missing_bucket)
    out["localLeft"] = Path(local).exists()
    return out


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    f.__name__: f for f in (small_files, open_multipart, put_get_multipart, ranges, expired,
                            tree, listing, dirs, rm, copy, metadata, versions, wrong_secret,
                            missing)
}


def main() -> None:
    result = SCENARIOS[sys.argv[1]]()
    result["s3fsVersion"] = s3fs.__version__
    result["requests"] = REQUESTS
    result["responses"] = RESPONSES
    json.dump(result, sys.stdout, default=jsonable)


if __name__ == "__main__":
    main()
