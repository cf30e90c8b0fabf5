"""Multipart uploads: create, upload part, complete, abort, list parts, list uploads.

Completion copies no data: the object's manifest lists its part blobs in order, and a GET
streams across them with sendfile.

SSE-C: CreateMultipartUpload keeps the key check on the upload; every part must present the
same key and is sealed on its own (its own blob salt, its chunks bound to its part number);
the completed object takes the upload's parameters, so a GET opens each part's blob.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from urllib.parse import quote_plus
from xml.etree.ElementTree import Element

from awscrt import checksums as crt

from cargohold import checksums, errors, xmlutil
from cargohold.handlers.acls import acl_from_headers
from cargohold.handlers.context import (
    Context,
    Handler,
    Reply,
    abort_headers,
    expiration_headers,
    parse_part_number,
    version_headers,
)
from cargohold.handlers.intake import freed_if_refused, receive_body
from cargohold.handlers.objects import (
    STORAGE_CLASSES,
    content_headers,
    customer_key,
    user_metadata,
    validate_key,
    write_conditions,
)
from cargohold.handlers.tagging import tags_from_header
from cargohold.numbers import decimal
from cargohold.operations import MAX_UPLOAD_BODY
from cargohold.sse import customer
from cargohold.store.base import ObjectRecord, PartRef, Upload, UploadedPart

MIN_PART_SIZE = 5 * 1024**2
MAX_OBJECT_SIZE = 5 * 1024**4
MAX_QUERY_INT = 2**31 - 1  # max-parts, max-uploads, part-number-marker
_CRC_COMBINE: dict[str, tuple[Callable[[int, int, int], int], int]] = {
    "CRC32": (crt.combine_crc32, 4),
    "CRC32C": (crt.combine_crc32c, 4),
    "CRC64NVME": (crt.combine_crc64nvme, 8),
}


def _xml_reply(root: str, parts: list[str], headers: dict[str, str] | None = None) -> Reply:
    return Reply(body=xmlutil.document(root, parts),
                 headers={"Content-Type": "application/xml", **(headers or {})})


async def create_multipart_upload(ctx: Context) -> Reply:
    key = ctx.require_key()
    bucket = ctx.require_bucket()
    validate_key(key)
    sse_key = customer_key(ctx, write=True)
    acl_text = await acl_from_headers(ctx, bucket.owner_id)
    storage_class = ctx.headers.get("x-amz-storage-class", "STANDARD").strip().upper()
    if storage_class not in STORAGE_CLASSES:
        raise errors.InvalidStorageClass(StorageClassRequested=storage_class)
    algorithm = ctx.headers.get("x-amz-checksum-algorithm", "").strip().upper()
    if algorithm and algorithm not in checksums.ALGORITHMS:
        raise errors.InvalidRequest("Checksum algorithm provided is unsupported.")
    checksum_type = ctx.headers.get("x-amz-checksum-type", "").strip().upper()
    if checksum_type and checksum_type not in ("COMPOSITE", "FULL_OBJECT"):
        raise errors.InvalidRequest("Value for x-amz-checksum-type header is invalid.")
    if algorithm:
        if not checksum_type:
            checksum_type = "FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE"
        if checksum_type == "FULL_OBJECT" and algorithm not in _CRC_COMBINE:
            raise errors.InvalidRequest(f"The FULL_OBJECT checksum type cannot be used with "
                                        f"the {algorithm.lower()} checksum algorithm.")
        if checksum_type == "COMPOSITE" and algorithm == "CRC64NVME":
            raise errors.InvalidRequest("The COMPOSITE checksum type cannot be used with the "
                                        "crc64nvme checksum algorithm.")
    elif checksum_type:
        raise errors.InvalidRequest("x-amz-checksum-type requires x-amz-checksum-algorithm.")
    # Kept on the upload and given to the object at completion, as S3 does.
    tags = tags_from_header(ctx) or {}
    sealing = customer.Sealing.new(sse_key)  # the parts' salt and key check
    principal = ctx.principal
    assert principal.account_id is not None
    upload = Upload(
        upload_id=secrets.token_hex(24), bucket=bucket.name, key=key,
        owner_id=principal.account_id, initiated=time.time(),
        content_type=ctx.headers.get("Content-Type") or "binary/octet-stream",
        headers=content_headers(ctx), metadata=user_metadata(ctx),
        checksum_algorithm=algorithm, checksum_type=checksum_type,
        storage_class=storage_class, tags=tags, acl=acl_text,
        sse=sealing.encryption.to_json() if sealing is not None else "",
    )
    await ctx.services.store.create_upload(upload)
    headers = abort_headers(ctx, bucket, key, upload.initiated)
    if algorithm:
        headers.update({"x-amz-checksum-algorithm": algorithm,
                        "x-amz-checksum-type": checksum_type})
    if sse_key is not None:
        headers.update(sse_key.response_headers())
    return _xml_reply("InitiateMultipartUploadResult", [
        xmlutil.element("Bucket", bucket.name), xmlutil.element("Key", key),
        xmlutil.element("UploadId", upload.upload_id)], headers)


async def load_upload(ctx: Context) -> Upload:
    """The upload named by ``uploadId`` for this bucket and key; ``NoSuchUpload`` if none."""
    bucket = ctx.require_bucket()
    upload_id = ctx.query.get("uploadId", "")
    upload = await ctx.services.store.get_upload(bucket.name, ctx.require_key(), upload_id)
    if upload is None:
        raise errors.NoSuchUpload(UploadId=upload_id)
    return upload


async def upload_part(ctx: Context) -> Reply:
    """UploadPart: store the body as a blob and record it, replacing a part of that number."""
    number = parse_part_number(ctx.query.get("partNumber"))
    sse_key = customer_key(ctx, write=True)
    upload = await load_upload(ctx)
    received = await receive_body(ctx, min(MAX_UPLOAD_BODY, ctx.services.settings.max_object_size),
                                  also_compute=upload.checksum_algorithm,
                                  allow_inline=False,
                                  cipher=customer.open_upload(upload.sse, sse_key),
                                  part_number=number)
    part = UploadedPart(upload_id=upload.upload_id, number=number, blob_id=received.blob_id,
                        size=received.size, etag=received.etag,
                        last_modified=time.time(), checksums=received.checksums)
    # NoSuchUpload when the upload was completed or aborted meanwhile.
    async with freed_if_refused(ctx, [received.blob_id]):
        await ctx.services.store.put_part(part)
    headers = {"ETag": f'"{part.etag}"'}
    for algorithm, value in received.checksums.items():
        headers[checksums.header_name(algorithm)] = value
    if sse_key is not None:
        headers.update(sse_key.response_headers())
    return Reply(headers=headers)


def _requested_parts(root: Element) -> list[tuple[int, str, dict[str, str]]]:
    if root.tag != "CompleteMultipartUpload":
        raise errors.MalformedXML()
    requested = []
    for item in root.findall("Part"):
        number_text = (xmlutil.child_text(item, "PartNumber") or "").strip()
        etag = (xmlutil.child_text(item, "ETag") or "").strip().strip('"')
        if decimal(number_text) is None:
            raise errors.MalformedXML()
        sums = {a: (xmlutil.child_text(item, f"Checksum{a}") or "").strip()
                for a in checksums.ALGORITHMS if item.find(f"Checksum{a}") is not None}
        requested.append((int(number_text), etag, sums))
    if not requested:
        raise errors.MalformedXML("You must specify at least one part")
    return requested


def _combined_checksum(upload: Upload, parts: list[UploadedPart]) -> dict[str, str]:
    """The object checksum S3 reports: composite ``hash(part checksums)-N`` or a full-object
    CRC combined from the part CRCs (no data is re-read)."""
    algorithm = upload.checksum_algorithm
    if not algorithm:
        return {}
    raw = [base64.b64decode(p.checksums[algorithm]) for p in parts]
    if upload.checksum_type == "FULL_OBJECT":
        combine, width = _CRC_COMBINE[algorithm]
        value = int.from_bytes(raw[0], "big")
        for part, digest in zip(parts[1:], raw[1:], strict=True):
            value = combine(value, int.from_bytes(digest, "big"), part.size)
        return {algorithm: checksums.to_b64(value.to_bytes(width, "big")),
                "type": "FULL_OBJECT"}
    hasher = checksums.new_hasher(algorithm)
    for digest in raw:
        hasher.update(digest)
    return {algorithm: f"{checksums.to_b64(hasher.digest())}-{len(parts)}",
            "type": "COMPOSITE"}


def _check_expected_checksums(ctx: Context, upload: Upload,
                              combined: dict[str, str]) -> None:
    """The completion's x-amz-checksum-* headers state the whole object's checksum (and
    x-amz-checksum-type its kind): ``BadDigest`` unless they match what the parts make.

    A composite value is accepted with or without its ``-N`` suffix (clients differ). A
    checksum of another algorithm than the upload's cannot be checked without reading
    the object again: ``InvalidRequest``.
    """
    stated_type = ctx.headers.get("x-amz-checksum-type")
    if stated_type is not None and combined and stated_type.upper() != combined["type"]:
        raise errors.BadDigest(f"The upload was created using the {combined['type']} "
                               f"checksum type, not {stated_type}.")
    for algorithm in checksums.ALGORITHMS:
        stated = ctx.headers.get(checksums.header_name(algorithm))
        if stated is None:
            continue
        actual = combined.get(algorithm)
        if actual is None:
            raise errors.InvalidRequest(
                f"The upload was created using "
                f"{upload.checksum_algorithm or 'no'} checksum algorithm; the completion "
                f"cannot be checked against a {algorithm} checksum.")
        if stated.strip() not in (actual, actual.partition("-")[0]):
            raise errors.BadDigest(f"The {algorithm} you specified did not match the "
                                   "calculated checksum.")


async def _stored_parts(ctx: Context, upload: Upload) -> dict[int, UploadedPart]:
    """Every part of ``upload`` by number; ``NoSuchUpload`` if it ended while being read.

    An abort (or another completion) committing during the read leaves the parts missing,
    and the request would fail with InvalidPart; S3's answer to the loser of that race is
    NoSuchUpload. An upload never comes back, so if it still exists after the read, it
    existed throughout (a part replaced meanwhile is settled by the store's commit).
    """
    stored: dict[int, UploadedPart] = {}
    marker = 0
    while True:
        page, truncated = await ctx.services.store.list_parts(upload.upload_id, marker, 1000)
        stored.update((p.number, p) for p in page)
        if not truncated or not page:
            break
        marker = page[-1].number
    await load_upload(ctx)
    return stored


async def complete_multipart_upload(ctx: Context) -> Reply:
    """CompleteMultipartUpload: check the named parts and commit the object as their
    manifest; parts not named are freed with the upload."""
    # SSE-C headers are optional here (the parts are sealed already), but a key sent in
    # the clear is refused like anywhere else.
    customer_key(ctx, write=False)
    upload = await load_upload(ctx)
    settings = ctx.services.settings
    # Only Content-MD5 speaks of this body: x-amz-checksum-* headers on a completion are
    # the whole object's expected checksum, not the XML's (so not read_small_body).
    body = await ctx.read_body(settings.max_xml_size)
    md5_header = ctx.headers.get("Content-MD5")
    if md5_header is not None and hashlib.md5(body, usedforsecurity=False).digest() != (
            checksums.parse_content_md5(md5_header)):
        raise errors.BadDigest()
    requested = _requested_parts(xmlutil.parse(body, settings.max_xml_size))
    if_match, if_none_match = write_conditions(ctx)
    store = ctx.services.store
    stored = await _stored_parts(ctx, upload)
    chosen: list[UploadedPart] = []
    previous = 0
    for number, etag, sums in requested:
        if number <= previous:
            raise errors.InvalidPartOrder("The list of parts was not in ascending order. "
                                          "Parts must be ordered by part number.",
                                          UploadId=upload.upload_id)
        previous = number
        part = stored.get(number)
        if part is None or part.etag != etag:
            raise errors.InvalidPart("One or more of the specified parts could not be found. "
                                     "The part may not have been uploaded, or the specified "
                                     "entity tag may not match the part's entity tag.",
                                     UploadId=upload.upload_id, PartNumber=str(number),
                                     ETag=etag)
        for algorithm, value in sums.items():
            if part.checksums.get(algorithm) != value:
                raise errors.InvalidPart(f"The {algorithm} checksum of part {number} does not "
                                         "match.", UploadId=upload.upload_id,
                                         PartNumber=str(number))
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise errors.EntityTooSmall(ProposedSize=str(part.size),
                                        MinSizeAllowed=str(MIN_PART_SIZE),
                                        PartNumber=str(part.number), ETag=part.etag)
    size = sum(p.size for p in chosen)
    if size > MAX_OBJECT_SIZE:
        raise errors.EntityTooLarge()
    md5s = b"".join(bytes.fromhex(p.etag) for p in chosen)
    etag = f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(chosen)}"
    combined = _combined_checksum(upload, chosen)
    _check_expected_checksums(ctx, upload, combined)
    record = ObjectRecord(
        bucket=upload.bucket, key=upload.key, blob_id="", size=size, etag=etag,
        last_modified=time.time(), content_type=upload.content_type,
        headers=upload.headers, metadata=upload.metadata, checksums=combined,
        storage_class=upload.storage_class, tags=upload.tags, acl=upload.acl, sse=upload.sse,
        parts=tuple(PartRef(number=p.number, blob_id=p.blob_id, size=p.size, etag=p.etag,
                            checksums=p.checksums) for p in chosen),
    )
    version_id = await store.complete_upload(upload.upload_id, record, if_match=if_match,
                                             if_none_match=if_none_match)
    parts = [xmlutil.element("Location", f"/{upload.bucket}/{upload.key}"),
             xmlutil.element("Bucket", upload.bucket), xmlutil.element("Key", upload.key),
             f"<ETag>&quot;{etag}&quot;</ETag>"]
    headers = {**version_headers(ctx.require_bucket(), version_id, written=True),
               **expiration_headers(ctx, ctx.require_bucket(), upload.key,
                                    record.last_modified)}
    for algorithm, value in combined.items():
        if algorithm == "type":
            parts.append(xmlutil.element("ChecksumType", value))
            headers["x-amz-checksum-type"] = value
        else:
            parts.append(xmlutil.element(f"Checksum{algorithm}", value))
            headers[checksums.header_name(algorithm)] = value
    return _xml_reply("CompleteMultipartUploadResult", parts, headers)


async def abort_multipart_upload(ctx: Context) -> Reply:
    upload = await load_upload(ctx)
    if not await ctx.services.store.abort_upload(upload.upload_id):
        raise errors.NoSuchUpload(UploadId=upload.upload_id)
    return Reply(status=204)


async def _owner_xml(ctx: Context, owner_id: str, tag: str) -> str:
    account = await ctx.services.store.get_account(owner_id)
    display = account.display_name if account else ""
    return f"<{tag}>{xmlutil.element('ID', owner_id)}{xmlutil.element('DisplayName', display)}" \
           f"</{tag}>"


def _int_param(ctx: Context, name: str, default: int, maximum: int | None = None) -> int:
    """A non-negative integer query parameter within S3's range (a signed 32-bit int),
    capped at ``maximum``; ``InvalidArgument`` for anything else (negative, not a number)."""
    raw = ctx.query.get(name)
    if raw is None:
        return default
    if decimal(raw) is None or int(raw) > MAX_QUERY_INT:
        raise errors.InvalidArgument(
            f"Argument {name} must be an integer between 0 and {MAX_QUERY_INT}",
            ArgumentName=name, ArgumentValue=raw)
    value = int(raw)
    return value if maximum is None else min(value, maximum)


async def list_parts(ctx: Context) -> Reply:
    """ListParts: one page of parts above ``part-number-marker``, ``max-parts`` ≤ 1000."""
    upload = await load_upload(ctx)
    # The marker is echoed as given: a marker past 10,000 is valid and lists nothing.
    marker = _int_param(ctx, "part-number-marker", 0)
    max_parts = _int_param(ctx, "max-parts", 1000, 1000)
    parts: list[UploadedPart] = []
    truncated = False
    # max-parts=0: an empty page that claimed more would send paginators round with the
    # same marker; listings answer max-keys=0 the same way.
    if max_parts:
        parts, truncated = await ctx.services.store.list_parts(upload.upload_id, marker,
                                                               max_parts)
    out = [xmlutil.element("Bucket", upload.bucket), xmlutil.element("Key", upload.key),
           xmlutil.element("UploadId", upload.upload_id),
           await _owner_xml(ctx, upload.owner_id, "Initiator"),
           await _owner_xml(ctx, upload.owner_id, "Owner"),
           xmlutil.element("StorageClass", upload.storage_class),
           f"<PartNumberMarker>{marker}</PartNumberMarker>"]
    if parts:
        out.append(f"<NextPartNumberMarker>{parts[-1].number}</NextPartNumberMarker>")
    out.append(f"<MaxParts>{max_parts}</MaxParts>")
    out.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if upload.checksum_algorithm:
        out.append(xmlutil.element("ChecksumAlgorithm", upload.checksum_algorithm))
        out.append(xmlutil.element("ChecksumType", upload.checksum_type))
    for part in parts:
        sums = "".join(xmlutil.element(f"Checksum{a}", v) for a, v in part.checksums.items())
        out.append(f"<Part><PartNumber>{part.number}</PartNumber>"
                   f"<LastModified>{xmlutil.iso_time(part.last_modified)}</LastModified>"
                   f"<ETag>&quot;{part.etag}&quot;</ETag>{sums}<Size>{part.size}</Size></Part>")
    return _xml_reply("ListPartsResult", out,
                      abort_headers(ctx, ctx.require_bucket(), upload.key, upload.initiated))


async def list_multipart_uploads(ctx: Context) -> Reply:
    """ListMultipartUploads: in-progress uploads by key, then initiation, rolled up by the
    delimiter, resuming after (``key-marker``, ``upload-id-marker``)."""
    bucket = ctx.require_bucket()
    prefix = ctx.query.get("prefix", "")
    delimiter = ctx.query.get("delimiter", "")
    key_marker = ctx.query.get("key-marker", "")
    upload_id_marker = ctx.query.get("upload-id-marker", "") if key_marker else ""
    max_uploads = _int_param(ctx, "max-uploads", 1000, 1000)
    encoding = ctx.query.get("encoding-type")
    if encoding is not None and encoding.lower() != "url":
        raise errors.InvalidEncodingType(ArgumentName="encoding-type", ArgumentValue=encoding)
    def enc(value: str) -> str:
        return quote_plus(value, safe="/") if encoding is not None else value

    page = await ctx.services.store.list_uploads(bucket.name, prefix, delimiter, key_marker,
                                                 upload_id_marker, max_uploads)
    out = [xmlutil.element("Bucket", bucket.name), xmlutil.element("KeyMarker", enc(key_marker)),
           xmlutil.element("UploadIdMarker", upload_id_marker)]
    if page.is_truncated:
        out.append(xmlutil.element("NextKeyMarker", enc(page.next_key_marker or "")))
        out.append(xmlutil.element("NextUploadIdMarker", page.next_upload_id_marker or ""))
    out.append(xmlutil.element("Prefix", enc(prefix)))
    if delimiter:
        out.append(xmlutil.element("Delimiter", enc(delimiter)))
    out.append(f"<MaxUploads>{max_uploads}</MaxUploads>")
    if encoding is not None:
        out.append("<EncodingType>url</EncodingType>")
    out.append(f"<IsTruncated>{'true' if page.is_truncated else 'false'}</IsTruncated>")
    owners: dict[str, str] = {}  # a page of a thousand uploads has few initiators
    for upload in page.uploads:
        if upload.owner_id not in owners:
            owners[upload.owner_id] = (await _owner_xml(ctx, upload.owner_id, "Initiator")
                                       + await _owner_xml(ctx, upload.owner_id, "Owner"))
        checksum = (xmlutil.element("ChecksumAlgorithm", upload.checksum_algorithm)
                    + xmlutil.element("ChecksumType", upload.checksum_type)
                    if upload.checksum_algorithm else "")
        out.append(f"<Upload>{xmlutil.element('Key', enc(upload.key))}"
                   f"{xmlutil.element('UploadId', upload.upload_id)}"
                   f"{owners[upload.owner_id]}"
                   f"{xmlutil.element('StorageClass', upload.storage_class)}{checksum}"
                   f"<Initiated>{xmlutil.iso_time(upload.initiated)}</Initiated></Upload>")
    out += [f"<CommonPrefixes>{xmlutil.element('Prefix', enc(p))}</CommonPrefixes>"
            for p in page.common_prefixes]
    return _xml_reply("ListMultipartUploadsResult", out)


HANDLERS: dict[str, Handler] = {
    "CreateMultipartUpload": create_multipart_upload,
    "UploadPart": upload_part,
    "CompleteMultipartUpload": complete_multipart_upload,
    "AbortMultipartUpload": abort_multipart_upload,
    "ListParts": list_parts,
    "ListMultipartUploads": list_multipart_uploads,
}
