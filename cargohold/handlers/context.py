"""What a handler receives and what it returns.

Handlers never see aiohttp: they get a :class:`Context` (operation, bucket, key, decoded
query, headers, principal, a body source and the services) and return a :class:`Reply`
(status, headers, and bytes, file segments to send with ``sendfile``, or a byte stream).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Protocol

from multidict import CIMultiDictProxy, MultiMapping

from cargohold import errors
from cargohold.access import ObjectLoader
from cargohold.auth.model import AuthResult, Principal
from cargohold.cache import TtlCache
from cargohold.checksums import Hasher
from cargohold.config import Settings
from cargohold.lifecycle import LifecycleConfig, expiration_header
from cargohold.numbers import decimal
from cargohold.operations import Operation
from cargohold.store.base import (
    AccessKey,
    Bucket,
    MetadataStore,
    ObjectRecord,
    is_version_id,
)
from cargohold.store.blobs import BlobStore

# How long a worker trusts a cached access key (see cargohold/cache.py).
LOOKUP_CACHE_SECONDS = 1.0


@dataclass
class Services:
    """Long-lived parts shared by every request in one worker process."""

    settings: Settings
    store: MetadataStore
    blobs: BlobStore
    # Buckets are not cached here with a TTL: a bucket deleted and re-created by another
    # account would keep its old owner in a stale entry, and ownership decides access.
    # (The SQLite store caches its reads exactly, until a write they can see commits:
    # store/sqlite.py.)
    keys: TtlCache[AccessKey] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = TtlCache(self.store.get_key, LOOKUP_CACHE_SECONDS)


class Body(Protocol):
    """The request payload, decoded and verified while it streams."""

    def chunks(self) -> AsyncIterator[bytes]: ...

    @property
    def trailers(self) -> dict[str, str]: ...

    def detach_sha256(self) -> Hasher | None: ...

    def check_sha256(self) -> None: ...


@dataclass(frozen=True)
class FileSegment:
    """``length`` bytes of the file at ``path`` from ``offset``: sent with sendfile."""

    path: str
    offset: int
    length: int


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    segments: list[FileSegment] | None = None  # a file body instead of ``body``
    # A streamed body instead of ``body`` (decrypted SSE-C bytes): sent as it is produced,
    # with ``content_length`` as its length.
    stream: AsyncIterator[bytes] | None = None
    content_length: int | None = None  # for HEAD (and a stream): the length a GET sends


@dataclass
class Context:
    request_id: str
    method: str
    operation: Operation
    bucket_name: str | None
    key: str | None
    query: MultiMapping[str]
    headers: CIMultiDictProxy[str]
    auth: AuthResult
    services: Services
    body: Body
    content_length: int | None  # declared payload length (decoded length for aws-chunked)
    bucket: Bucket | None = None  # loaded by the access check when the target has a bucket
    # Policy condition keys of this request, for access checks a handler makes itself (a
    # copy's source); built on demand.
    conditions: Callable[[], Mapping[str, Sequence[str]]] | None = None
    remote: str = ""  # the client's address
    # The object the request names, loaded at most once: the access check may already
    # have read it (to decide by its ACL or tags), and the handler then uses that read.
    target: ObjectLoader | None = None
    secure: bool = False  # the request came over TLS

    @property
    def principal(self) -> Principal:
        return self.auth.principal

    def require_bucket(self) -> Bucket:
        if self.bucket is None:
            raise errors.NoSuchBucket(BucketName=self.bucket_name or "")
        return self.bucket

    def require_key(self) -> str:
        assert self.key is not None  # the registry only routes object operations with a key
        return self.key

    async def read_body(self, limit: int) -> bytes:
        """The whole (small) body, for XML requests; ``MalformedXML`` past ``limit``."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.body.chunks():
            size += len(chunk)
            if size > limit:
                raise errors.MalformedXML(
                    "The XML you provided was larger than the maximum allowed.")
            parts.append(chunk)
        return b"".join(parts)


Handler = Callable[[Context], Awaitable[Reply]]


def object_loader(store: MetadataStore, bucket: str, key: str,
                  version_id: str | None = None) -> ObjectLoader:
    """Loads the object (or the version ``version_id``, delete markers included) at most
    once however often it is asked for."""
    loaded: list[ObjectRecord | None] = []

    async def load() -> ObjectRecord | None:
        if not loaded:
            loaded.append(await store.get_object(bucket, key) if version_id is None
                          else await store.get_version(bucket, key, version_id))
        return loaded[0]

    return load


