"""Receiving an object body: stream it to a new blob while verifying everything.

Shared by PutObject and UploadPart. The body is hashed (MD5 for the ETag, plus any flexible
checksum asked for) as it streams to a temp file; the signature layer verifies payload
hashes and chunk signatures as it goes. Only when every check has passed does the blob
become durable and get an id; on any failure the temp file is removed and nothing is left.

An SSE-C body is sealed on its way to the blob (:class:`cargohold.sse.streams.SealingWriter`):
Content-MD5 and the checksums are still verified against the plaintext, and the ETag is the
MD5 of the stored ciphertext (S3's SSE-C ETags are not the MD5 of the data). It is never
kept inline: the metadata store must not hold plaintext.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from cargohold import checksums, errors
from cargohold.handlers.context import Context
from cargohold.sse.chunks import ObjectCipher
from cargohold.sse.streams import SealingWriter
from cargohold.store.blobs import BlobWriter

# Bodies up to this size are kept in memory and stored inline in the metadata row: their
# PUT then costs one share of a group commit instead of a file, a rename and two fsyncs
# (~700 µs of CPU and ~1.5 ms on this kind of VM).
INLINE_MAX = 64 * 1024


@dataclass(frozen=True)
class Received:
    blob_id: str  # "" when the bytes are inline (or the body was empty)
    size: int
    md5_hex: str  # of the plaintext
    checksums: dict[str, str]  # algorithm -> base64, every checksum computed
    inline: bytes | None = None
    etag: str = ""  # the ETag the bytes get: md5_hex, or the ciphertext's MD5 for SSE-C


async def receive_body(ctx: Context, max_size: int, also_compute: str = "",
                       allow_inline: bool = True, cipher: ObjectCipher | None = None,
                       part_number: int = 0) -> Received:
    """Receive the request body, verified; raise an S3 error on any mismatch.

    Small bodies (``allow_inline``) come back as bytes for the metadata store; others are
    streamed into a durable blob. ``also_compute`` names a checksum algorithm to compute
    even if the client sent none (a multipart upload created with one needs it for every
    part). With ``cipher`` (SSE-C) the blob is sealed, its chunks bound to ``part_number``.
    """
    if ctx.content_length is None:
        raise errors.MissingContentLength()
    if ctx.content_length > max_size:
        raise errors.EntityTooLarge(ProposedSize=str(ctx.content_length),
                                    MaxSizeAllowed=str(max_size))
    # Before the first body byte is read: a client that sent "Expect: 100-continue" is
    # refused without sending the body.
    await ctx.services.blobs.check_room(ctx.content_length)
    md5_header = ctx.headers.get("Content-MD5")
    expected_md5 = checksums.parse_content_md5(md5_header) if md5_header is not None else None
    trailer_names = (ctx.headers.get("x-amz-trailer", "").split(",")
                     if ctx.auth.payload_mode.has_trailer else [])
    plan = checksums.ChecksumPlan(ctx.headers, trailer_names, also_compute=also_compute)
    md5 = hashlib.md5(usedforsecurity=False)
    if allow_inline and cipher is None and ctx.content_length <= INLINE_MAX:
        return await _receive_inline(ctx, plan, md5, expected_md5)
    # A signed payload's SHA-256 is computed with the others in the writer's thread.
    sha256 = ctx.body.detach_sha256()
    hashers = [md5, *plan.hashers.values(), *([sha256] if sha256 is not None else [])]
    stored_md5 = md5
    writer: BlobWriter | SealingWriter
    if cipher is None:
        writer = ctx.services.blobs.open_writer(hashers)
    else:
        stored_md5 = hashlib.md5(usedforsecurity=False)
        writer = SealingWriter(ctx.services.blobs,
                               cipher.new_blob(part_number, ctx.content_length),
                               hashers, [stored_md5])
    size = 0
    try:
        async for chunk in ctx.body.chunks():
            size += len(chunk)
            if size > ctx.content_length:
                raise errors.InvalidRequest("The body is longer than its declared length.")
            await writer.write(chunk)
        plan.add_trailer(ctx.body.trailers)
        if size != ctx.content_length:
            raise errors.IncompleteBody()
        # The writer hashes in its worker thread as it flushes; digests are final at commit.
        blob_id = await writer.commit()
    except BaseException:
        await writer.abort()
        raise
    try:
        ctx.body.check_sha256()
        computed = _verify_digests(plan, md5, expected_md5)
    except BaseException:
        if blob_id:
            await ctx.services.blobs.delete([blob_id])
        raise
    return Received(blob_id=blob_id, size=size, md5_hex=md5.hexdigest(),
                    checksums=computed, etag=stored_md5.hexdigest())


async def _receive_inline(ctx: Context, plan: checksums.ChecksumPlan,
                          md5: hashlib._Hash, expected_md5: bytes | None) -> Received:
    """A small body: buffered (at most INLINE_MAX bytes) and hashed on the loop."""
    assert ctx.content_length is not None
    pieces: list[bytes] = []
    size = 0
    async for chunk in ctx.body.chunks():
        size += len(chunk)
        if size > ctx.content_length:
            raise errors.InvalidRequest("The body is longer than its declared length.")
        pieces.append(chunk)
    plan.add_trailer(ctx.body.trailers)
    if size != ctx.content_length:
        raise errors.IncompleteBody()
    data = b"".join(pieces)
    md5.update(data)
    for hasher in plan.hashers.values():
        hasher.update(data)
    computed = _verify_digests(plan, md5, expected_md5)
    return Received(blob_id="", size=size, md5_hex=md5.hexdigest(), checksums=computed,
                    inline=data if data else None, etag=md5.hexdigest())


def _verify_digests(plan: checksums.ChecksumPlan, md5: hashlib._Hash,
                    expected_md5: bytes | None) -> dict[str, str]:
    """Content-MD5 and the flexible checksums; returns every computed checksum."""
    if expected_md5 is not None and md5.digest() != expected_md5:
        raise errors.BadDigest("The Content-MD5 you specified did not match what we received.")
    return plan.verify()


async def read_small_body(ctx: Context, limit: int) -> bytes:
    """A small request body (XML, JSON), checked against Content-MD5 and any flexible
    checksum sent with it; ``BadDigest`` on a mismatch.

    SDKs send one or the other on configuration requests (S3 requires an integrity check
    on several of them); either must match the bytes received.
    """
    trailer_names = (ctx.headers.get("x-amz-trailer", "").split(",")
                     if ctx.auth.payload_mode.has_trailer else [])
    plan = checksums.ChecksumPlan(ctx.headers, trailer_names)
    md5_header = ctx.headers.get("Content-MD5")
    expected_md5 = checksums.parse_content_md5(md5_header) if md5_header is not None else None
    body = await ctx.read_body(limit)
    plan.add_trailer(ctx.body.trailers)
    if expected_md5 is not None and (
            hashlib.md5(body, usedforsecurity=False).digest() != expected_md5):
        raise errors.BadDigest("The Content-MD5 you specified did not match what we received.")
    for hasher in plan.hashers.values():
        hasher.update(body)
    plan.verify()
    return body


@contextlib.asynccontextmanager
async def freed_if_refused(ctx: Context, blob_ids: Iterable[str]) -> AsyncIterator[None]:
    """Wrap the commit of a record that points at ``blob_ids``: if the block raises an S3
    error (the store refused it, or a check failed first), nothing references them, so
    they are removed now. Not when the error's ``outcome_unknown`` (a COMMIT that may have
    landed): the orphan sweep removes them if nothing does reference them.

    Not on cancellation: a write queued to the store still commits after its awaiter is
    gone, and deleting the blobs then would leave a committed record pointing at nothing.
    The blobs of a cancelled write that never committed are orphans the sweeper removes
    after the grace period.
    """
    ids = [blob_id for blob_id in blob_ids if blob_id]
    try:
        yield
    except errors.S3Error as exc:
        if ids and not exc.outcome_unknown:
            await ctx.services.blobs.delete(ids)
        raise
