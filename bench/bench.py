#!/usr/bin/env python3
"""cargohold benchmark driver: measures cargohold against SeaweedFS and nginx.

Starts each server on a free 127.0.0.1 port with its data under a temp dir, drives load
with the lean asyncio client in ``s3client.py``, reads each server's CPU time from
``/proc`` before and after every phase, prints a table plus the issue's targets with
PASS/FAIL, and writes everything to ``bench/results/latest.json``.

Usage (normally through ``bench/run.sh``)::

    python bench/bench.py [--quick] [--only cargohold,seaweedfs,nginx] [--phases get4k,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from s3client import (
    UNSIGNED_PAYLOAD,
    Connection,
    FileBody,
    Response,
    S3Client,
    ThreadedConnection,
    encode_path,
    make_random_file,
    sha256_file,
)
from servers import (
    Server,
    ServerUnavailable,
    cleanup_seaweed_sockets,
    start_cargohold,
    start_nginx,
    start_seaweedfs,
)

ACCESS_KEY = "BENCHACCESSKEY000001"
SECRET_KEY = "benchSecretKey/0000000000000000000000001"
BUCKET = "bench"
MiB = 1 << 20
GiB = 1 << 30
MB = 1_000_000
GB = 1_000_000_000
ALL_PHASES = (
    "get4k", "head4k", "put4k", "list1000", "delim",
    "get256m", "put256m", "mpu1g", "complete64", "copy1g", "mem", "small_w1",
)  # fmt: skip
OPTIONAL_PHASES = ("client",)
ALL_SERVERS = ("nginx", "seaweedfs", "cargohold")
# which phases each server takes part in
SERVER_PHASES: dict[str, set[str]] = {
    "nginx": {"get4k", "head4k", "get256m", "client"},
    "seaweedfs": {"get4k", "head4k", "put4k", "list1000", "get256m", "put256m"}
    | {"mpu1g", "complete64", "copy1g"},
    "cargohold": set(ALL_PHASES),
}
MEM_GROWTH_LIMIT_MIB = 64.0


@dataclass
class Sizes:
    """Counts, sizes and time bounds for one run (full or ``--quick``)."""

    small_keys: int = 1000  # 4 KiB objects for GET/HEAD and the 1000-key list page
    small_ops: int = 30_000  # max ops per small-object phase
    small_secs: float = 5.0  # max seconds per small-object phase
    warmup_ops: int = 500
    concurrency: int = 32
    large: int = 256 * MiB
    large_get_reps: int = 8
    large_put_reps: int = 4
    large_secs: float = 20.0
    list_ops: int = 3000
    list_concurrency: int = 4
    delim_prefixes: int = 100
    delim_keys_per_prefix: int = 100
    delim_ops: int = 300
    mem_total: int = 2048 * MiB
    mpu_total: int = 1024 * MiB  # mpu1g: one multipart upload of this size ...
    mpu_part: int = 16 * MiB  # ... in parts of this size ...
    mpu_inflight: int = 4  # ... this many at a time
    mpu_reps: int = 2
    complete_parts: int = 64  # complete64: CompleteMultipartUpload of this many parts ...
    complete_part_size: int = 5 * MiB  # ... of S3's minimum size (uploaded beforehand)
    complete_reps: int = 5
    copy_size: int = 1024 * MiB  # copy1g: server-side CopyObject of an object this big
    copy_reps: int = 3

    @classmethod
    def quick(cls) -> Sizes:
        """Smaller counts and sizes: a complete run in about a minute."""
        return cls(
            small_ops=4000, small_secs=1.0, warmup_ops=200, large=32 * MiB,
            large_get_reps=4, large_put_reps=2, large_secs=5.0, list_ops=300,
            delim_keys_per_prefix=20, delim_ops=60, mem_total=256 * MiB,
            mpu_total=128 * MiB, mpu_reps=1, complete_reps=3, copy_size=128 * MiB, copy_reps=2,
        )  # fmt: skip


@dataclass
class Result:
    """One (server, phase) measurement."""

    server: str
    phase: str
    ops: int = 0
    seconds: float = 0.0
    ops_s: float = 0.0
    mb_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    server_cpu_s: float = 0.0
    cpu_us_per_op: float = 0.0
    cpu_s_per_gb: float = 0.0
    client_cpu_us_per_op: float = 0.0
    bytes: int = 0
    errors: int = 0
    error_sample: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Target:
    """One of the issue's targets: the measured value against the threshold."""

    name: str
    measured: float | None
    threshold: str
    verdict: str  # PASS / FAIL / INFO / N/A
    detail: str = ""


# ----------------------------------------------------------------------------------------
# load generation
# ----------------------------------------------------------------------------------------

Op = Callable[[Connection, int], Awaitable[Response]]


