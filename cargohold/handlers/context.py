"""What a handler receives and what it returns.

Handlers never see aiohttp: they get a :class:`Context` (operation, bucket, key, decoded
query, headers, principal, a body source and the services) and return a :class:`Reply`
(status, headers, and bytes, file segments to send with ``sendfile``, or a byte stream).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from multidict import CIMultiDictProxy, MultiMapping

from cargohold import errors
from cargohold.access import ObjectLoader
from cargohold.auth.model import AuthResult, Principal
from cargohold.cache import TtlCache
from cargohold.checksums import Hasher
from cargohold.config import Settings
from cargohold.numbers import decimal
from cargohold.operations import Operation
from cargohold.store.base import NULL_VERSION, AccessKey, Bucket, MetadataStore, ObjectRecord
from cargohold.store.blobs import BlobStore

# How long a worker trusts a cached access key (see cargohold/cache.py).
LOOKUP_CACHE_SECONDS = 1.0


@dataclass
class Services:
    """Long-lived parts shared by every request in one worker process."""

    settings: Settings
    store: MetadataStore
    blobs: BlobStore
    # Buckets are not cached: a bucket deleted and re-created by another account would
    # keep its old owner in a stale entry, and ownership decides access.
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


def object_loader(store: MetadataStore, bucket: str, key: str) -> ObjectLoader:
    """Loads the object at most once however often it is asked for."""
    loaded: list[ObjectRecord | None] = []

    async def load() -> ObjectRecord | None:
        if not loaded:
            loaded.append(await store.get_object(bucket, key))
        return loaded[0]

    return load


def check_version_id(ctx: Context) -> None:
    """Unversioned buckets: only the ``null`` version exists (rclone sends it)."""
    version_id = ctx.query.get("versionId")
    if version_id is not None and version_id != NULL_VERSION:
        raise errors.InvalidArgument("Invalid version id specified",
                                     ArgumentName="versionId", ArgumentValue=version_id)


async def load_current_object(ctx: Context) -> ObjectRecord:
    """The object the request names (its ``null`` version); ``NoSuchKey`` when absent."""
    key = ctx.require_key()
    bucket = ctx.require_bucket()
    check_version_id(ctx)
    if ctx.target is not None:
        record = await ctx.target()
    else:
        record = await ctx.services.store.get_object(bucket.name, key)
    if record is None:
        raise errors.NoSuchKey(Key=key)
    return record


MAX_PART_NUMBER = 10_000


def parse_part_number(raw: str | None) -> int:
    """A ``partNumber`` query value, 1 to 10,000; ``InvalidArgument`` otherwise."""
    number = decimal(raw) if raw is not None else None
    if number is None or not 1 <= number <= MAX_PART_NUMBER:
        raise errors.InvalidArgument(
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber", ArgumentValue=raw or "")
    return number
