"""Object operations: put, get, head, delete, delete many."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from email.utils import formatdate, parsedate_to_datetime

from cargohold import access, checksums, errors, xmlutil
from cargohold.handlers.acls import acl_from_headers
from cargohold.handlers.context import (
    Context,
    FileSegment,
    Handler,
    Reply,
    expiration_headers,
    load_current_object,
    parse_part_number,
    requested_version,
    version_headers,
)
from cargohold.handlers.intake import freed_if_refused, read_small_body, receive_body
from cargohold.handlers.tagging import tags_from_header
from cargohold.numbers import decimal
from cargohold.operations import ALL_OPERATIONS
from cargohold.sse import customer, streams
from cargohold.sse.chunks import CorruptBlob, ObjectCipher
from cargohold.store.base import DeleteResult, ObjectRecord, is_version_id

MAX_KEY_BYTES = 1024
MAX_DELETE_KEYS = 1000
# Content headers stored with the object and returned on GET/HEAD.
STORED_HEADERS = ("content-encoding", "content-disposition", "content-language",
                  "cache-control", "expires", "x-amz-website-redirect-location")
# Characters a header value cannot carry (a tab can).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# response-* query parameters that override headers on GET (S3's list).
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
STORAGE_CLASSES = ("STANDARD",)
# SSE-C bodies up to this size are read and decrypted on the loop (one pread, at most two
# 64 KiB chunks: tens of microseconds, less than a thread hop); larger ones stream, each
# MiB decrypted in a worker thread.
SMALL_DECRYPT = 64 * 1024


def validate_key(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise errors.KeyTooLongError(Size=str(len(key.encode())), MaxSizeAllowed="1024")


def user_metadata(ctx: Context) -> dict[str, str]:
    """``x-amz-meta-*`` headers, capped at the configured size (S3: 2 KiB)."""
    metadata: dict[str, str] = {}
    size = 0
    for name, value in ctx.headers.items():
        lower = name.lower()
        if lower.startswith("x-amz-meta-"):
            short = lower[len("x-amz-meta-"):]
            metadata[short] = f"{metadata[short]},{value}" if short in metadata else value
            size += len(short) + len(value.encode())
    if size > ctx.services.settings.max_metadata_size:
        raise errors.MetadataTooLarge(Size=str(size),
                                      MaxSizeAllowed=str(ctx.services.settings.max_metadata_size))
    return metadata


def content_headers(ctx: Context) -> dict[str, str]:
    """The content headers a write stores with the object (PutObject, multipart, copy)."""
    stored: dict[str, str] = {}
    for name in STORED_HEADERS:
        value = ctx.headers.get(name)
        if value is None:
            continue
        if name == "x-amz-website-redirect-location" and not value.startswith(
                ("/", "http://", "https://")):
            raise errors.InvalidRedirectLocation(
                "The website redirect location must have a prefix of 'http://' or "
                "'https://' or '/'.")
        if name == "content-encoding":
            # aws-chunked is transfer framing, not part of the object.
            codings = [c.strip() for c in value.split(",")
                       if c.strip() and c.strip().lower() != "aws-chunked"]
            if not codings:
                continue
            value = ",".join(codings)
        stored[name] = value
    return stored


def customer_key(ctx: Context, prefix: str = customer.HEADERS, *,
                 write: bool) -> customer.CustomerKey | None:
    """The SSE-C key the request gives under ``prefix`` (``None`` if it gives none), once
    the connection is allowed to carry one; S3's errors for a malformed one."""
    customer.check_transport(ctx.headers, ctx.services.settings.sse_c_over_http, ctx.secure,
                             ctx.remote)
    return customer.request_key(ctx.headers, prefix, write=write)


def write_conditions(ctx: Context) -> tuple[str | None, bool]:
    """``If-Match`` / ``If-None-Match: *`` on writes (S3 accepts only ``*`` there)."""
    if_none_match = ctx.headers.get("If-None-Match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise errors.NotImplementedError_(
            "If-None-Match on writes only supports '*'.")
    if_match = ctx.headers.get("If-Match")
    return (if_match.strip().strip('"') if if_match is not None else None,
            if_none_match is not None)


