"""Server-side copy: CopyObject and UploadPartCopy.

Bytes are never pulled through Python when they need not be. A whole-object copy gives the
new object new names for the same immutable blob files (hard links; a kernel copy where the
file system has none), so copying 1 GiB costs a few metadata operations. Only what S3 makes
us hash is read: an UploadPartCopy needs the MD5 of its range for the part's ETag, and a
copy that asks for a checksum the source does not have needs that checksum.

Each object owns its blob names, so the garbage collector needs no reference counts: a
replaced or deleted copy frees only its own links.

SSE-C: a copy whose source or destination is encrypted cannot share bytes (each sealed blob
is bound to its object, and the keys may differ), so its bytes are read as plaintext (the
source's key from ``x-amz-copy-source-server-side-encryption-customer-*``) and written
again, sealed with the destination's key when it has one, one worker-thread job per MiB. A
multipart source keeps its manifest: each part is rewritten as a part of the copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import AsyncIterator

from cargohold import access, checksums, errors, xmlutil
from cargohold.handlers.acls import acl_from_headers
from cargohold.handlers.context import (
    Context,
    Handler,
    Reply,
    expiration_headers,
    load_version,
    object_loader,
    parse_part_number,
    version_headers,
)
from cargohold.handlers.intake import freed_if_refused
from cargohold.handlers.multipart import load_upload
from cargohold.handlers.objects import (
    STORAGE_CLASSES,
    content_headers,
    customer_key,
    failed_condition,
    object_pieces,
    object_segments,
    user_metadata,
    validate_key,
    write_conditions,
)
from cargohold.handlers.tagging import tags_from_header
from cargohold.numbers import decimal
from cargohold.operations import ALL_OPERATIONS, CopySource, parse_copy_source
from cargohold.sse import customer, streams
from cargohold.sse.chunks import ObjectCipher
from cargohold.store.base import NULL_VERSION, ObjectRecord, PartRef, UploadedPart, is_version_id
from cargohold.store.blobs import BlobWriter

# S3's cap on a CopyObject source and on one copied part.
MAX_COPY_SOURCE = 5 * 1024**3
# A source replaced between reading its record and linking its blobs is read again.
CLONE_ATTEMPTS = 3
_RANGE_HINT = ("The x-amz-copy-source-range value must be of the form bytes=first-last where "
               "first and last are the zero-based offsets of the first and last bytes to copy")


def check_source_conditions(ctx: Context, record: ObjectRecord) -> None:
    """The ``x-amz-copy-source-if-*`` headers, paired as on GET; any failure (even the
    kinds a GET answers with 304) is ``PreconditionFailed``."""
    failed = failed_condition(ctx.headers, record, "x-amz-copy-source-")
    if failed is not None:
        raise errors.PreconditionFailed(Condition=failed[0])


async def load_source(ctx: Context, source: CopySource) -> ObjectRecord:
    """The source object, once the caller may read it and its conditions hold."""
    store = ctx.services.store
    bucket = await store.get_bucket(source.bucket)
    if bucket is None:
        raise errors.NoSuchBucket(BucketName=source.bucket)
    source_object = object_loader(store, source.bucket, source.key, source.version_id)
    await access.authorize(ctx.principal, ALL_OPERATIONS["GetObject"], bucket, source.key,
                           context=ctx.conditions, target=source_object,
                           versioned=source.version_id is not None)
    if source.version_id is not None and not is_version_id(source.version_id):
        raise errors.InvalidArgument("Invalid version id specified",
                                     ArgumentName="x-amz-copy-source",
                                     ArgumentValue=ctx.headers.get("x-amz-copy-source", ""))
    try:
        record = await load_version(store, bucket, source.key, source.version_id, "GET",
                                    source_object, marker_headers=False)
    except errors.MethodNotAllowed:
        raise errors.InvalidRequest("The source of a copy request may not specifically refer "
                                    "to a delete marker by version id.") from None
    check_source_conditions(ctx, record)
    return record


def source_version_headers(source: CopySource, record: ObjectRecord) -> dict[str, str]:
    """``x-amz-copy-source-version-id`` when the source is (or was named as) a version."""
    if source.version_id is not None or record.version_id != NULL_VERSION:
        return {"x-amz-copy-source-version-id": record.version_id}
    return {}


def _directive(ctx: Context, header: str, what: str) -> str:
    value = ctx.headers.get(header, "COPY").strip()
    if value not in ("COPY", "REPLACE"):
        raise errors.InvalidArgument(f"Unknown {what} directive.", ArgumentName=header,
                                     ArgumentValue=value)
    return value


def _requested_algorithm(ctx: Context) -> str:
    algorithm = ctx.headers.get("x-amz-checksum-algorithm", "").strip().upper()
    if algorithm and algorithm not in checksums.ALGORITHMS:
        raise errors.InvalidRequest("Checksum algorithm provided is unsupported.")
    return algorithm


def _segments(ctx: Context, record: ObjectRecord, start: int,
              length: int) -> list[tuple[str, int, int]]:
    return [(s.path, s.offset, s.length) for s in object_segments(ctx, record, start, length)]


async def _clone_blobs(ctx: Context, record: ObjectRecord) -> ObjectRecord:
    """``record`` with its blobs replaced by fresh links to the same bytes.

    ``FileNotFoundError`` if a source blob vanished (the source was replaced meanwhile);
    links made before that are removed.
    """
    blobs = ctx.services.blobs
    if record.parts:
        def clone_parts() -> tuple[PartRef, ...]:
            made: list[str] = []
            try:
                for part in record.parts:
                    made.append(blobs.clone_sync(part.blob_id) if part.blob_id else "")
            except BaseException:
                blobs.delete_sync(b for b in made if b)
                raise
            return tuple(dataclasses.replace(p, blob_id=b)
                         for p, b in zip(record.parts, made, strict=True))
        return dataclasses.replace(record, parts=await blobs.run(clone_parts))
    if record.blob_id:
        return dataclasses.replace(record, blob_id=await blobs.clone(record.blob_id))
    return record  # inline or empty: the bytes (if any) travel in the record itself


async def _cloned_source(ctx: Context, source: CopySource,
                         record: ObjectRecord) -> tuple[ObjectRecord, ObjectRecord]:
    """(source record, its clone); reloads a source replaced while it was being linked."""
    # Linked clones take no room, but the copy's record does: refused once under the reserve.
    await ctx.services.blobs.check_room(0)
    for _ in range(CLONE_ATTEMPTS):
        try:
            return record, await _clone_blobs(ctx, record)
        except FileNotFoundError:
            record = await load_source(ctx, source)
    raise errors.InternalError("The copy source kept changing while it was being copied.")


def _source_cipher(record: ObjectRecord, key: customer.CustomerKey | None) -> ObjectCipher | None:
    """The cipher that opens an SSE-C source (``None`` for a plaintext one); S3's errors for
    a missing, needless or wrong source key."""
    opened = customer.open_object(record.sse, key)
    return opened.cipher if opened is not None else None


def _plaintext(ctx: Context, record: ObjectRecord, start: int, length: int,
               cipher: ObjectCipher | None) -> AsyncIterator[bytes]:
    """Bytes [start, start+length) of ``record`` as plaintext, read in worker threads."""
    if record.inline is not None:
        return _once(record.inline[start:start + length])
    return streams.stream_plaintext(ctx.services.blobs, object_pieces(ctx, record, start, length),
                                    cipher)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


async def _write_blob(ctx: Context, plaintext: AsyncIterator[bytes], size: int, part: int,
                      cipher: ObjectCipher | None,
                      extra: checksums.Hasher | None) -> tuple[str, str]:
    """A new blob of the ``size`` bytes of ``plaintext``, sealed with ``cipher`` (its chunks
    bound to ``part``) if given; returns (blob id, MD5 hex of the stored bytes). ``extra``
    hashes the plaintext."""
    await ctx.services.blobs.check_room(size)
    stored_md5 = hashlib.md5(usedforsecurity=False)
    plain = [extra] if extra is not None else []
    writer: BlobWriter | streams.SealingWriter
    if cipher is None:
        writer = ctx.services.blobs.open_writer([stored_md5, *plain])
    else:
        writer = streams.SealingWriter(ctx.services.blobs, cipher.new_blob(part, size), plain,
                                       [stored_md5])
    async with writer:
        async for data in plaintext:
            await writer.write(data)
        blob_id = await writer.commit()
    return blob_id, stored_md5.hexdigest()


async def _rewrite(ctx: Context, record: ObjectRecord, source: ObjectCipher | None,
                   target: customer.Sealing | None,
                   algorithm: str) -> tuple[ObjectRecord, str | None]:
    """``record`` with its bytes written again to new blobs: opened with ``source``, sealed
    for ``target``; and ``algorithm``'s full-object checksum of them (None without one).

    The ETag is the MD5 of what is stored (``-N`` over the parts' for a multipart source):
    the real MD5 for a plaintext copy, the ciphertext's for an SSE-C one.
    """
    cipher = target.cipher if target is not None else None
    whole = checksums.new_hasher(algorithm) if algorithm else None
    made: list[str] = []
    try:
        if record.parts:
            parts = []
            for part in record.parts:
                piece = [streams.Piece(ctx.services.blobs.path(part.blob_id), 0, part.size,
                                       part.size, part.number)] if part.blob_id else []
                blob_id, etag = await _write_blob(
                    ctx, streams.stream_plaintext(ctx.services.blobs, piece, source),
                    part.size, part.number, cipher, whole)
                made.append(blob_id)
                parts.append(dataclasses.replace(part, blob_id=blob_id, etag=etag))
            md5s = b"".join(bytes.fromhex(p.etag) for p in parts)
            etag = f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(parts)}"
            rewritten = dataclasses.replace(record, parts=tuple(parts), etag=etag)
        else:
            blob_id, etag = await _write_blob(
                ctx, _plaintext(ctx, record, 0, record.size, source), record.size, 0, cipher,
                whole)
            made.append(blob_id)
            # Never inline: an SSE-C object must not leave plaintext in the metadata store.
            rewritten = dataclasses.replace(record, blob_id=blob_id, inline=None, etag=etag)
    except BaseException:
        await ctx.services.blobs.delete(b for b in made if b)
        raise
    sse = target.encryption.to_json() if target is not None else ""
    return (dataclasses.replace(rewritten, sse=sse),
            checksums.to_b64(whole.digest()) if whole is not None else None)


async def _rewritten_source(
        ctx: Context, source: CopySource, record: ObjectRecord,
        source_key: customer.CustomerKey | None, target_key: customer.CustomerKey | None,
        algorithm: str) -> tuple[ObjectRecord, ObjectRecord, str | None]:
    """(source record, its rewrite, checksum): :func:`_rewrite` for the destination's key;
    reloads a source replaced while it was being read."""
    target = customer.Sealing.new(target_key)
    for _ in range(CLONE_ATTEMPTS):
        try:
            rewritten, computed = await _rewrite(ctx, record, _source_cipher(record, source_key),
                                                 target, algorithm)
            return record, rewritten, computed
        except FileNotFoundError:
            record = await load_source(ctx, source)
    raise errors.InternalError("The copy source kept changing while it was being copied.")


async def _checksum_of(ctx: Context, record: ObjectRecord, algorithm: str) -> str:
    """``algorithm``'s full-object checksum of ``record``'s bytes, read in a thread."""
    hasher = checksums.new_hasher(algorithm)
    if record.inline is not None:
        hasher.update(record.inline)
    elif record.size:
        segments = _segments(ctx, record, 0, record.size)
        await ctx.services.blobs.run(
            lambda: ctx.services.blobs.hash_files(segments, [hasher]))
    return checksums.to_b64(hasher.digest())


def _result_xml(root: str, etag: str, last_modified: float, sums: dict[str, str]) -> Reply:
    parts = [xmlutil.element("LastModified", xmlutil.iso_time(last_modified)),
             f"<ETag>&quot;{etag}&quot;</ETag>"]
    for algorithm in checksums.ALGORITHMS:
        if algorithm in sums:
            parts.append(xmlutil.element(f"Checksum{algorithm}", sums[algorithm]))
    if "type" in sums:
        parts.append(xmlutil.element("ChecksumType", sums["type"]))
    return Reply(body=xmlutil.document(root, parts),
                 headers={"Content-Type": "application/xml"})


async def copy_object(ctx: Context) -> Reply:
    key = ctx.require_key()
    bucket = ctx.require_bucket()
    validate_key(key)
    target_key = customer_key(ctx, write=True)
    source_key = customer_key(ctx, customer.COPY_SOURCE_HEADERS, write=False)
    acl_text = await acl_from_headers(ctx, bucket.owner_id)
    source = parse_copy_source(ctx.headers.get("x-amz-copy-source", ""))
    metadata_directive = _directive(ctx, "x-amz-metadata-directive", "metadata")
    tagging_directive = _directive(ctx, "x-amz-tagging-directive", "tagging")
    storage_header = ctx.headers.get("x-amz-storage-class")
    storage_class = (storage_header or "STANDARD").strip().upper()
    if storage_class not in STORAGE_CLASSES:
        raise errors.InvalidStorageClass(StorageClassRequested=storage_class)
    algorithm = _requested_algorithm(ctx)
    if_match, if_none_match = write_conditions(ctx)
    replace_metadata = metadata_directive == "REPLACE"
    if replace_metadata:
        content_type = ctx.headers.get("Content-Type") or "binary/octet-stream"
        stored_headers, metadata = content_headers(ctx), user_metadata(ctx)
    new_tags = (tags_from_header(ctx) or {}) if tagging_directive == "REPLACE" else None

    record = await load_source(ctx, source)
    # Checked before anything is read: a missing or wrong source key is S3's error, not a
    # failed decryption.
    encrypted = _source_cipher(record, source_key) is not None or target_key is not None
    # Copying a named version over its own key restores it: that is not a no-op.
    if source.bucket == bucket.name and source.key == key and source.version_id is None and not (
            replace_metadata or storage_header is not None or algorithm or encrypted):
        raise errors.InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect "
            "location or encryption attributes.")
    if record.size > MAX_COPY_SOURCE:
        raise errors.InvalidRequest("The specified copy source is larger than the maximum "
                                    f"allowable size for a copy source: {MAX_COPY_SOURCE}")
    computed = None
    if encrypted:
        record, clone, computed = await _rewritten_source(ctx, source, record, source_key,
                                                          target_key, algorithm)
    else:
        record, clone = await _cloned_source(ctx, source, record)
    async with freed_if_refused(ctx, clone.blob_ids()):
        sums = dict(record.checksums)
        if algorithm and (algorithm not in sums or sums.get("type") == "COMPOSITE"):
            value = computed if computed is not None else await _checksum_of(ctx, clone,
                                                                             algorithm)
            sums = {algorithm: value, "type": "FULL_OBJECT"}
        elif algorithm:
            sums = {algorithm: sums[algorithm], "type": "FULL_OBJECT"}
        changes: dict[str, object] = {
            "bucket": bucket.name, "key": key, "last_modified": time.time(),
            "storage_class": storage_class, "checksums": sums, "version_id": NULL_VERSION,
            "acl": acl_text,  # a copy gets its own ACL (private by default), as in S3
        }
        if replace_metadata:
            changes.update(content_type=content_type, headers=stored_headers,
                           metadata=metadata)
        if new_tags is not None:
            changes["tags"] = new_tags
        new_record = dataclasses.replace(clone, **changes)  # type: ignore[arg-type]
        version_id = await ctx.services.store.put_object(new_record, if_match=if_match,
                                                         if_none_match=if_none_match)
    reply = _result_xml("CopyObjectResult", new_record.etag, new_record.last_modified,
                        new_record.checksums)
    reply.headers.update(source_version_headers(source, record))
    reply.headers.update(version_headers(bucket, version_id, written=True))
    reply.headers.update(expiration_headers(ctx, bucket, key, new_record.last_modified))
    if target_key is not None:
        reply.headers.update(target_key.response_headers())
    return reply


def parse_copy_range(value: str, size: int) -> tuple[int, int]:
    """``bytes=first-last`` (both inclusive, within the source); ``InvalidArgument`` else."""
    spec = value.strip()
    first, dash, last = spec.removeprefix("bytes=").partition("-")
    start, end = decimal(first), decimal(last)
    if not spec.startswith("bytes=") or not dash or start is None or end is None or start > end:
        raise errors.InvalidArgument(_RANGE_HINT, ArgumentName="x-amz-copy-source-range",
                                     ArgumentValue=value)
    if end >= size:
        raise errors.InvalidArgument(
            f"Range specified is not valid for source object of size: {size}",
            ArgumentName="x-amz-copy-source-range", ArgumentValue=value)
    return start, end


async def upload_part_copy(ctx: Context) -> Reply:
    number = parse_part_number(ctx.query.get("partNumber"))
    target_key = customer_key(ctx, write=True)
    source_key = customer_key(ctx, customer.COPY_SOURCE_HEADERS, write=False)
    upload = await load_upload(ctx)
    target = customer.open_upload(upload.sse, target_key)
    source = parse_copy_source(ctx.headers.get("x-amz-copy-source", ""))
    record = await load_source(ctx, source)
    opener = _source_cipher(record, source_key)
    range_header = ctx.headers.get("x-amz-copy-source-range")
    if range_header is not None:
        start, end = parse_copy_range(range_header, record.size)
    else:
        start, end = 0, record.size - 1
    length = end - start + 1
    if length > MAX_COPY_SOURCE:
        raise errors.InvalidRequest("The specified copy source is larger than the maximum "
                                    f"allowable size for a copy source: {MAX_COPY_SOURCE}")
    algorithm = upload.checksum_algorithm
    whole = start == 0 and length == record.size
    if (whole and record.blob_id and not record.parts and "-" not in record.etag
            and opener is None and target is None
            and (not algorithm or algorithm in record.checksums)):
        # The part is the source's single blob as it is: link it, reuse its digests.
        record, clone = await _cloned_source(ctx, source, record)
        blob_id, etag = clone.blob_id, record.etag
        sums = {algorithm: record.checksums[algorithm]} if algorithm else {}
    else:
        blob_id, etag, sums = await _copy_range(ctx, record, start, length, algorithm, opener,
                                                target, number)
    part = UploadedPart(upload_id=upload.upload_id, number=number, blob_id=blob_id,
                        size=length, etag=etag, last_modified=time.time(), checksums=sums)
    async with freed_if_refused(ctx, [blob_id]):
        await ctx.services.store.put_part(part)
    reply = _result_xml("CopyPartResult", part.etag, part.last_modified, sums)
    reply.headers.update(source_version_headers(source, record))
    if target_key is not None:
        reply.headers.update(target_key.response_headers())
    return reply


async def _copy_range(ctx: Context, record: ObjectRecord, start: int, length: int,
                      algorithm: str, source: ObjectCipher | None = None,
                      target: ObjectCipher | None = None,
                      number: int = 0) -> tuple[str, str, dict[str, str]]:
    """Write bytes [start, start+length) of ``record`` to a new blob, hashing them for the
    part's ETag (and the upload's checksum); returns (blob id, md5 hex, checksums).

    An SSE-C source is opened with ``source``; an SSE-C upload's part is sealed with
    ``target`` (its ETag is then the ciphertext's MD5).
    """
    extra = checksums.new_hasher(algorithm) if algorithm else None
    if source is not None or target is not None:
        blob_id, etag = await _write_blob(ctx, _plaintext(ctx, record, start, length, source),
                                          length, number, target, extra)
        sums = {algorithm: checksums.to_b64(extra.digest())} if extra is not None else {}
        return blob_id, etag, sums
    await ctx.services.blobs.check_room(length)
    md5 = hashlib.md5(usedforsecurity=False)
    hashers = [md5, *([extra] if extra is not None else [])]
    async with ctx.services.blobs.open_writer(hashers) as writer:
        if record.inline is not None:
            await writer.write(record.inline[start:start + length])
        elif length:
            await writer.write_files(_segments(ctx, record, start, length))
        blob_id = await writer.commit()
    sums = {algorithm: checksums.to_b64(extra.digest())} if extra is not None else {}
    return blob_id, md5.hexdigest(), sums


HANDLERS: dict[str, Handler] = {
    "CopyObject": copy_object,
    "UploadPartCopy": upload_part_copy,
}
