"""POST Object: a browser upload from an HTML form, signed by a POST policy.

The form is read as a stream (:mod:`cargohold.postform`): its fields, then the file, which goes
straight to a blob (or, up to 64 KiB, into the metadata row, like a small PUT). The dispatcher
neither authenticates nor authorizes this operation (``Operation.authenticates_itself``):
the signature is in the form, so this handler verifies it
(:mod:`cargohold.auth.postpolicy`), enforces the policy and runs the access check before it
reads a byte of the file.

Form fields stand for PutObject's headers: ``Content-Type`` (default
``binary/octet-stream``; the file part's own Content-Type is not used, as in S3),
``Cache-Control``, ``Content-Disposition``, ``Content-Encoding``, ``Content-Language``,
``Expires``, ``x-amz-meta-*``, ``acl`` (a canned ACL), ``tagging`` (a ``<Tagging>`` document),
``x-amz-storage-class``, ``Content-MD5`` and ``x-amz-checksum-*``. ``${filename}`` in any
field becomes the file's name without its path; a file part without a ``filename`` leaves it
as it is (as S3 was recorded doing).

The answer, as S3's: ``success_action_redirect`` (or the older ``redirect``), when it is an
absolute http(s) URL, is a 303 to it with ``bucket``, ``key`` and the quoted ``etag`` added to
its query; otherwise ``success_action_status`` 200 or 201 (with a ``PostResponse`` document),
and 204 for anything else. Every success carries the ETag and the object's URL as
``Location``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from cargohold import access, acl, checksums, errors, postform, xmlutil
from cargohold.auth import postpolicy
from cargohold.checksums import Hasher
from cargohold.handlers.acls import stored
from cargohold.handlers.context import (
    Context,
    Handler,
    Reply,
    expiration_headers,
    version_headers,
)
from cargohold.handlers.intake import INLINE_MAX, freed_if_refused
from cargohold.handlers.objects import STORAGE_CLASSES, STORED_HEADERS, validate_key
from cargohold.handlers.tagging import parse_tagging_xml
from cargohold.http.addressing import Addressing
from cargohold.store.base import ObjectRecord
from cargohold.store.blobs import BlobWriter

FILENAME_VARIABLE = "${filename}"
_SUCCESS_STATUSES = {"200": 200, "201": 201, "204": 204}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PATH_SEPARATORS = re.compile(r"[/\\]")


@dataclass(frozen=True)
class _Received:
    blob_id: str  # "" when the bytes are inline or there are none
    size: int
    md5_hex: str
    inline: bytes | None


async def post_object(ctx: Context) -> Reply:
    """Store the form's file as an object; see the module docstring for the whole contract.

    Everything that can refuse the upload (form shape, signature, policy, access, the
    fields' values) is checked before the file is read; only its size and digests after.
    """
    form = postform.FormReader(ctx.body.chunks(),
                               postform.boundary_of(ctx.headers.get("Content-Type")))
    head = await form.read_head()
    fields = _fields(head)
    if "key" not in fields:
        # Fields after the file are ignored, so a key placed there is missing too.
        raise errors.InvalidArgument("Bucket POST must contain a field named 'key'.  If it is "
                                     "specified, please check the order of the fields.",
                                     ArgumentName="key", ArgumentValue="")
    if head.file is None:
        raise errors.InvalidArgument("POST requires exactly one file upload per request.",
                                     ArgumentName="file", ArgumentValue="0")
    signed = await postpolicy.authenticate(fields, ctx.services.keys.get)
    if signed.policy is not None:
        postpolicy.check_form(signed.policy, fields, ctx.bucket_name or "", time.time())
    principal = signed.principal
    if ctx.bucket is None and not principal.is_anonymous:
        raise errors.NoSuchBucket(BucketName=ctx.bucket_name or "")
    key = fields["key"]

    def conditions() -> Mapping[str, Sequence[str]]:
        # The dispatcher's condition keys describe the (anonymous) request headers; this
        # request's principal and ACL are the form's.
        context = dict(ctx.conditions()) if ctx.conditions is not None else {}
        context["aws:principaltype"] = ["Anonymous" if principal.is_anonymous else "Account"]
        if "acl" in fields:
            context["s3:x-amz-acl"] = [fields["acl"]]
        return context

    await access.authorize(principal, ctx.operation, ctx.bucket, key, context=conditions)
    bucket = ctx.require_bucket()  # authorize refuses a missing bucket; this is for typing
    if not key:
        raise errors.InvalidArgument("User key must have a length greater than 0.",
                                     ArgumentName="key", ArgumentValue="")
    validate_key(key)
    if any(name.startswith("x-amz-server-side-encryption") for name in fields):
        # Storing plaintext when the form asked for encryption would be worse than refusing.
        raise errors.NotImplementedError_(
            "Server-side encryption is not supported for browser POST uploads; use PutObject "
            "with SSE-C headers.")
    settings = ctx.services.settings
    acl_text = _acl(fields.get("acl"), bucket.owner_id)
    storage_class = fields.get("x-amz-storage-class", "STANDARD").strip().upper()
    if storage_class not in STORAGE_CLASSES:
        raise errors.InvalidStorageClass(StorageClassRequested=storage_class)
    metadata = _metadata(fields, settings.max_metadata_size)
    headers = {name: fields[name] for name in STORED_HEADERS if name in fields}
    tagging = fields.get("tagging")
    tags = parse_tagging_xml(tagging.encode(), settings.max_xml_size) if tagging else {}
    md5_field = fields.get("content-md5")
    expected_md5 = checksums.parse_content_md5(md5_field) if md5_field is not None else None
    plan = checksums.ChecksumPlan(fields, [])

    # The whole form's length: its file is most of it.
    await ctx.services.blobs.check_room(ctx.content_length or 0)
    received = await _receive(ctx, form, signed.policy, list(plan.hashers.values()))
    async with freed_if_refused(ctx, [received.blob_id]):
        if signed.policy is not None:
            postpolicy.check_length(signed.policy, received.size)
        if expected_md5 is not None and bytes.fromhex(received.md5_hex) != expected_md5:
            raise errors.BadDigest("The Content-MD5 you specified did not match what we "
                                   "received.")
        computed = plan.verify()
        record = ObjectRecord(
            bucket=bucket.name, key=key, blob_id=received.blob_id, size=received.size,
            etag=received.md5_hex, inline=received.inline, last_modified=time.time(),
            content_type=fields.get("content-type") or "binary/octet-stream",
            headers=headers, metadata=metadata, tags=tags, acl=acl_text,
            checksums={**computed, "type": "FULL_OBJECT"} if computed else {},
            storage_class=storage_class,
        )
        version_id = await ctx.services.store.put_object(record)
    reply = _reply(ctx, fields, record, computed)
    reply.headers.update(version_headers(bucket, version_id, written=True))
    reply.headers.update(expiration_headers(ctx, bucket, key, record.last_modified))
    return reply


def _fields(head: postform.FormHead) -> dict[str, str]:
    """Lower-case name -> value; repeated fields joined by commas (S3's rule for the policy),
    ``${filename}`` expanded everywhere but in the signed policy text."""
    fields: dict[str, str] = {}
    for name, value in head.fields:
        fields[name] = f"{fields[name]},{value}" if name in fields else value
    filename = head.file.filename if head.file is not None else None
    if filename is not None:
        # "only the text following the last slash (/) or backslash (\) is used"
        base = _PATH_SEPARATORS.split(filename)[-1]
        for name, value in fields.items():
            if name != "policy" and FILENAME_VARIABLE in value:
                fields[name] = value.replace(FILENAME_VARIABLE, base)
    return fields


def _acl(name: str | None, owner_id: str) -> str:
    """The stored ACL the ``acl`` field asks for (``""``: private, the default)."""
    if name is None or not name.strip():
        return ""
    try:
        return stored(acl.canned(name.strip(), owner_id))
    except errors.InvalidArgument as exc:
        raise errors.InvalidArgument(ArgumentName="acl", ArgumentValue=name) from exc


def _metadata(fields: Mapping[str, str], limit: int) -> dict[str, str]:
    """``x-amz-meta-*`` fields (names in lower case, as S3 stores them), capped in size."""
    metadata = {name[len("x-amz-meta-"):]: value for name, value in fields.items()
                if name.startswith("x-amz-meta-")}
    size = sum(len(name) + len(value.encode()) for name, value in metadata.items())
    if size > limit:
        raise errors.MetadataTooLarge(Size=str(size), MaxSizeAllowed=str(limit))
    return metadata


async def _receive(ctx: Context, form: postform.FormReader,
                   policy: postpolicy.PostPolicy | None, hashers: list[Hasher]) -> _Received:
    """Stream the file: small ones stay in memory, the rest go to a blob as they arrive.

    A file larger than the object size limit (or the policy's ``content-length-range``) is
    refused as soon as it passes it; its remaining bytes are still read (not stored), so the
    error names its real size and a browser, still sending, gets to read the answer.
    """
    limit = ctx.services.settings.max_object_size
    if policy is not None and policy.max_length is not None:
        limit = min(limit, policy.max_length)
    md5 = hashlib.md5(usedforsecurity=False)
    pieces: list[bytes] = []
    size = 0
    writer: BlobWriter | None = None
    content = form.file_content()
    try:
        async for piece in content:
            size += len(piece)
            if size > limit:
                async for rest in content:
                    size += len(rest)
                if policy is not None:
                    postpolicy.check_length(policy, size)
                raise errors.EntityTooLarge(ProposedSize=str(size), MaxSizeAllowed=str(limit))
            if writer is not None:
                await writer.write(piece)
                continue
            pieces.append(piece)
            if size > INLINE_MAX:
                writer = ctx.services.blobs.open_writer([md5, *hashers])
                for held in pieces:
                    await writer.write(held)
                pieces = []
        await form.skip_rest()
        if writer is None:
            data = b"".join(pieces)
            for hasher in (md5, *hashers):
                hasher.update(data)
            return _Received("", size, md5.hexdigest(), data if data else None)
        # The writer hashes in its worker thread as it flushes; digests are final at commit.
        blob_id = await writer.commit()
    except BaseException:
        if writer is not None:
            await writer.abort()  # nothing once committed
        raise
    return _Received(blob_id, size, md5.hexdigest(), None)


def _reply(ctx: Context, fields: Mapping[str, str], record: ObjectRecord,
           computed: Mapping[str, str]) -> Reply:
    etag = f'"{record.etag}"'
    headers = {"ETag": etag, "Location": _object_url(ctx, record.bucket, record.key)}
    for algorithm, value in computed.items():
        headers[checksums.header_name(algorithm)] = value
    if computed:
        headers["x-amz-checksum-type"] = "FULL_OBJECT"
    target = fields.get("success_action_redirect") or fields.get("redirect")
    redirect = _redirect_url(target, record.bucket, record.key, etag) if target else None
    if redirect is not None:
        headers["Location"] = redirect
        return Reply(status=303, headers=headers)
    status = _SUCCESS_STATUSES.get(fields.get("success_action_status", "").strip(), 204)
    if status != 201:
        return Reply(status=status, headers=headers)
    body = (f"{xmlutil.XML_DECL}<PostResponse>"
            f"{xmlutil.element('Location', headers['Location'])}"
            f"{xmlutil.element('Bucket', record.bucket)}{xmlutil.element('Key', record.key)}"
            f"{xmlutil.element('ETag', etag)}</PostResponse>").encode()
    headers["Content-Type"] = "application/xml"
    return Reply(status=201, headers=headers, body=body)


@functools.lru_cache(maxsize=8)
def _addressing(region: str, domain: str) -> Addressing:
    return Addressing(region, domain)


def _object_url(ctx: Context, bucket: str, key: str) -> str:
    """The new object's URL in the style the form was posted with (S3 escapes ``/`` too)."""
    host = ctx.headers.get("Host", "")
    # TLS terminated here, or by a proxy in front that says so.
    forwarded = ctx.headers.get("X-Forwarded-Proto", "").lower() == "https"
    scheme = "https" if ctx.secure or forwarded else "http"
    settings = ctx.services.settings
    path = quote(key, safe="")
    if _addressing(settings.region, settings.domain).host_bucket(host) != bucket:
        path = f"{quote(bucket, safe='')}/{path}"
    return f"{scheme}://{host}/{path}"


def _redirect_url(target: str, bucket: str, key: str, etag: str) -> str | None:
    """``target`` with bucket, key and etag added to its query; None if S3 would ignore it
    ("If Amazon S3 cannot interpret the URL, it acts as if the field is not present")."""
    if _CONTROL.search(target):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    base, hash_mark, fragment = target.partition("#")
    separator = "?" if "?" not in base else ("" if base.endswith(("?", "&")) else "&")
    query = urlencode([("bucket", bucket), ("key", key), ("etag", etag)])
    return f"{base}{separator}{query}{hash_mark}{fragment}"


HANDLERS: dict[str, Handler] = {"PostObject": post_object}