async def put_object(ctx: Context) -> Reply:
    key = ctx.require_key()
    bucket = ctx.require_bucket()
    validate_key(key)
    settings = ctx.services.settings
    sse_key = customer_key(ctx, write=True)
    sealing = customer.Sealing.new(sse_key)
    acl_text = await acl_from_headers(ctx, bucket.owner_id)
    storage_class = ctx.headers.get("x-amz-storage-class", "STANDARD").strip().upper()
    if storage_class not in STORAGE_CLASSES:
        raise errors.InvalidStorageClass(StorageClassRequested=storage_class)
    if_match, if_none_match = write_conditions(ctx)
    metadata = user_metadata(ctx)
    headers = content_headers(ctx)
    # Checked before the body is read: bad tags refuse the upload, not a stored object.
    # Without the header the new object has no tags (an overwrite drops the old ones).
    tags = tags_from_header(ctx) or {}
    received = await receive_body(ctx, settings.max_object_size,
                                  cipher=sealing.cipher if sealing is not None else None)
    computed = received.checksums
    record = ObjectRecord(
        bucket=bucket.name, key=key, blob_id=received.blob_id, size=received.size,
        etag=received.etag, inline=received.inline,
        sse=sealing.encryption.to_json() if sealing is not None else "",
        last_modified=time.time(),
        content_type=ctx.headers.get("Content-Type") or "binary/octet-stream",
        headers=headers, metadata=metadata, tags=tags, acl=acl_text,
        checksums={**computed, "type": "FULL_OBJECT"} if computed else {},
        storage_class=storage_class,
    )
    async with freed_if_refused(ctx, [received.blob_id]):
        version_id = await ctx.services.store.put_object(record, if_match=if_match,
                                                         if_none_match=if_none_match)
    reply_headers = {"ETag": f'"{record.etag}"',
                     **version_headers(bucket, version_id, written=True),
                     **expiration_headers(ctx, bucket, key, record.last_modified)}
    for algorithm, value in computed.items():
        reply_headers[checksums.header_name(algorithm)] = value
    if computed:
        reply_headers["x-amz-checksum-type"] = "FULL_OBJECT"
    if sse_key is not None:
        reply_headers.update(sse_key.response_headers())
    return Reply(headers=reply_headers)


def http_date(timestamp: float) -> str:
    return _http_date(int(timestamp))


@functools.lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    # Formatting costs more than the rest of a HEAD's header work; objects are read
    # repeatedly, so their Last-Modified strings are worth keeping.
    return formatdate(seconds, usegmt=True)


def parse_http_date(value: str | None) -> float | None:
    """An HTTP date as unix time; ``None`` for a missing or unparseable one (S3 ignores it)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match list names ``etag`` (or is ``*``)."""
    candidates = [c.strip() for c in header.split(",")]
    return any(c == "*" or c.removeprefix("W/").strip('"') == etag for c in candidates)


def failed_condition(headers: Mapping[str, str], record: ObjectRecord,
                     prefix: str = "") -> tuple[str, bool] | None:
    """The first of S3's four conditional headers (named ``prefix`` + ``If-Match`` and so
    on) that ``record`` fails, as (header name, whether it is a not-modified kind: a
    matching If-None-Match or a false If-Modified-Since); ``None`` when all hold.

    Precedence as S3 documents it: If-Match true makes If-Unmodified-Since irrelevant;
    If-None-Match false wins over If-Modified-Since.
    """
    modified = int(record.last_modified)  # HTTP dates have whole seconds
    if_match = headers.get(prefix + "If-Match")
    if if_match is not None:
        if not etag_matches(if_match, record.etag):
            return prefix + "If-Match", False
    else:
        since = parse_http_date(headers.get(prefix + "If-Unmodified-Since"))
        if since is not None and modified > since:
            return prefix + "If-Unmodified-Since", False
    if_none_match = headers.get(prefix + "If-None-Match")
    if if_none_match is not None:
        if etag_matches(if_none_match, record.etag):
            return prefix + "If-None-Match", True
    else:
        since = parse_http_date(headers.get(prefix + "If-Modified-Since"))
        if since is not None and modified <= since:
            return prefix + "If-Modified-Since", True
    return None