def pct(sorted_vals: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of an already sorted list (nearest rank)."""
    if not sorted_vals:
        return 0.0
    idx = min(len(sorted_vals) - 1, max(0, round(q * len(sorted_vals) + 0.5) - 1))
    return sorted_vals[idx]


async def run_load(
    server: Server,
    name: str,
    phase: str,
    new_conn: Callable[[], Connection],
    op: Op,
    *,
    max_ops: int,
    seconds: float,
    concurrency: int,
    warmup_ops: int = 0,
    expect: tuple[int, ...] = (200,),
    count_request_bytes: int = 0,
) -> Result:
    """Run ``op`` with ``concurrency`` keep-alive workers, bounded by count and time.

    Warm-up ops run first and are not measured.  Server CPU is the process-tree CPU
    delta across the measured part only.  ``count_request_bytes`` (for PUTs) is added
    to the byte count per op; response body bytes are always counted.
    """
    conns = [new_conn() for _ in range(concurrency)]
    res = Result(server=name, phase=phase)
    seq = itertools.count()

    async def worker(conn: Connection, limit: int, deadline: float, lats: list[float]) -> int:
        nbytes = 0
        while True:
            i = next(seq)
            if i >= limit or time.perf_counter() > deadline:
                return nbytes
            t0 = time.perf_counter()
            try:
                resp = await op(conn, i)
            except Exception as exc:
                res.errors += 1
                res.error_sample = res.error_sample or repr(exc)[:300]
                conn.close()
                if res.errors > 50:
                    return nbytes
                continue
            lats.append(time.perf_counter() - t0)
            if resp.status not in expect:
                res.errors += 1
                if not res.error_sample:
                    res.error_sample = f"HTTP {resp.status}: {resp.body[:300]!r}"
                if res.errors > 50:
                    return nbytes
            nbytes += resp.body_len + count_request_bytes

    async def run(limit: int, secs: float) -> tuple[list[float], int]:
        deadline = time.perf_counter() + secs
        lat_lists: list[list[float]] = [[] for _ in conns]
        totals = await asyncio.wait_for(
            asyncio.gather(
                *(worker(c, limit, deadline, lat_lists[j]) for j, c in enumerate(conns))
            ),
            timeout=secs + 300,
        )
        return [x for lst in lat_lists for x in lst], sum(totals)

    try:
        if warmup_ops:
            await run(warmup_ops, max(1.0, seconds))
            res.errors, res.error_sample = 0, ""
        seq = itertools.count(warmup_ops)
        cpu0, cli0, t0 = server.cpu_seconds(), time.process_time(), time.perf_counter()
        lats, nbytes = await run(warmup_ops + max_ops, seconds)
        elapsed = time.perf_counter() - t0
        cpu1, cli1 = server.cpu_seconds(), time.process_time()
    finally:
        for c in conns:
            c.close()
    lats.sort()
    res.ops = len(lats)
    res.seconds = elapsed
    res.bytes = nbytes
    res.ops_s = res.ops / elapsed if elapsed else 0.0
    res.mb_s = nbytes / MB / elapsed if elapsed else 0.0
    res.p50_ms = pct(lats, 0.50) * 1000
    res.p99_ms = pct(lats, 0.99) * 1000
    res.server_cpu_s = cpu1 - cpu0
    if res.ops:
        res.cpu_us_per_op = res.server_cpu_s / res.ops * 1e6
        res.client_cpu_us_per_op = (cli1 - cli0) / res.ops * 1e6
    if nbytes:
        res.cpu_s_per_gb = res.server_cpu_s / (nbytes / GB)
    return res


# ----------------------------------------------------------------------------------------
# per-server context and phases
# ----------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """Everything a phase needs about the server it is measuring."""

    name: str
    server: Server
    sizes: Sizes
    workdir: Path
    big_file: Path
    small_body: bytes
    s3: S3Client | None  # None for nginx (plain static GETs)
    args: argparse.Namespace
    have_small: bool = False
    have_big: bool = False

    def conn(self) -> Connection:
        """An event-loop connection (for small requests at high concurrency)."""
        return Connection("127.0.0.1", self.server.port)

    def big_conn(self) -> Connection:
        """A blocking connection in a worker thread (for large transfers, one at a time)."""
        return ThreadedConnection("127.0.0.1", self.server.port)


async def bulk_put(ctx: Ctx, keys: list[str], body: bytes) -> None:
    """Upload ``keys`` (setup, not measured) with the phase concurrency."""
    assert ctx.s3 is not None
    s3 = ctx.s3
    import hashlib

    ph = hashlib.sha256(body).hexdigest()

    async def op(conn: Connection, i: int) -> Response:
        target, headers = s3.signed("PUT", f"/{BUCKET}/{keys[i]}", payload_hash=ph)
        return await conn.request("PUT", target, headers, body)

    r = await run_load(
        ctx.server, ctx.name, "setup", ctx.conn, op,
        max_ops=len(keys), seconds=600, concurrency=ctx.sizes.concurrency,
    )  # fmt: skip
    if r.errors or r.ops != len(keys):
        raise RuntimeError(f"setup PUT failed ({r.ops}/{len(keys)} ok): {r.error_sample}")


async def create_bucket(ctx: Ctx) -> None:
    """PUT the benchmark bucket (an existing one owned by us is fine)."""
    assert ctx.s3 is not None
    conn = ctx.conn()
    try:
        target, headers = ctx.s3.signed("PUT", f"/{BUCKET}")
        deadline = time.monotonic() + 30
        while True:
            resp = await conn.request("PUT", target, headers, b"")
            if resp.status == 200 or b"BucketAlreadyOwnedByYou" in resp.body:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"create bucket: HTTP {resp.status} {resp.body[:300]!r}")
            await asyncio.sleep(0.5)  # SeaweedFS needs a moment for its volume server
            target, headers = ctx.s3.signed("PUT", f"/{BUCKET}")
    finally:
        conn.close()


async def ensure_small(ctx: Ctx) -> None:
    """Make sure the 4 KiB objects ``g/00000000..`` exist (for GET/HEAD/list)."""
    if ctx.have_small:
        return
    if ctx.s3 is None:
        (ctx.big_file.parent / "obj4k").write_bytes(ctx.small_body)
    else:
        await bulk_put(ctx, [f"g/{i:08d}" for i in range(ctx.sizes.small_keys)], ctx.small_body)
    ctx.have_small = True


async def ensure_big(ctx: Ctx) -> None:
    """Make sure the large object ``big/src`` exists (nginx serves the file itself)."""
    if ctx.have_big or ctx.s3 is None:
        return
    conn = ctx.big_conn()
    try:
        resp = await ctx.s3.put_file(
            conn, f"/{BUCKET}/big/src", FileBody(str(ctx.big_file), ctx.sizes.large)
        )
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"large setup PUT: HTTP {resp.status} {resp.body[:300]!r}")
    ctx.have_big = True


def small_getter(ctx: Ctx, method: str) -> Op:
    """GET/HEAD of a random-ish 4 KiB object (UNSIGNED-PAYLOAD signature)."""
    n = ctx.sizes.small_keys
    if ctx.s3 is None:
        headers = {"Host": f"127.0.0.1:{ctx.server.port}"}

        async def plain(conn: Connection, i: int) -> Response:
            return await conn.request(method, "/obj4k", headers)

        return plain
    s3 = ctx.s3
    stride = 7919  # prime: spreads the sequence over all keys

    async def signed(conn: Connection, i: int) -> Response:
        target, headers = s3.signed(method, f"/{BUCKET}/g/{(i * stride) % n:08d}")
        return await conn.request(method, target, headers)

    return signed


async def phase_small_read(ctx: Ctx, method: str, phase: str) -> Result:
    await ensure_small(ctx)
    sz = ctx.sizes
    r = await run_load(
        ctx.server, ctx.name, phase, ctx.conn, small_getter(ctx, method),
        max_ops=sz.small_ops, seconds=sz.small_secs, concurrency=sz.concurrency,
        warmup_ops=sz.warmup_ops,
    )  # fmt: skip
    return r


async def phase_put4k(ctx: Ctx) -> Result:
    assert ctx.s3 is not None
    s3, body, sz = ctx.s3, ctx.small_body, ctx.sizes
    import hashlib

    ph = hashlib.sha256(body).hexdigest()
    run_id = f"{int(time.time() * 1000):x}"

    async def op(conn: Connection, i: int) -> Response:
        target, headers = s3.signed("PUT", f"/{BUCKET}/p/{run_id}/{i:08d}", payload_hash=ph)
        return await conn.request("PUT", target, headers, body)

    r = await run_load(
        ctx.server, ctx.name, "put4k", ctx.conn, op,
        max_ops=sz.small_ops, seconds=sz.small_secs, concurrency=sz.concurrency,
        warmup_ops=sz.warmup_ops, count_request_bytes=len(body),
    )  # fmt: skip
    r.extra["payload"] = "sha256-signed"
    return r


def list_op(ctx: Ctx, query: dict[str, str]) -> Op:
    assert ctx.s3 is not None
    s3 = ctx.s3

    async def op(conn: Connection, i: int) -> Response:
        target, headers = s3.signed("GET", f"/{BUCKET}", query)
        return await conn.request("GET", target, headers)

    return op


async def check_list(ctx: Ctx, op: Op, tag: bytes, expected: int) -> str:
    """Run one listing and check it returns ``expected`` ``tag`` elements."""
    conn = ctx.conn()
    try:
        resp = await op(conn, 0)
    finally:
        conn.close()
    found = resp.body.count(tag)
    if resp.status != 200 or found != expected:
        return (
            f"HTTP {resp.status}, {found} x {tag.decode()} (want {expected}): {resp.body[:200]!r}"
        )
    return ""


async def phase_list1000(ctx: Ctx) -> Result:
    await ensure_small(ctx)
    sz = ctx.sizes
    op = list_op(ctx, {"list-type": "2", "prefix": "g/", "max-keys": "1000"})
    want = min(1000, sz.small_keys)
    problem = await check_list(ctx, op, b"<Key>", want)
    r = await run_load(
        ctx.server, ctx.name, "list1000", ctx.conn, op,
        max_ops=sz.list_ops, seconds=sz.small_secs, concurrency=sz.list_concurrency,
        warmup_ops=min(50, sz.list_ops // 10),
    )  # fmt: skip
    r.extra["keys_per_page"] = want
    if problem:
        r.error_sample = problem
        r.errors += 1
    return r


async def phase_delim(ctx: Ctx) -> Result:
    sz = ctx.sizes
    keys = [
        f"d/p{p:03d}/k{k:04d}"
        for p in range(sz.delim_prefixes)
        for k in range(sz.delim_keys_per_prefix)
    ]
    t0 = time.perf_counter()
    await bulk_put(ctx, keys, b"d" * 16)
    setup_s = time.perf_counter() - t0
    op = list_op(ctx, {"list-type": "2", "prefix": "d/", "delimiter": "/"})
    problem = await check_list(ctx, op, b"<CommonPrefixes>", sz.delim_prefixes)
    r = await run_load(
        ctx.server, ctx.name, "delim", ctx.conn, op,
        max_ops=sz.delim_ops, seconds=sz.small_secs, concurrency=1, warmup_ops=5,
    )  # fmt: skip
    r.extra.update(keys=len(keys), common_prefixes=sz.delim_prefixes, setup_put_s=setup_s)
    if problem:
        r.error_sample = problem
        r.errors += 1
    return r


async def phase_get_large(ctx: Ctx) -> list[Result]:
    """Full GETs of the large object, then GETs of its middle half with ``Range``."""
    await ensure_big(ctx)
    sz = ctx.sizes
    size = sz.large
    lo, hi = size // 4, size // 4 + size // 2 - 1
    s3 = ctx.s3
    out = []
    for phase, rng in (("get256m", None), ("get256m_range", f"bytes={lo}-{hi}")):
        extra = [("Range", rng)] if rng else []
        if ctx.s3 is None:
            hdrs = {"Host": f"127.0.0.1:{ctx.server.port}", **dict(extra)}

            async def op(conn: Connection, i: int, hdrs: dict[str, str] = hdrs) -> Response:
                return await conn.request("GET", f"/{ctx.big_file.name}", hdrs, keep_body=False)

        else:

            async def op(
                conn: Connection, i: int, extra: list[tuple[str, str]] = extra
            ) -> Response:
                assert s3 is not None
                target, headers = s3.signed("GET", f"/{BUCKET}/big/src", extra=extra)
                return await conn.request("GET", target, headers, keep_body=False)

        r = await run_load(
            ctx.server, ctx.name, phase, ctx.big_conn, op,
            max_ops=sz.large_get_reps, seconds=sz.large_secs, concurrency=1, warmup_ops=1,
            expect=(206,) if rng else (200,),
        )  # fmt: skip
        want = (hi - lo + 1) if rng else size
        if r.ops and r.bytes != want * r.ops and not r.errors:
            r.errors += 1
            r.error_sample = f"got {r.bytes} bytes, want {want * r.ops}"
        r.extra["object_bytes"] = want
        out.append(r)
    return out


async def phase_put_large(ctx: Ctx) -> Result:
    assert ctx.s3 is not None
    s3, sz = ctx.s3, ctx.sizes
    body = FileBody(str(ctx.big_file), sz.large)
    ph = sha256_file(str(ctx.big_file)) if ctx.args.sign_large else UNSIGNED_PAYLOAD
    run_id = f"{int(time.time() * 1000):x}"

    async def op(conn: Connection, i: int) -> Response:
        return await s3.put_file(conn, f"/{BUCKET}/L/{run_id}/{i}", body, ph)

    r = await run_load(
        ctx.server, ctx.name, "put256m", ctx.big_conn, op,
        max_ops=sz.large_put_reps, seconds=sz.large_secs, concurrency=1,
        count_request_bytes=sz.large,
    )  # fmt: skip
    r.extra["payload"] = "sha256-signed" if ctx.args.sign_large else "UNSIGNED-PAYLOAD"
    r.extra["object_bytes"] = sz.large
    return r


# -- multipart uploads and server-side copies ---------------------------------------------


def xml_text(body: bytes, tag: str) -> str:
    """The text of the first ``<tag>`` element of an S3 XML response ("" if absent)."""
    m = re.search(rb"<" + tag.encode() + rb">([^<]*)</" + tag.encode() + rb">", body)
    return m.group(1).decode() if m else ""


def part_body(ctx: Ctx, number: int, part_size: int, total: int) -> FileBody:
    """Part ``number`` (1-based) of a ``total``-byte multipart upload in ``part_size`` parts:
    bytes of the big file from successive offsets (wrapping around), so parts differ."""
    span = ctx.sizes.large
    if part_size > span:
        raise ValueError(f"part size {part_size} is larger than the source file ({span})")
    size = min(part_size, total - (number - 1) * part_size)
    offset = min(((number - 1) * part_size) % span, span - size)
    return FileBody(str(ctx.big_file), size, offset)


async def mpu_create(ctx: Ctx, conn: Connection, key: str) -> str:
    """CreateMultipartUpload; returns the upload id."""
    assert ctx.s3 is not None
    target, headers = ctx.s3.signed("POST", f"/{BUCKET}/{key}", {"uploads": ""})
    resp = await conn.request("POST", target, headers, b"")
    upload_id = xml_text(resp.body, "UploadId")
    if resp.status != 200 or not upload_id:
        raise RuntimeError(f"CreateMultipartUpload: HTTP {resp.status} {resp.body[:300]!r}")
    return upload_id


async def mpu_upload_parts(
    ctx: Ctx, key: str, upload_id: str, total: int, part_size: int, inflight: int
) -> tuple[list[str], list[float]]:
    """UploadPart of ``total`` bytes in ``part_size`` parts, ``inflight`` at a time (blocking
    sockets in worker threads, bodies sent with ``sendfile``); returns (ETags, latencies)."""
    assert ctx.s3 is not None
    s3 = ctx.s3
    count = -(-total // part_size)
    etags = [""] * count
    lats: list[float] = []
    numbers = iter(range(1, count + 1))

    async def worker() -> None:
        conn = ctx.big_conn()
        try:
            for n in numbers:
                query = {"partNumber": str(n), "uploadId": upload_id}
                target, headers = s3.signed("PUT", f"/{BUCKET}/{key}", query)
                t0 = time.perf_counter()
                body = part_body(ctx, n, part_size, total)
                resp = await conn.request("PUT", target, headers, body)
                lats.append(time.perf_counter() - t0)
                etag = resp.headers.get("etag", "")
                if resp.status != 200 or not etag:
                    raise RuntimeError(f"UploadPart {n}: HTTP {resp.status} {resp.body[:300]!r}")
                etags[n - 1] = etag
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(min(inflight, count))))
    return etags, lats


def complete_body(etags: list[str]) -> bytes:
    parts = "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        for n, etag in enumerate(etags, start=1)
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()


async def mpu_complete(
    ctx: Ctx, conn: Connection, key: str, upload_id: str, etags: list[str]
) -> Response:
    """CompleteMultipartUpload (payload SHA-256 signed); raises unless it succeeded."""
    assert ctx.s3 is not None
    import hashlib

    body = complete_body(etags)
    target, headers = ctx.s3.signed(
        "POST", f"/{BUCKET}/{key}", {"uploadId": upload_id},
        payload_hash=hashlib.sha256(body).hexdigest(),
    )  # fmt: skip
    resp = await conn.request("POST", target, headers, body)
    # S3 may answer 200 and still report an error in the body
    if resp.status != 200 or b"<CompleteMultipartUploadResult" not in resp.body:
        raise RuntimeError(f"CompleteMultipartUpload: HTTP {resp.status} {resp.body[:300]!r}")
    return resp


async def head_object(ctx: Ctx, conn: Connection, key: str) -> Response:
    assert ctx.s3 is not None
    target, headers = ctx.s3.signed("HEAD", f"/{BUCKET}/{key}")
    return await conn.request("HEAD", target, headers)


async def check_object(ctx: Ctx, conn: Connection, key: str, size: int, parts: int = 0) -> None:
    """HEAD ``key``: it must have ``size`` bytes (and a ``-parts`` ETag when given)."""
    resp = await head_object(ctx, conn, key)
    length = int(resp.headers.get("content-length", "-1"))
    etag = resp.headers.get("etag", "")
    if resp.status != 200 or length != size or (parts and not etag.endswith(f'-{parts}"')):
        raise RuntimeError(
            f"HEAD {key}: HTTP {resp.status}, {length} bytes (want {size}), ETag {etag}"
            + (f" (want -{parts})" if parts else "")
        )


async def multipart_upload(
    ctx: Ctx, key: str, total: int, part_size: int, inflight: int
) -> list[float]:
    """A whole multipart upload of ``total`` bytes; returns the part latencies."""
    conn = ctx.conn()
    try:
        upload_id = await mpu_create(ctx, conn, key)
        etags, lats = await mpu_upload_parts(ctx, key, upload_id, total, part_size, inflight)
        await mpu_complete(ctx, conn, key, upload_id, etags)
    finally:
        conn.close()
    return lats


async def phase_mpu(ctx: Ctx) -> Result:
    """Multipart uploads of ``mpu_total`` bytes in ``mpu_part`` parts, ``mpu_inflight`` at a
    time: create + parts + complete, timed and CPU-measured as a whole."""
    sz = ctx.sizes
    count = -(-sz.mpu_total // sz.mpu_part)
    res = Result(server=ctx.name, phase="mpu1g")
    run_id = f"{int(time.time() * 1000):x}"
    lats: list[float] = []
    per_upload: list[float] = []
    cpu0, cli0 = ctx.server.cpu_seconds(), time.process_time()
    for rep in range(sz.mpu_reps):
        t0 = time.perf_counter()
        lats += await multipart_upload(
            ctx, f"M/{run_id}/{rep}", sz.mpu_total, sz.mpu_part, sz.mpu_inflight
        )
        per_upload.append(time.perf_counter() - t0)
    cpu1, cli1 = ctx.server.cpu_seconds(), time.process_time()
    conn = ctx.conn()
    try:
        await check_object(ctx, conn, f"M/{run_id}/0", sz.mpu_total, count)
    finally:
        conn.close()
    lats.sort()
    res.ops, res.seconds, res.bytes = len(lats), sum(per_upload), sz.mpu_total * sz.mpu_reps
    res.ops_s = res.ops / res.seconds
    res.mb_s = res.bytes / MB / res.seconds
    res.p50_ms, res.p99_ms = pct(lats, 0.5) * 1000, pct(lats, 0.99) * 1000
    res.server_cpu_s = cpu1 - cpu0
    res.cpu_us_per_op = res.server_cpu_s / res.ops * 1e6
    res.cpu_s_per_gb = res.server_cpu_s / (res.bytes / GB)
    res.client_cpu_us_per_op = (cli1 - cli0) / res.ops * 1e6
    res.extra.update(
        object_bytes=sz.mpu_total, part_bytes=sz.mpu_part, parts=count,
        inflight=sz.mpu_inflight, uploads=sz.mpu_reps,
        upload_s=per_upload, ops_are="UploadPart requests (latency columns are per part)",
    )  # fmt: skip
    return res


async def phase_complete(ctx: Ctx) -> Result:
    """CompleteMultipartUpload of ``complete_parts`` parts uploaded beforehand (not timed);
    only the Complete call is timed, ``complete_reps`` times (fresh upload each time)."""
    sz = ctx.sizes
    res = Result(server=ctx.name, phase="complete64")
    run_id = f"{int(time.time() * 1000):x}"
    times: list[float] = []
    cpu = 0.0
    conn = ctx.conn()
    try:
        for rep in range(sz.complete_reps):
            key = f"C/{run_id}/{rep}"
            upload_id = await mpu_create(ctx, conn, key)
            etags, _ = await mpu_upload_parts(
                ctx, key, upload_id, sz.complete_parts * sz.complete_part_size,
                sz.complete_part_size, sz.mpu_inflight,
            )  # fmt: skip
            await asyncio.sleep(0.2)  # let the server settle after the uploads
            cpu0 = ctx.server.cpu_seconds()
            t0 = time.perf_counter()
            await mpu_complete(ctx, conn, key, upload_id, etags)
            times.append(time.perf_counter() - t0)
            cpu += ctx.server.cpu_seconds() - cpu0
        total = sz.complete_parts * sz.complete_part_size
        await check_object(ctx, conn, f"C/{run_id}/0", total, sz.complete_parts)
    finally:
        conn.close()
    res.ops, res.seconds = len(times), sum(times)
    res.ops_s = res.ops / res.seconds
    res.p50_ms = statistics.median(times) * 1000
    res.p99_ms = max(times) * 1000
    res.server_cpu_s = cpu
    res.cpu_us_per_op = cpu / res.ops * 1e6
    res.extra.update(
        parts=sz.complete_parts, part_bytes=sz.complete_part_size,
        runs_ms=[t * 1000 for t in times], p50_is="median", p99_is="max",
    )  # fmt: skip
    return res


async def phase_copy(ctx: Ctx) -> list[Result]:
    """Server-side CopyObject of a ``copy_size`` object, ``copy_reps`` times to new keys:
    ``copy1g`` from an object stored with one PUT, ``copy1g_mpu`` from one uploaded in
    ``mpu_part`` parts (the form large objects take when clients upload them)."""
    sz = ctx.sizes
    assert ctx.s3 is not None
    s3 = ctx.s3
    run_id = f"{int(time.time() * 1000):x}"
    conn = ctx.big_conn()
    try:
        repeat = max(1, sz.copy_size // sz.large)
        single = f"X/{run_id}/single"
        body = FileBody(str(ctx.big_file), min(sz.large, sz.copy_size), repeat=repeat)
        resp = await s3.put_file(conn, f"/{BUCKET}/{single}", body)
        if resp.status != 200:
            raise RuntimeError(f"copy source PUT: HTTP {resp.status} {resp.body[:300]!r}")
    finally:
        conn.close()
    size = min(sz.large, sz.copy_size) * repeat
    multi = f"X/{run_id}/multi"
    await multipart_upload(ctx, multi, size, sz.mpu_part, sz.mpu_inflight)
    out = []
    for phase, source in (("copy1g", single), ("copy1g_mpu", multi)):
        res = Result(server=ctx.name, phase=phase)
        times: list[float] = []
        conn = ctx.big_conn()
        try:
            cpu0, cli0 = ctx.server.cpu_seconds(), time.process_time()
            for rep in range(sz.copy_reps):
                dest = f"{source}-copy{rep}"
                target, headers = s3.signed(
                    "PUT", f"/{BUCKET}/{dest}",
                    signed_extra={"x-amz-copy-source": encode_path(f"/{BUCKET}/{source}")},
                )  # fmt: skip
                t0 = time.perf_counter()
                resp = await conn.request("PUT", target, headers)
                times.append(time.perf_counter() - t0)
                if resp.status != 200 or b"<CopyObjectResult" not in resp.body:
                    res.errors += 1
                    res.error_sample = f"HTTP {resp.status}: {resp.body[:300]!r}"
                    break
            cpu1, cli1 = ctx.server.cpu_seconds(), time.process_time()
            if not res.errors:
                await check_object(ctx, conn, f"{source}-copy0", size)
        finally:
            conn.close()
        if not res.errors:
            res.ops, res.seconds, res.bytes = len(times), sum(times), size * len(times)
            res.ops_s = res.ops / res.seconds
            res.mb_s = res.bytes / MB / res.seconds
            res.p50_ms = statistics.median(times) * 1000
            res.p99_ms = max(times) * 1000
            res.server_cpu_s = cpu1 - cpu0
            res.cpu_us_per_op = res.server_cpu_s / res.ops * 1e6
            res.cpu_s_per_gb = res.server_cpu_s / (res.bytes / GB)
            res.client_cpu_us_per_op = (cli1 - cli0) / res.ops * 1e6
        res.extra.update(
            object_bytes=size, source="one PUT" if source == single else
            f"{-(-size // sz.mpu_part)} parts of {sz.mpu_part // MiB} MiB",
            runs_ms=[t * 1000 for t in times], p50_is="median", p99_is="max",
            mb_s_is="logical bytes copied per second",
        )  # fmt: skip
        out.append(res)
    return out


async def sample_rss(server: Server, stop: asyncio.Event, peak: list[int]) -> None:
    """Record the peak RSS of the server tree every 50 ms until ``stop`` is set."""
    while not stop.is_set():
        peak[0] = max(peak[0], server.rss_bytes())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)


async def phase_mem(ctx: Ctx) -> Result:
    """RSS growth of the server across one big upload and one big download."""
    assert ctx.s3 is not None
    sz = ctx.sizes
    repeat = max(1, sz.mem_total // sz.large)
    body = FileBody(str(ctx.big_file), sz.large, repeat=repeat)
    total = body.length
    res = Result(server=ctx.name, phase="mem")
    base = ctx.server.rss_bytes()
    conn = ctx.big_conn()
    cpu0 = ctx.server.cpu_seconds()
    peaks: dict[str, int] = {}
    t_all = 0.0
    try:
        for step in ("upload", "download"):
            stop, peak = asyncio.Event(), [base]
            sampler = asyncio.create_task(sample_rss(ctx.server, stop, peak))
            t0 = time.perf_counter()
            if step == "upload":
                resp = await ctx.s3.put_file(conn, f"/{BUCKET}/mem/obj", body)
            else:
                target, headers = ctx.s3.signed("GET", f"/{BUCKET}/mem/obj")
                resp = await conn.request("GET", target, headers, keep_body=False)
            dt = time.perf_counter() - t0
            t_all += dt
            stop.set()
            await sampler
            peaks[step] = peak[0]
            res.extra[f"{step}_mb_s"] = total / MB / dt
            if resp.status != 200 or (step == "download" and resp.body_len != total):
                res.errors += 1
                res.error_sample = f"{step}: HTTP {resp.status} {resp.body[:200]!r}"
    finally:
        conn.close()
    res.server_cpu_s = ctx.server.cpu_seconds() - cpu0
    res.ops, res.bytes, res.seconds = 2, 2 * total, t_all
    res.mb_s = res.bytes / MB / t_all if t_all else 0.0
    res.cpu_s_per_gb = res.server_cpu_s / (res.bytes / GB)
    res.extra.update(
        object_bytes=total,
        rss_before_mib=base / MiB,
        rss_peak_upload_mib=peaks.get("upload", base) / MiB,
        rss_peak_download_mib=peaks.get("download", base) / MiB,
        rss_growth_mib=(max(peaks.values(), default=base) - base) / MiB,
    )
    return res


async def phase_client(ctx: Ctx) -> list[Result]:
    """Client overhead check: raw client vs aiohttp.ClientSession on nginx 4 KiB GETs."""
    import aiohttp

    await ensure_small(ctx)
    sz = ctx.sizes
    raw = await run_load(
        ctx.server, "client-raw", "client", ctx.conn, small_getter(ctx, "GET"),
        max_ops=sz.small_ops, seconds=sz.small_secs, concurrency=sz.concurrency,
        warmup_ops=sz.warmup_ops,
    )  # fmt: skip
    res = Result(server="client-aiohttp", phase="client")
    url = f"http://127.0.0.1:{ctx.server.port}/obj4k"
    connector = aiohttp.TCPConnector(limit=sz.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + sz.small_secs
        counter = itertools.count()
        lats: list[float] = []

        async def worker() -> None:
            while next(counter) < sz.small_ops and time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.get(url) as resp:
                    await resp.read()
                lats.append(time.perf_counter() - t0)

        cpu0, cli0, t0 = ctx.server.cpu_seconds(), time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(sz.concurrency)))
        elapsed = time.perf_counter() - t0
        res.server_cpu_s = ctx.server.cpu_seconds() - cpu0
        cli = time.process_time() - cli0
    lats.sort()
    res.ops, res.seconds = len(lats), elapsed
    res.ops_s = res.ops / elapsed
    res.p50_ms, res.p99_ms = pct(lats, 0.5) * 1000, pct(lats, 0.99) * 1000
    res.cpu_us_per_op = res.server_cpu_s / max(1, res.ops) * 1e6
    res.client_cpu_us_per_op = cli / max(1, res.ops) * 1e6
    return [raw, res]


# ----------------------------------------------------------------------------------------
# orchestration
# ----------------------------------------------------------------------------------------


def measure_dd(workdir: Path, size: int) -> dict[str, Any]:
    """The disk's own sequential durable write rate (median of three dd runs), in MB/s."""
    target = workdir / "dd.bin"
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        proc = subprocess.run(
            ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size // MiB}",
             "conv=fdatasync"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        dt = time.perf_counter() - t0
        target.unlink(missing_ok=True)
        if proc.returncode != 0:
            return {"error": proc.stderr.strip()[-300:]}
        m = re.search(r"copied, ([\d.]+) s", proc.stderr)
        secs = float(m.group(1)) if m else dt
        runs.append(size / MB / secs)
    return {"mb_s": statistics.median(runs), "runs_mb_s": runs, "bytes": size, "dir": str(workdir)}


def measure_md5(size: int) -> dict[str, Any]:
    """MD5's rate on one otherwise idle core (median of three passes over ``size`` bytes).

    MD5 is one serial chain per stream, so this is the ceiling for any single PUT whose
    ETag is its MD5, whatever the server: the PUT-vs-dd verdict reads against it.
    """
    block = os.urandom(MiB)
    runs = []
    for _ in range(3):
        digest = hashlib.md5()
        t0 = time.perf_counter()
        for _ in range(size // MiB):
            digest.update(block)
        runs.append(size / MB / (time.perf_counter() - t0))
    return {"mb_s": statistics.median(runs), "runs_mb_s": runs, "bytes": size}


async def bench_server(
    name: str, ctx: Ctx, phases: list[str], results: list[Result], log: Callable[[str], None]
) -> None:
    """Run every requested phase that applies to ``name`` against one started server."""
    if ctx.s3 is not None:
        await create_bucket(ctx)
    for phase in phases:
        if phase not in SERVER_PHASES[name] or phase == "small_w1":
            continue
        log(f"  {name}: {phase} ...")
        t0 = time.perf_counter()
        try:
            out: Result | list[Result]
            if phase == "get4k":
                out = await phase_small_read(ctx, "GET", phase)
            elif phase == "head4k":
                out = await phase_small_read(ctx, "HEAD", phase)
            elif phase == "put4k":
                out = await phase_put4k(ctx)
            elif phase == "list1000":
                out = await phase_list1000(ctx)
            elif phase == "delim":
                out = await phase_delim(ctx)
            elif phase == "get256m":
                out = await phase_get_large(ctx)
            elif phase == "put256m":
                out = await phase_put_large(ctx)
            elif phase == "mpu1g":
                out = await phase_mpu(ctx)
            elif phase == "complete64":
                out = await phase_complete(ctx)
            elif phase == "copy1g":
                out = await phase_copy(ctx)
            elif phase == "mem":
                out = await phase_mem(ctx)
            elif phase == "client":
                out = await phase_client(ctx)
            else:
                continue
        except Exception as exc:
            log(f"  {name}: {phase} FAILED: {exc!r}")
            if ctx.args.verbose:
                traceback.print_exc()
            results.append(Result(ctx.name, phase, errors=1, error_sample=repr(exc)))
            continue
        for r in out if isinstance(out, list) else [out]:
            if name == "seaweedfs":
                r.extra.setdefault("fsync", ctx.server.meta.get("fsync"))
            results.append(r)
            log(f"    {fmt_row(r)}")
        log(f"    ({time.perf_counter() - t0:.1f}s)")


def start(name: str, workdir: Path, www: Path, args: argparse.Namespace, workers: int) -> Server:
    if name == "nginx":
        return start_nginx(workdir, www)
    if name == "seaweedfs":
        return start_seaweedfs(workdir, ACCESS_KEY, SECRET_KEY, BUCKET, fsync=args.seaweed_fsync)
    return start_cargohold(workdir, ACCESS_KEY, SECRET_KEY, workers=workers)


async def main_async(args: argparse.Namespace) -> int:
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.concurrency:
        sizes.concurrency = args.concurrency
    phases = [p.strip() for p in args.phases.split(",")] if args.phases else list(ALL_PHASES)
    bad = [p for p in phases if p not in ALL_PHASES + OPTIONAL_PHASES]
    if bad:
        print(f"unknown phase(s): {bad}; known: {ALL_PHASES + OPTIONAL_PHASES}", file=sys.stderr)
        return 2
    servers = [s.strip() for s in args.only.split(",")] if args.only else list(ALL_SERVERS)
    bad = [s for s in servers if s not in ALL_SERVERS]
    if bad:
        print(f"unknown server(s): {bad}; known: {ALL_SERVERS}", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        print(msg, flush=True)

    base = Path(args.tmp_dir) if args.tmp_dir else None
    if base:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="cargohold-bench-", dir=base))
    os.chmod(workdir, 0o755)
    results: list[Result] = []
    skipped: dict[str, str] = {}
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "phases": phases,
        "servers": servers,
        "sizes": asdict(sizes),
        "host": {"cpus": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version()},
        "units": {"MB": MB, "GB": GB},
        "workdir": str(workdir),
        "server_meta": {},
    }
    t_start = time.perf_counter()
    try:
        www = workdir / "www"
        www.mkdir()
        big = www / "big.bin"
        log(f"workdir {workdir}; writing {sizes.large // MiB} MiB source file ...")
        make_random_file(str(big), sizes.large)
        for p in (workdir, www, big):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        small_body = os.urandom(4096)
        if "put256m" in phases and "cargohold" in servers:
            log("dd baseline ...")
            meta["dd"] = measure_dd(workdir, sizes.large)
            log(f"  dd conv=fdatasync: {meta['dd']}")
            meta["md5"] = measure_md5(sizes.large)
            log(f"  MD5 on one core: {meta['md5']}")
        # Each server in its default configuration: cargohold runs one worker per core (its
        # default), as SeaweedFS's Go runtime uses every core; a one-worker run of the
        # small reads is reported beside it.
        cores = os.cpu_count() or 1
        runs: list[tuple[str, str, int]] = [
            (s, s, cores if s == "cargohold" else 1)
            for s in servers if set(phases) & SERVER_PHASES[s]
        ]
        if "cargohold" in servers and "small_w1" in phases:
            runs.append(("cargohold", "cargohold-w1", 1))
        for kind, label, workers in runs:
            run_phases = phases if label != "cargohold-w1" else ["get4k", "head4k"]
            if label == "cargohold" and phases == ["small_w1"]:
                continue
            log(f"== {label}: starting")
            try:
                srv = start(kind, workdir, www, args, workers)
            except ServerUnavailable as exc:
                log(f"== {label}: SKIPPED ({exc})")
                skipped[label] = str(exc)
                continue
            meta["server_meta"][label] = srv.meta
            s3 = (
                None if kind == "nginx" else S3Client("127.0.0.1", srv.port, ACCESS_KEY, SECRET_KEY)
            )
            ctx = Ctx(label, srv, sizes, workdir, big, small_body, s3, args)
            try:
                await bench_server(kind, ctx, run_phases, results, log)
            finally:
                srv.stop()
                if kind == "seaweedfs":
                    cleanup_seaweed_sockets(srv)
                expected_rc = (0, -15, -9) if kind == "seaweedfs" else (0, -15)
                if srv.proc is not None and srv.proc.returncode not in (*expected_rc, None):
                    log(f"== {label}: exit code {srv.proc.returncode}; log: {srv.log}")
    finally:
        meta["elapsed_s"] = time.perf_counter() - t_start
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")
    targets = evaluate(results, meta, sizes)
    report(results, targets, skipped, meta)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "meta": meta,
        "skipped": skipped,
        "results": [asdict(r) for r in results],
        "targets": [asdict(t) for t in targets],
    }
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    log(f"\nwrote {out}  (total {meta['elapsed_s']:.0f}s)")
    return 0


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