def requested_version(ctx: Context, parameter: str = "versionId") -> str | None:
    """The version a request names (``None`` for the current one); ``InvalidArgument`` for
    an id this server cannot have made."""
    version_id = ctx.query.get(parameter)
    if version_id is not None and not is_version_id(version_id):
        raise errors.InvalidArgument("Invalid version id specified",
                                     ArgumentName=parameter, ArgumentValue=version_id)
    return version_id


async def load_version(store: MetadataStore, bucket: Bucket, key: str,
                       version_id: str | None, method: str,
                       loader: ObjectLoader | None = None,
                       marker_headers: bool = True) -> ObjectRecord:
    """The current object or the version named, as S3 refuses the missing ones.

    No current object: ``NoSuchKey``, with ``x-amz-delete-marker`` when a delete marker
    hides the key (unless ``marker_headers`` is false: a copy's source, whose response
    headers name the copy). A named version: ``NoSuchVersion`` when absent, 405
    ``MethodNotAllowed`` when it is a delete marker.
    """
    if loader is not None:
        record = await loader()
    elif version_id is None:
        record = await store.get_object(bucket.name, key)
    else:
        record = await store.get_version(bucket.name, key, version_id)
    if version_id is None:
        if record is not None:
            return record
        missing = errors.NoSuchKey(Key=key)
        marker = (await store.get_version(bucket.name, key, None)
                  if bucket.versioning and marker_headers else None)
        if marker is not None and marker.delete_marker:
            missing.headers.update({"x-amz-delete-marker": "true",
                                    "x-amz-version-id": marker.version_id})
        raise missing
    if record is None:
        raise errors.NoSuchVersion(Key=key, VersionId=version_id)
    if record.delete_marker:
        refused = errors.MethodNotAllowed(
            "The specified method is not allowed against this resource.",
            Method=method, ResourceType="DeleteMarker")
        refused.headers.update({"x-amz-delete-marker": "true", "x-amz-version-id": version_id,
                                "Last-Modified": formatdate(int(record.last_modified),
                                                            usegmt=True)})
        raise refused
    return record


async def load_current_object(ctx: Context) -> ObjectRecord:
    """The object the request names: the current one, or the version of ``versionId``
    (errors as :func:`load_version`)."""
    return await load_version(ctx.services.store, ctx.require_bucket(), ctx.require_key(),
                              requested_version(ctx), ctx.method, ctx.target)


@functools.lru_cache(maxsize=256)
def _lifecycle(text: str) -> LifecycleConfig:
    # A bucket's configuration text is read with the bucket on every request; parsing it
    # once per distinct text keeps x-amz-expiration cheap.
    return LifecycleConfig.from_json(text)


def expiration_headers(ctx: Context, bucket: Bucket, key: str,
                       last_modified: float) -> dict[str, str]:
    """``x-amz-expiration`` when a lifecycle rule will expire this current object."""
    if bucket.lifecycle is None:
        return {}
    found = _lifecycle(bucket.lifecycle).expiration_for(
        key, last_modified, ctx.services.settings.lifecycle_day_seconds)
    return {} if found is None else {"x-amz-expiration": expiration_header(*found)}


def abort_headers(ctx: Context, bucket: Bucket, key: str, initiated: float) -> dict[str, str]:
    """``x-amz-abort-date`` / ``x-amz-abort-rule-id`` when a rule will abort this upload."""
    if bucket.lifecycle is None:
        return {}
    found = _lifecycle(bucket.lifecycle).abort_for(
        key, initiated, ctx.services.settings.lifecycle_day_seconds)
    if found is None:
        return {}
    when, rule_id = found
    return {"x-amz-abort-date": formatdate(int(when), usegmt=True),
            "x-amz-abort-rule-id": rule_id}


def version_headers(bucket: Bucket, version_id: str, *,
                    written: bool = False) -> dict[str, str]:
    """``x-amz-version-id`` for an object of a bucket that has (had) versioning, or for a
    version that is not ``null``; nothing for a bucket that never had versioning.

    ``written``: the answer to a write. S3 names the new version only when it is a real
    one: a write to a Suspended bucket makes the ``null`` version and its answer carries no
    header (AWS's PutObject "versioning suspended" example), while GET/HEAD say ``null``.
    """
    if written and version_id == "null":
        return {}
    if bucket.versioning or version_id != "null":
        return {"x-amz-version-id": version_id}
    return {}


MAX_PART_NUMBER = 10_000


def parse_part_number(raw: str | None) -> int:
    """A ``partNumber`` query value, 1 to 10,000; ``InvalidArgument`` otherwise."""
    number = decimal(raw) if raw is not None else None
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise errors.InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber", ArgumentValue=raw or "")
    return number
