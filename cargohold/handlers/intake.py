"""Receiving an object body: stream it to a new blob while verifying everything.

Shared by PutObject and UploadPart. The body is hashed (MD5 for the ETag, plus any flexible
checksum asked for) as it streams to a temp file; the signature layer verifies payload
hashes and chunk signatures as it goes. Only when every check has passed does the blob
become durable and get an id; on any failure the temp file is removed and nothing is left.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cargohold import checksums, errors
from cargohold.handlers.context import Context


@dataclass(frozen=True)
class Received:
    blob_id: str
    size: int
    md5_hex: str
    checksums: dict[str, str]  # algorithm -> base64, every checksum computed


async def receive_body(ctx: Context, max_size: int, also_compute: str = "") -> Received:
    """Stream the request body into a durable blob; raise an S3 error on any mismatch.

    ``also_compute`` names a checksum algorithm to compute even if the client sent none
    (a multipart upload created with one needs it for every part).
    """
    if ctx.content_length is None:
        raise errors.MissingContentLength()
    if ctx.content_length > max_size:
        raise errors.EntityTooLarge(ProposedSize=str(ctx.content_length),
                                    MaxSizeAllowed=str(max_size))
    md5_header = ctx.headers.get("Content-MD5")
    expected_md5 = checksums.parse_content_md5(md5_header) if md5_header is not None else None
    trailer_names = (ctx.headers.get("x-amz-trailer", "").split(",")
                     if ctx.auth.payload_mode.has_trailer else [])
    plan = checksums.ChecksumPlan(ctx.headers, trailer_names, also_compute=also_compute)
    md5 = hashlib.md5(usedforsecurity=False)
    writer = ctx.services.blobs.open_writer([md5, *plan.hashers.values()])
    try:
        async for chunk in ctx.body.chunks():
            await writer.write(chunk)
            if writer.size > ctx.content_length:
                raise errors.InvalidRequest("The body is longer than its declared length.")
        plan.add_trailer(ctx.body.trailers)
        if writer.size != ctx.content_length:
            raise errors.IncompleteBody()
        # The writer hashes in its worker thread as it flushes; digests are final at commit.
        blob_id = await writer.commit()
    except BaseException:
        await writer.abort()
        raise
    try:
        if expected_md5 is not None and md5.digest() != expected_md5:
            raise errors.BadDigest("The Content-MD5 you specified did not match what we "
                                   "received.")
        computed = plan.verify()
    except BaseException:
        if blob_id:
            await ctx.services.blobs.delete([blob_id])
        raise
    return Received(blob_id=blob_id, size=writer.size, md5_hex=md5.hexdigest(),
                    checksums=computed)