# ----------------------------------------------------------------------------------------
# targets and report
# ----------------------------------------------------------------------------------------


def find(results: list[Result], server: str, phase: str) -> Result | None:
    """The error-free result for (server, phase), if any."""
    for r in results:
        if r.server == server and r.phase == phase and not r.errors and r.ops:
            return r
    return None


def ratio_target(
    name: str, num: Result | None, den: Result | None, attr: str, op: str, limit: float,
    unit: str = "x",
) -> Target:  # fmt: skip
    """``num.attr / den.attr`` compared (``>=`` or ``<=``) against ``limit``."""
    if num is None or den is None or not getattr(den, attr):
        missing = "cargohold" if num is None else "peer"
        return Target(name, None, f"{op} {limit:g}{unit}", "N/A", f"no {missing} result")
    value = getattr(num, attr) / getattr(den, attr)
    ok = value >= limit if op == ">=" else value <= limit
    detail = f"{getattr(num, attr):.4g} / {getattr(den, attr):.4g} ({attr})"
    return Target(name, value, f"{op} {limit:g}{unit}", "PASS" if ok else "FAIL", detail)


def size_label(n: int) -> str:
    """``1 GiB`` or ``128 MiB``."""
    return f"{n // GiB} GiB" if n % GiB == 0 else f"{n // MiB} MiB"


