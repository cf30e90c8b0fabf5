"""Object tagging: PutObjectTagging, GetObjectTagging, DeleteObjectTagging.

Tags live on the object row (``ObjectRecord.tags``), so GET and HEAD report
``x-amz-tagging-count`` from the row they read anyway. Writes that create an object
(PutObject, CreateMultipartUpload, CopyObject with ``x-amz-tagging-directive: REPLACE``)
take their tags from the ``x-amz-tagging`` header through :func:`tags_from_header`.

The rules are S3's: at most 10 tags; a key of 1-128 and a value of 0-256 Unicode
characters, letters, digits and spaces of any script plus ``+ - = . _ : / @``; unique keys;
no ``aws:`` prefix (reserved for system tags).

Bucket tagging is answered with a specific ``NotImplemented``: DigitalOcean Spaces, the
service this server models, does not have it.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from urllib.parse import unquote_plus

from cargohold import errors, xmlutil
from cargohold.handlers.context import (
    Context,
    Handler,
    Reply,
    load_current_object,
    requested_version,
    version_headers,
)
from cargohold.handlers.intake import read_small_body

MAX_TAGS: Final = 10
MAX_KEY_CHARS: Final = 128
MAX_VALUE_CHARS: Final = 256
RESERVED_PREFIX: Final = "aws:"
# Besides letters, digits and separators (Unicode L*, N*, Z*): S3's tag pattern is
# [\p{L}\p{Z}\p{N}_.:/=+\-@]*.
_TAG_PUNCTUATION: Final = frozenset("_.:/=+-@")
_HEADER_MESSAGE: Final = (
    "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
    "parameters without tag name duplicates."
)
# A "%" that does not start a two-digit hex escape: unquote would keep it literally, S3
# refuses the header.
_BAD_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _allowed(text: str) -> bool:
    """Whether every character of ``text`` may appear in a tag key or value."""
    if text.isascii():
        # The common case without a Unicode database lookup per character.
        return all(c.isalnum() or c == " " or c in _TAG_PUNCTUATION for c in text)
    return all(c in _TAG_PUNCTUATION or unicodedata.category(c)[0] in "LNZ" for c in text)


def validate_tags(tags: list[tuple[str, str]]) -> dict[str, str]:
    """Check a tag set against S3's rules and return it as a dict (in the given order).

    Raises ``InvalidTag`` with S3's message for too many tags, an empty, too long,
    ``aws:``-prefixed or ill-charactered key, a too long or ill-charactered value, and a
    repeated key.
    """
    if len(tags) > MAX_TAGS:
        raise errors.InvalidTag(f"Object tags cannot be greater than {MAX_TAGS}")
    result: dict[str, str] = {}
    for key, value in tags:
        if len(key) > MAX_KEY_CHARS:
            raise errors.InvalidTag(
                f"The TagKey you have provided is too long, max {MAX_KEY_CHARS}", TagKey=key)
        if key.startswith(RESERVED_PREFIX):
            raise errors.InvalidTag("Your TagKey cannot be prefixed with aws:", TagKey=key)
        if not key or not _allowed(key):
            raise errors.InvalidTag("The TagKey you have provided is invalid", TagKey=key)
        if len(value) > MAX_VALUE_CHARS:
            raise errors.InvalidTag(
                f"The TagValue you have provided is too long, max {MAX_VALUE_CHARS}",
                TagKey=key, TagValue=value)
        if not _allowed(value):
            raise errors.InvalidTag("The TagValue you have provided is invalid",
                                    TagKey=key, TagValue=value)
        if key in result:
            raise errors.InvalidTag("Cannot provide multiple Tags with the same key",
                                    TagKey=key)
        result[key] = value
    return result


def parse_tagging_header(value: str) -> dict[str, str]:
    """The tags of an ``x-amz-tagging`` value (``k1=v1&k2=v2``, URL-query encoded).

    Bad encoding (stray ``%``, escapes that are not UTF-8), characters a tag cannot hold
    and repeated keys are ``InvalidArgument`` naming the header, as in S3; the tag rules
    themselves (count, lengths, ``aws:``) are ``InvalidTag`` from :func:`validate_tags`.
    """

    def refuse() -> errors.S3Error:
        return errors.InvalidArgument(_HEADER_MESSAGE, ArgumentName="x-amz-tagging",
                                      ArgumentValue=value)

    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in value.split("&"):
        if not item:
            continue  # "a=1&&b=2" and a trailing "&" carry no tag
        raw_key, _, raw_value = item.partition("=")
        if _BAD_ESCAPE.search(item):
            raise refuse()
        try:
            key = unquote_plus(raw_key, errors="strict")
            tag_value = unquote_plus(raw_value, errors="strict")
        except UnicodeDecodeError as exc:
            raise refuse() from exc
        if key in seen or not _allowed(key) or not _allowed(tag_value):
            raise refuse()
        seen.add(key)
        pairs.append((key, tag_value))
    return validate_tags(pairs)


def tags_from_header(ctx: Context) -> dict[str, str] | None:
    """The tags an object-creating request asks for in ``x-amz-tagging``.

    ``None`` when the header is absent (the caller decides what that means: no tags for
    a new object, the source's tags for a copy); ``{}`` for an empty header. Raises the
    S3 errors of :func:`parse_tagging_header`.
    """
    value = ctx.headers.get("x-amz-tagging")
    if value is None:
        return None
    return parse_tagging_header(value)


def parse_tagging_xml(body: bytes, max_size: int) -> dict[str, str]:
    """The tag set of a ``<Tagging><TagSet><Tag><Key/><Value/></Tag>...`` document.

    Anything not of that shape (another root, no TagSet, a Tag without exactly one Key and
    one Value) is ``MalformedXML``; the tags are checked by :func:`validate_tags`.
    """
    root = xmlutil.parse(body, max_size)
    if root.tag != "Tagging":
        raise errors.MalformedXML()
    tag_sets = root.findall("TagSet")
    if len(tag_sets) != 1 or len(root) != 1:
        raise errors.MalformedXML()
    pairs: list[tuple[str, str]] = []
    for tag in tag_sets[0]:
        if tag.tag != "Tag" or sorted(child.tag for child in tag) != ["Key", "Value"]:
            raise errors.MalformedXML()
        pairs.append((xmlutil.child_text(tag, "Key") or "",
                      xmlutil.child_text(tag, "Value") or ""))
    return validate_tags(pairs)


async def put_object_tagging(ctx: Context) -> Reply:
    """Replace the object's tag set (the object's bytes, ETag and Last-Modified stay)."""
    key = ctx.require_key()
    bucket = ctx.require_bucket()
    version_id = requested_version(ctx)
    body = await read_small_body(ctx, ctx.services.settings.max_xml_size)
    tags = parse_tagging_xml(body, ctx.services.settings.max_xml_size)
    record = await ctx.services.store.set_object_tags(bucket.name, key, tags, version_id)
    return Reply(status=200, headers=version_headers(bucket, record.version_id))


async def get_object_tagging(ctx: Context) -> Reply:
    """The object's tag set as ``<Tagging>`` XML (an empty TagSet when it has none)."""
    record = await load_current_object(ctx)
    tags = "".join(
        f"<Tag>{xmlutil.element('Key', k)}{xmlutil.element('Value', v)}</Tag>"
        for k, v in record.tags.items())
    return Reply(body=xmlutil.document("Tagging", [f"<TagSet>{tags}</TagSet>"]),
                 headers={"Content-Type": "application/xml",
                          **version_headers(ctx.require_bucket(), record.version_id)})


async def delete_object_tagging(ctx: Context) -> Reply:
    """Remove every tag of the object: 204, like S3."""
    key = ctx.require_key()
    bucket = ctx.require_bucket()
    record = await ctx.services.store.set_object_tags(bucket.name, key, {},
                                                      requested_version(ctx))
    return Reply(status=204, headers=version_headers(bucket, record.version_id))


async def bucket_tagging_not_supported(ctx: Context) -> Reply:
    """Get/Put/DeleteBucketTagging: Spaces has no bucket tags, so say exactly that.

    Registered (rather than left to the dispatcher's generic answer) so the bucket and the
    caller's access are checked first, and the message names what is missing.
    """
    raise errors.NotImplementedError_("Bucket tagging is not supported.")


HANDLERS: dict[str, Handler] = {
    "PutObjectTagging": put_object_tagging,
    "GetObjectTagging": get_object_tagging,
    "DeleteObjectTagging": delete_object_tagging,
    "GetBucketTagging": bucket_tagging_not_supported,
    "PutBucketTagging": bucket_tagging_not_supported,
    "DeleteBucketTagging": bucket_tagging_not_supported,
}