def evaluate_read_conditions(ctx: Context, record: ObjectRecord) -> None:
    """S3's conditional GET/HEAD: 412 ``PreconditionFailed`` or 304 Not Modified."""
    failed = failed_condition(ctx.headers, record)
    if failed is not None:
        name, not_modified = failed
        if not_modified:
            raise NotModified(record)
        raise errors.PreconditionFailed(Condition=name)


class NotModified(Exception):
    """Raised to answer 304 with the object's validators."""

    def __init__(self, record: ObjectRecord) -> None:
        super().__init__("not modified")
        self.record = record


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """One byte range as (start, end inclusive); ``None`` to ignore the header.

    Syntactically invalid or multi-range headers are ignored (the whole object is sent), as
    S3 does; a valid but unsatisfiable range raises ``InvalidRange``.
    """
    value = value.strip()
    if not value.startswith("bytes=") or "," in value:
        return None
    spec = value[len("bytes="):].strip()
    first, dash, last = spec.partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    first_n = decimal(first) if first else None
    last_n = decimal(last) if last else None
    if (first and first_n is None) or (last and last_n is None) or not (first or last):
        return None
    if first_n is None:  # suffix range: the last N bytes
        assert last_n is not None
        length = last_n
        if length == 0 or size == 0:
            raise errors.InvalidRange(RangeRequested=value, ActualObjectSize=str(size))
        return max(0, size - length), size - 1
    start = first_n
    end = last_n if last_n is not None else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise errors.InvalidRange(RangeRequested=value, ActualObjectSize=str(size))
    return start, min(end, size - 1)


def object_headers(record: ObjectRecord, checksum_mode: bool) -> dict[str, str]:
    headers = {
        "ETag": f'"{record.etag}"',
        "Last-Modified": http_date(record.last_modified),
        "Content-Type": record.content_type,
        "Accept-Ranges": "bytes",
    }
    for name, value in record.headers.items():
        headers[name.title()] = value
    for name, value in record.metadata.items():
        headers["x-amz-meta-" + name] = value
    if record.storage_class != "STANDARD":
        headers["x-amz-storage-class"] = record.storage_class
    if record.tags:
        headers["x-amz-tagging-count"] = str(len(record.tags))
    if checksum_mode:
        for algorithm in checksums.ALGORITHMS:
            if algorithm in record.checksums:
                headers[checksums.header_name(algorithm)] = record.checksums[algorithm]
        if "type" in record.checksums:
            headers["x-amz-checksum-type"] = record.checksums["type"]
    return headers




async def get_or_head_object(ctx: Context) -> Reply:
    sse_key = customer_key(ctx, write=False)
    try:
        record = await load_current_object(ctx)
    except errors.NoSuchKey as exc:
        if ctx.method == "HEAD":
            exc.fields.clear()
        raise
    # The key is checked before the conditions: without it, not even a 304 is answered.
    opened = customer.open_object(record.sse, sse_key)
    try:
        evaluate_read_conditions(ctx, record)
    except NotModified:
        keep = ("ETag", "Last-Modified")
        full = object_headers(record, checksum_mode=False)
        # The version validated, as on the 200 it stands for.
        return Reply(status=304, headers={
            **{k: full[k] for k in keep},
            **version_headers(ctx.require_bucket(), record.version_id)})
    checksum_mode = ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    size = record.size
    status = 200
    start, end = 0, size - 1
    part_number = ctx.query.get("partNumber")
    range_header = ctx.headers.get("Range")
    part_range: tuple[int, int] | None = None
    if part_number is not None:
        part_range = _part_range(record, part_number, range_header)
        range_header = None
    byte_range = parse_range(range_header, size) if range_header is not None else None
    if part_range is not None:
        byte_range = part_range
    headers = object_headers(record, checksum_mode=checksum_mode and byte_range is None)
    bucket = ctx.require_bucket()
    headers.update(version_headers(bucket, record.version_id))
    if "versionId" not in ctx.query:  # the current object: a rule may expire it
        headers.update(expiration_headers(ctx, bucket, record.key, record.last_modified))
    if record.parts and part_number is not None:
        headers["x-amz-mp-parts-count"] = str(len(record.parts))
    if byte_range is not None:
        start, end = byte_range
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    for param, header in RESPONSE_OVERRIDES.items():
        override = ctx.query.get(param)
        if override is not None:
            if _CONTROL.search(override):
                # A line break would end the header and start another: header injection.
                raise errors.InvalidArgument(f"{param} must not contain control characters.",
                                             ArgumentName=param)
            headers[header] = override
    if opened is not None:
        headers.update(opened.encryption.response_headers())
    length = end - start + 1 if size else 0
    if ctx.method == "HEAD":
        return Reply(status=status, headers=headers, content_length=length)
    if opened is not None:
        return await _decrypted_reply(ctx, record, opened.cipher, start, length,
                                      Reply(status=status, headers=headers))
    if record.inline is not None:
        return Reply(status=status, headers=headers, body=record.inline[start:start + length])
    return Reply(status=status, headers=headers,
                 segments=object_segments(ctx, record, start, length))