def evaluate(results: list[Result], meta: dict[str, Any], sizes: Sizes) -> list[Target]:
    """Compute the issue's targets from the results."""
    c = "cargohold"
    big = f"{sizes.large // MiB} MiB"
    t = [
        ratio_target("4 KiB GET ops/s vs SeaweedFS", find(results, c, "get4k"),
                     find(results, "seaweedfs", "get4k"), "ops_s", ">=", 2),
        ratio_target("4 KiB HEAD ops/s vs SeaweedFS", find(results, c, "head4k"),
                     find(results, "seaweedfs", "head4k"), "ops_s", ">=", 2),
    ]  # fmt: skip
    g = find(results, c, "get4k")
    t.append(
        Target("4 KiB GET server CPU per op (µs)", g.cpu_us_per_op, "<= 150 µs",
               "PASS" if g.cpu_us_per_op <= 150 else "FAIL")
        if g else Target("4 KiB GET server CPU per op (µs)", None, "<= 150 µs", "N/A", "no result")
    )  # fmt: skip
    t += [
        ratio_target("4 KiB PUT ops/s vs SeaweedFS", find(results, c, "put4k"),
                     find(results, "seaweedfs", "put4k"), "ops_s", ">=", 1.5),
        ratio_target(f"{big} GET MB/s vs nginx", find(results, c, "get256m"),
                     find(results, "nginx", "get256m"), "mb_s", ">=", 0.8),
        ratio_target(f"{big} ranged GET MB/s vs nginx", find(results, c, "get256m_range"),
                     find(results, "nginx", "get256m_range"), "mb_s", ">=", 0.8),
        ratio_target(f"{big} PUT server CPU/GB vs SeaweedFS", find(results, c, "put256m"),
                     find(results, "seaweedfs", "put256m"), "cpu_s_per_gb", "<=", 1 / 3),
    ]  # fmt: skip
    p = find(results, c, "put256m")
    dd = meta.get("dd", {}).get("mb_s")
    name = f"{big} PUT MB/s vs dd conv=fdatasync"
    if p and dd:
        v = p.mb_s / dd
        detail = f"{p.mb_s:.4g} / {dd:.4g} MB/s"
        md5 = meta.get("md5", {}).get("mb_s")
        if md5:
            detail += (f"; MD5 alone on one idle core: {md5:.4g} MB/s = {md5 / dd:.2f}x dd,"
                       f" the single-stream ceiling (PUT at {p.mb_s / md5:.2f}x of it)")
        t.append(Target(name, v, ">= 0.8x", "PASS" if v >= 0.8 else "FAIL", detail))
    else:
        t.append(Target(name, None, ">= 0.8x", "N/A", "no result"))
    t.append(
        ratio_target("1000-key list page server CPU vs SeaweedFS", find(results, c, "list1000"),
                     find(results, "seaweedfs", "list1000"), "cpu_us_per_op", "<=", 0.5)
    )  # fmt: skip
    mp = f"{size_label(sizes.mpu_total)} multipart upload"
    t += [
        ratio_target(f"{mp} MB/s vs SeaweedFS", find(results, c, "mpu1g"),
                     find(results, "seaweedfs", "mpu1g"), "mb_s", ">=", 1.5),
        ratio_target(f"{mp} server CPU/GB vs SeaweedFS", find(results, c, "mpu1g"),
                     find(results, "seaweedfs", "mpu1g"), "cpu_s_per_gb", "<=", 1 / 3),
    ]  # fmt: skip
    cm = find(results, c, "complete64")
    cs = find(results, "seaweedfs", "complete64")
    name = f"CompleteMultipartUpload of {sizes.complete_parts} parts p50 ms"
    t.append(
        Target(name, cm.p50_ms, "<= 20 ms", "PASS" if cm.p50_ms <= 20 else "FAIL",
               f"max {cm.p99_ms:.1f} ms" + (f"; SeaweedFS p50 {cs.p50_ms:.1f} ms" if cs else ""))
        if cm else Target(name, None, "<= 20 ms", "N/A", "no result")
    )  # fmt: skip
    for phase, what in (("copy1g", "one-PUT"), ("copy1g_mpu", "multipart")):
        cc = find(results, c, phase)
        cs = find(results, "seaweedfs", phase)
        name = f"{size_label(sizes.copy_size)} CopyObject, {what} source, p50 ms"
        peer = f"; SeaweedFS p50 {cs.p50_ms:.0f} ms" if cs else ""
        t.append(
            Target(name, cc.p50_ms, "< 1000 ms", "PASS" if cc.p50_ms < 1000 else "FAIL",
                   f"max {cc.p99_ms:.0f} ms{peer}")
            if cc else Target(name, None, "< 1000 ms", "N/A", "no result")
        )  # fmt: skip
    d = find(results, c, "delim")
    t.append(
        Target("delimiter list (100 prefixes) p50 ms", d.p50_ms if d else None, "report",
               "INFO" if d else "N/A",
               f"{d.extra.get('keys')} keys, p99 {d.p99_ms:.2f} ms" if d else "no result")
    )  # fmt: skip
    m = find(results, c, "mem")
    mem_name = f"RSS growth during {sizes.mem_total // MiB} MiB up+download (MiB)"
    if m:
        v = m.extra["rss_growth_mib"]
        ok = v <= MEM_GROWTH_LIMIT_MIB
        t.append(Target(mem_name, v, f"<= {MEM_GROWTH_LIMIT_MIB:g} MiB", "PASS" if ok else "FAIL",
                        f"before {m.extra['rss_before_mib']:.1f} MiB"))  # fmt: skip
    else:
        t.append(Target(mem_name, None, f"<= {MEM_GROWTH_LIMIT_MIB:g} MiB", "N/A", "no result"))
    w1 = find(results, "cargohold-w1", "get4k")
    if w1:
        detail = f"default workers: {g.ops_s:.0f} ops/s" if g else ""
        t.append(Target("4 KiB GET ops/s with --workers 1", w1.ops_s, "report", "INFO", detail))
    return t


