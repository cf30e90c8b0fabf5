"""Listing: ListObjects (v1), ListObjectsV2, ListObjectVersions.

With ``encoding-type=url`` every key-like string (Key, Prefix, Delimiter, Marker,
NextMarker, StartAfter, KeyMarker, NextKeyMarker, CommonPrefixes) is encoded the same way:
a server that encoded Key but not NextMarker once sent boto3 into an endless loop.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from urllib.parse import quote_plus

from cargohold import errors, xmlutil
from cargohold.handlers.context import Context, Handler, Reply
from cargohold.store.base import Account, ListEntry, ListPage, VersionEntry, is_version_id

MAX_KEYS = 1000


def _identity(value: str) -> str:
    return value


def _encoder(ctx: Context) -> Callable[[str], str]:
    encoding = ctx.query.get("encoding-type")
    if encoding is None:
        return _identity
    if encoding.lower() != "url":
        raise errors.InvalidEncodingType(ArgumentName="encoding-type",
                                         ArgumentValue=encoding)
    return lambda value: quote_plus(value, safe="/")


def _max_keys(ctx: Context) -> int:
    raw = ctx.query.get("max-keys")
    if raw is None:
        return MAX_KEYS
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise errors.InvalidArgument("Provided max-keys not an integer or within integer range",
                                     ArgumentName="max-keys", ArgumentValue=raw)
    return min(value, MAX_KEYS)


async def _page(ctx: Context, start_after: str, max_keys: int) -> ListPage:
    bucket = ctx.require_bucket()
    return await ctx.services.store.list_objects(
        bucket.name,
        prefix=ctx.query.get("prefix", ""),
        delimiter=ctx.query.get("delimiter", ""),
        start_after=start_after,
        max_keys=max_keys,
    )


def _owner_xml(owner: Account | None, owner_id: str) -> str:
    display = owner.display_name if owner else ""
    return (f"<Owner>{xmlutil.element('ID', owner_id)}"
            f"{xmlutil.element('DisplayName', display)}</Owner>")


def _contents(entries: list[ListEntry], enc: Callable[[str], str],
              owner_xml: str | None) -> list[str]:
    """Entry elements (a thousand per page: the unencoded case skips a call per key)."""
    plain = enc is _identity
    parts = []
    owner = owner_xml or ""
    iso_time = xmlutil.iso_time
    table = xmlutil.XML_ESCAPES
    for entry in entries:
        key = entry.key if plain else enc(entry.key)
        checksum = (f"<ChecksumAlgorithm>{entry.checksum_algorithm}</ChecksumAlgorithm>"
                    f"<ChecksumType>{entry.checksum_type}</ChecksumType>"
                    if entry.checksum_algorithm else "")
        parts.append(
            f"<Contents><Key>{key.translate(table)}</Key>"
            f"<LastModified>{iso_time(entry.last_modified)}</LastModified>"
            f"<ETag>&quot;{entry.etag}&quot;</ETag>{checksum}<Size>{entry.size}</Size>"
            f"{owner}<StorageClass>{entry.storage_class}</StorageClass></Contents>"
        )
    return parts


def _prefixes(prefixes: list[str], enc: Callable[[str], str]) -> list[str]:
    return [f"<CommonPrefixes><Prefix>{xmlutil.escape(enc(p))}</Prefix></CommonPrefixes>"
            for p in prefixes]


def _common_fields(ctx: Context, enc: Callable[[str], str], max_keys: int) -> list[str]:
    bucket = ctx.require_bucket()
    parts = [xmlutil.element("Name", bucket.name),
             xmlutil.element("Prefix", enc(ctx.query.get("prefix", "")))]
    delimiter = ctx.query.get("delimiter", "")
    if delimiter:
        parts.append(xmlutil.element("Delimiter", enc(delimiter)))
    parts.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if "encoding-type" in ctx.query:
        parts.append("<EncodingType>url</EncodingType>")
    return parts


async def _owner(ctx: Context) -> Account | None:
    return await ctx.services.store.get_account(ctx.require_bucket().owner_id)


async def list_objects(ctx: Context) -> Reply:
    enc = _encoder(ctx)
    max_keys = _max_keys(ctx)
    marker = ctx.query.get("marker", "")
    page = await _page(ctx, marker, max_keys)
    owner = _owner_xml(await _owner(ctx), ctx.require_bucket().owner_id)
    parts = _common_fields(ctx, enc, max_keys)
    parts.insert(2, xmlutil.element("Marker", enc(marker)))
    parts.append(f"<IsTruncated>{'true' if page.is_truncated else 'false'}</IsTruncated>")
    # S3 sends NextMarker only with a delimiter; without one clients use the last Key.
    if page.is_truncated and ctx.query.get("delimiter") and page.next_marker is not None:
        parts.append(xmlutil.element("NextMarker", enc(page.next_marker)))
    parts += _contents(page.entries, enc, owner)
    parts += _prefixes(page.common_prefixes, enc)
    return Reply(body=xmlutil.document("ListBucketResult", parts),
                 headers={"Content-Type": "application/xml"})


def _decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4))
        marker = raw.decode()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidArgument("The continuation token provided is incorrect",
                                     ArgumentName="continuation-token") from exc
    if not marker.startswith("1:"):
        raise errors.InvalidArgument("The continuation token provided is incorrect",
                                     ArgumentName="continuation-token")
    return marker[2:]


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(("1:" + marker).encode()).decode().rstrip("=")


async def list_objects_v2(ctx: Context) -> Reply:
    enc = _encoder(ctx)
    max_keys = _max_keys(ctx)
    token = ctx.query.get("continuation-token")
    start_after = ctx.query.get("start-after", "")
    if token is not None:
        if not token:
            raise errors.InvalidArgument("The continuation token provided is incorrect",
                                         ArgumentName="continuation-token")
        position = _decode_token(token)
    else:
        position = start_after
    page = await _page(ctx, position, max_keys)
    fetch_owner = ctx.query.get("fetch-owner", "").lower() == "true"
    owner = (_owner_xml(await _owner(ctx), ctx.require_bucket().owner_id)
             if fetch_owner else None)
    parts = _common_fields(ctx, enc, max_keys)
    parts.append(f"<KeyCount>{len(page.entries) + len(page.common_prefixes)}</KeyCount>")
    if token is not None:
        parts.append(xmlutil.element("ContinuationToken", token))
    if start_after:
        parts.append(xmlutil.element("StartAfter", enc(start_after)))
    parts.append(f"<IsTruncated>{'true' if page.is_truncated else 'false'}</IsTruncated>")
    if page.is_truncated and page.next_marker is not None:
        parts.append(xmlutil.element("NextContinuationToken", _encode_token(page.next_marker)))
    parts += _contents(page.entries, enc, owner)
    parts += _prefixes(page.common_prefixes, enc)
    return Reply(body=xmlutil.document("ListBucketResult", parts),
                 headers={"Content-Type": "application/xml"})


async def list_object_versions(ctx: Context) -> Reply:
    """Every version and delete marker, by key and newest first; a bucket that never had
    versioning shows each object as its ``null`` version (cleanup tools ask)."""
    bucket = ctx.require_bucket()
    enc = _encoder(ctx)
    max_keys = _max_keys(ctx)
    key_marker = ctx.query.get("key-marker", "")
    version_marker = ctx.query.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise errors.InvalidArgument("A version-id marker cannot be specified without a key "
                                     "marker.", ArgumentName="version-id-marker",
                                     ArgumentValue=version_marker)
    if version_marker and not is_version_id(version_marker):
        raise errors.InvalidArgument("Invalid version id specified",
                                     ArgumentName="version-id-marker",
                                     ArgumentValue=version_marker)
    page = await ctx.services.store.list_object_versions(
        bucket.name, prefix=ctx.query.get("prefix", ""),
        delimiter=ctx.query.get("delimiter", ""), key_marker=key_marker,
        version_id_marker=version_marker, max_keys=max_keys)
    owner = _owner_xml(await _owner(ctx), bucket.owner_id)
    parts = _common_fields(ctx, enc, max_keys)
    parts.insert(2, xmlutil.element("KeyMarker", enc(key_marker)))
    parts.insert(3, xmlutil.element("VersionIdMarker", version_marker))
    parts.append(f"<IsTruncated>{'true' if page.is_truncated else 'false'}</IsTruncated>")
    if page.next_key_marker is not None:
        parts.append(xmlutil.element("NextKeyMarker", enc(page.next_key_marker)))
    if page.next_version_id_marker is not None:
        parts.append(xmlutil.element("NextVersionIdMarker", page.next_version_id_marker))
    parts += _versions(page.entries, enc, owner)
    parts += _prefixes(page.common_prefixes, enc)
    return Reply(body=xmlutil.document("ListVersionsResult", parts),
                 headers={"Content-Type": "application/xml"})


def _versions(entries: list[VersionEntry], enc: Callable[[str], str], owner: str) -> list[str]:
    """``<Version>`` and ``<DeleteMarker>`` elements, in listing order."""
    iso_time = xmlutil.iso_time
    parts = []
    for entry in entries:
        head = (f"<Key>{xmlutil.escape(enc(entry.key))}</Key>"
                f"<VersionId>{entry.version_id}</VersionId>"
                f"<IsLatest>{'true' if entry.is_latest else 'false'}</IsLatest>"
                f"<LastModified>{iso_time(entry.last_modified)}</LastModified>")
        if entry.delete_marker:
            parts.append(f"<DeleteMarker>{head}{owner}</DeleteMarker>")
            continue
        checksum = (f"<ChecksumAlgorithm>{entry.checksum_algorithm}</ChecksumAlgorithm>"
                    f"<ChecksumType>{entry.checksum_type}</ChecksumType>"
                    if entry.checksum_algorithm else "")
        parts.append(f"<Version>{head}<ETag>&quot;{entry.etag}&quot;</ETag>{checksum}"
                     f"<Size>{entry.size}</Size><StorageClass>{entry.storage_class}"
                     f"</StorageClass>{owner}</Version>")
    return parts


HANDLERS: dict[str, Handler] = {
    "ListObjects": list_objects,
    "ListObjectsV2": list_objects_v2,
    "ListObjectVersions": list_object_versions,
}