async def _decrypted_reply(ctx: Context, record: ObjectRecord, cipher: ObjectCipher,
                           start: int, length: int, reply: Reply) -> Reply:
    """``reply`` with bytes [start, start+length) of an SSE-C object, decrypted.

    The first batch is read before the reply goes out, so a missing or corrupt blob is an
    S3 error rather than a truncated 200.
    """
    pieces = object_pieces(ctx, record, start, length)
    try:
        if length <= SMALL_DECRYPT:
            reply.body = b"".join(streams.plaintext_batches(pieces, cipher))
            return reply
        stream = streams.stream_plaintext(ctx.services.blobs, pieces, cipher)
        first = await anext(stream)
    except FileNotFoundError as exc:
        raise errors.InternalError("The object's data is missing.") from exc
    except (OSError, CorruptBlob) as exc:
        raise errors.InternalError("The object's data cannot be decrypted.") from exc
    reply.stream = _prepend(first, stream)
    reply.content_length = length
    return reply


async def _prepend(first: bytes,
                   rest: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    try:
        yield first
        async for data in rest:
            yield data
    finally:
        await rest.aclose()


def _spans(record: ObjectRecord, start: int,
           length: int) -> Iterator[tuple[str, int, int, int, int]]:
    """(blob id, offset in the blob, length, blob's plaintext size, part number) of each
    piece holding bytes [start, start+length) of a blob-stored object (part 0: no parts)."""
    if length <= 0:
        return
    if not record.parts:
        yield record.blob_id, start, length, record.size, 0
        return
    offset = 0
    end = start + length
    for part in record.parts:
        part_end = offset + part.size
        if part_end > start and offset < end:
            first = max(start, offset)
            last = min(end, part_end)
            yield part.blob_id, first - offset, last - first, part.size, part.number
        offset = part_end
        if offset >= end:
            break


def object_pieces(ctx: Context, record: ObjectRecord, start: int,
                  length: int) -> list[streams.Piece]:
    """The blob pieces holding bytes [start, start+length) of a blob-stored object, with
    what a sealed blob needs to be opened (its size and part number)."""
    path = ctx.services.blobs.path
    return [streams.Piece(path(blob_id), offset, size, blob_size, number)
            for blob_id, offset, size, blob_size, number in _spans(record, start, length)]


def object_segments(ctx: Context, record: ObjectRecord, start: int,
                    length: int) -> list[FileSegment]:
    """The file pieces holding bytes [start, start+length) of the object (sendfile's view)."""
    path = ctx.services.blobs.path
    return [FileSegment(path(blob_id), offset, size)
            for blob_id, offset, size, _, _ in _spans(record, start, length)]


def _part_range(record: ObjectRecord, part_number: str,
                range_header: str | None) -> tuple[int, int] | None:
    """The byte range of one part (``partNumber=N`` on GET/HEAD); None for a whole object."""
    if range_header is not None:
        raise errors.InvalidRequest("Cannot specify both Range header and partNumber "
                                    "query parameter")
    number = parse_part_number(part_number)
    count = len(record.parts) or 1
    if number > count:
        raise errors.InvalidPartNumber(PartNumberRequested=part_number,
                                       ActualPartCount=str(count))
    if not record.parts:
        return None
    offset = sum(p.size for p in record.parts[:number - 1])
    size = record.parts[number - 1].size
    return (offset, offset + size - 1) if size else None


async def delete_object(ctx: Context) -> Reply:
    key = ctx.require_key()
    bucket = ctx.require_bucket()
    version_id = requested_version(ctx)
    result = await ctx.services.store.delete_object(bucket.name, key, version_id)
    headers = {}
    if result.version_id is not None:
        headers["x-amz-version-id"] = result.version_id
    if result.delete_marker:
        headers["x-amz-delete-marker"] = "true"
    return Reply(status=204, headers=headers)


async def delete_objects(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    settings = ctx.services.settings
    # Content-MD5 or the flexible checksum SDKs send instead (boto3 sends only a CRC32).
    body = await read_small_body(ctx, settings.max_xml_size)
    root = xmlutil.parse(body, settings.max_xml_size)
    if root.tag != "Delete":
        raise errors.MalformedXML()
    quiet = (xmlutil.child_text(root, "Quiet") or "").strip().lower() == "true"
    requested: list[tuple[str, str | None]] = []
    for item in root.findall("Object"):
        key = xmlutil.child_text(item, "Key")
        if key is None:
            raise errors.MalformedXML()
        requested.append((key, xmlutil.child_text(item, "VersionId")))
    if not requested or len(requested) > MAX_DELETE_KEYS:
        raise errors.MalformedXML()
    parts: list[str] = []
    deletable: list[tuple[str, str | None]] = []
    for key, version_id in requested:
        if not key or len(key.encode()) > MAX_KEY_BYTES:
            parts.append(_delete_error(key, version_id, "InvalidArgument", "Invalid key"))
        elif version_id is not None and not is_version_id(version_id):
            parts.append(_delete_error(key, version_id, "InvalidArgument",
                                       "Invalid version id specified"))
        elif bucket.policy is not None and not await _may_delete(ctx, key, version_id):
            parts.append(_delete_error(key, version_id, "AccessDenied", "Access Denied"))
        else:
            deletable.append((key, version_id))
    results = await ctx.services.store.delete_objects(bucket.name, deletable)
    if not quiet:
        parts += [_deleted(key, version_id, result)
                  for (key, version_id), result in zip(deletable, results, strict=True)]
    return Reply(body=xmlutil.document("DeleteResult", parts),
                 headers={"Content-Type": "application/xml"})


async def _may_delete(ctx: Context, key: str, version_id: str | None) -> bool:
    """A bucket policy decides per key, and per version action, as S3 does for each entry
    of a DeleteObjects (the request itself was checked for the bucket)."""
    try:
        await access.authorize(ctx.principal, ALL_OPERATIONS["DeleteObject"],
                               ctx.require_bucket(), key, context=ctx.conditions,
                               versioned=version_id is not None)
    except errors.AccessDenied:
        return False
    return True


def _deleted(key: str, version_id: str | None, result: DeleteResult) -> str:
    """A ``<Deleted>`` element: the version asked for, and the marker made or deleted."""
    parts = [xmlutil.element("Key", key)]
    if version_id is not None:
        parts.append(xmlutil.element("VersionId", version_id))
    if result.delete_marker and result.version_id is not None:
        parts.append("<DeleteMarker>true</DeleteMarker>")
        parts.append(xmlutil.element("DeleteMarkerVersionId", result.version_id))
    return f"<Deleted>{''.join(parts)}</Deleted>"


def _delete_error(key: str, version_id: str | None, code: str, message: str) -> str:
    version = xmlutil.element("VersionId", version_id) if version_id else ""
    return (f"<Error>{xmlutil.element('Key', key)}{version}{xmlutil.element('Code', code)}"
            f"{xmlutil.element('Message', message)}</Error>")


HANDLERS: dict[str, Handler] = {
    "PutObject": put_object,
    "GetObject": get_or_head_object,
    "HeadObject": get_or_head_object,
    "DeleteObject": delete_object,
    "DeleteObjects": delete_objects,
}