def fmt_row(r: Result) -> str:
    """One human-readable line for a result."""
    if r.errors and not r.ops:
        return f"{r.server:<14} {r.phase:<14} ERROR {r.error_sample[:150]}"
    s = (
        f"{r.server:<14} {r.phase:<14} {r.ops:>7} {r.ops_s:>10.1f} {r.mb_s:>9.1f} "
        f"{r.p50_ms:>9.3f} {r.p99_ms:>9.3f} {r.cpu_us_per_op:>10.1f} {r.cpu_s_per_gb:>8.3f} "
        f"{r.client_cpu_us_per_op:>8.1f}"
    )
    if r.errors:
        s += f"  errors={r.errors} {r.error_sample[:120]}"
    return s


HEADER = (
    f"{'server':<14} {'phase':<14} {'ops':>7} {'ops/s':>10} {'MB/s':>9} {'p50 ms':>9} "
    f"{'p99 ms':>9} {'srvCPU µs':>10} {'CPU s/GB':>8} {'cli µs':>8}"
)


def report(
    results: list[Result], targets: list[Target], skipped: dict[str, str], meta: dict[str, Any]
) -> None:
    """Print the results table and the targets with PASS/FAIL."""
    print("\nResults (MB = 10^6 bytes; srvCPU = server CPU per op; cli = client CPU per op)")
    print(HEADER)
    print("-" * len(HEADER))
    for r in results:
        print(fmt_row(r))
        if r.phase == "mem" and r.ops:
            e = r.extra
            print(
                f"{'':<29} RSS before {e['rss_before_mib']:.1f} MiB, peak upload "
                f"{e['rss_peak_upload_mib']:.1f} MiB, peak download "
                f"{e['rss_peak_download_mib']:.1f} MiB"
            )
    if "dd" in meta:
        print(f"\ndd conv=fdatasync baseline: {meta['dd']}")
    if "md5" in meta:
        print(f"MD5 on one core: {meta['md5']}")
    sf = meta["server_meta"].get("seaweedfs")
    if sf:
        print(f"SeaweedFS {sf.get('version', '')}; bucket fsync configured: {sf.get('fsync')}")
    for name, why in skipped.items():
        print(f"SKIPPED {name}: {why}")
    print("\nTargets")
    for t in targets:
        v = "-" if t.measured is None else f"{t.measured:.3g}"
        print(f"  [{t.verdict:<4}] {t.name:<48} {v:>9}  (target {t.threshold})  {t.detail}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts/sizes (about a minute)")
    ap.add_argument("--only", default="", help=f"comma list of servers from {ALL_SERVERS}")
    ap.add_argument(
        "--phases", default="",
        help=f"comma list from {ALL_PHASES + OPTIONAL_PHASES} (default: all but 'client')",
    )  # fmt: skip
    ap.add_argument("--concurrency", type=int, default=0, help="workers for small ops (32)")
    ap.add_argument("--out", default=str(here / "results/latest.json"), help="JSON output")
    ap.add_argument("--tmp-dir", default="", help="parent of the temp work dir (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the temp work dir and logs")
    ap.add_argument(
        "--no-seaweed-fsync", dest="seaweed_fsync", action="store_false",
        help="do not configure SeaweedFS to fsync the bench bucket",
    )  # fmt: skip
    ap.add_argument(
        "--sign-large", action="store_true",
        help="sign large PUT payloads with SHA-256 (default UNSIGNED-PAYLOAD)",
    )  # fmt: skip
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks on failures")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
