"""The metadata-store contract.

Handlers talk to metadata only through :class:`MetadataStore`. The SQLite implementation
(:mod:`cargohold.store.sqlite`) is the embedded default; a PostgreSQL one plugs in behind the
same protocol and runs the same contract tests (``tests/test_store_contract.py``).

Rules every implementation keeps:

* Keys compare by their UTF-8 bytes (listing order is byte order).
* A blob id belongs to one record (object, part or upload part) at a time: a copy gets
  new ids (hard links), never a second reference, so freeing a replaced record's blobs
  can never pull bytes from under another.
* A write is one transaction: ``put_object`` commits the record and, in the same
  transaction, queues the blob it replaced for deletion (``pending_blob_deletions``), so no
  crash loses track of a blob.
* Conditional writes (``if_match`` / ``if_none_match``) are checked inside that transaction,
  so two racing conditional PUTs have exactly one winner.
* Versioning follows the bucket's state, read inside each write's transaction: a bucket
  that never had versioning keeps one ``null`` version per key; Enabled makes every write
  and delete a new version (ids from :func:`is_version_id`'s shape, newer sorts later);
  Suspended writes the ``null`` version, keeping the others. A version's blobs are freed
  only when that version is deleted.
* Methods raise :class:`cargohold.errors.S3Error` subclasses for S3-visible failures
  (``NoSuchBucket``, ``BucketNotEmpty``, ``PreconditionFailed`` ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

NULL_VERSION = "null"
# A version id the store makes: 16 hex digits of its place in the key's history (so ids
# sort by age) and 16 random ones (so they are not guessable from one another).
_VERSION_ID = re.compile(r"[0-9a-f]{32}")


def is_version_id(text: str) -> bool:
    """Whether ``text`` could name a version (``null`` or an id this store makes)."""
    return text == NULL_VERSION or _VERSION_ID.fullmatch(text) is not None


@dataclass(frozen=True)
class Account:
    """A tenant: owns buckets and access keys."""

    canonical_id: str  # 64 hex chars, like S3's canonical user id
    name: str  # unique handle used by the admin CLI
    display_name: str
    email: str
    created: float  # unix time


# Spaces' permissions for a limited key's grant on one bucket.
KEY_PERMISSIONS = ("read", "readwrite", "fullaccess")


@dataclass(frozen=True)
class AccessKey:
    """An access key pair belonging to an account.

    ``grants`` is ``None`` for a full-access key (everything its account may do); a limited
    key maps bucket names to one of :data:`KEY_PERMISSIONS` and reaches nothing else.
    """

    access_key: str
    secret_key: str
    account_id: str  # Account.canonical_id
    created: float
    grants: dict[str, str] | None = None

    @property
    def is_limited(self) -> bool:
        return self.grants is not None


@dataclass(frozen=True)
class Bucket:
    name: str
    owner_id: str  # Account.canonical_id
    region: str
    created: float
    acl: str = ""  # cargohold.acl.Acl.to_json(); "" is private (owner FULL_CONTROL only)
    policy: str | None = None  # the bucket policy document as PUT, None when unset
    cors: str | None = None  # cargohold.cors.CorsConfig.to_json(), None when unset
    website: str | None = None  # static website configuration text, None when unset
    logging: str | None = None  # access-logging configuration text, None when off
    # "" (never enabled), "Enabled" or "Suspended": once enabled, never "" again.
    versioning: str = ""
    lifecycle: str | None = None  # cargohold.lifecycle.LifecycleConfig.to_json(), or None


@dataclass(frozen=True)
class PartRef:
    """One part of a multipart object: its bytes are the blob ``blob_id``."""

    number: int
    blob_id: str
    size: int
    etag: str  # the part's MD5 hex
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectRecord:
    """One stored object (one version; ``version_id`` is ``"null"`` until versioning)."""

    bucket: str
    key: str
    blob_id: str  # name of the immutable blob holding the bytes ("" for an empty object)
    size: int
    etag: str  # without quotes; MD5 hex for single-part objects
    last_modified: float  # unix time, sub-second precision kept; S3 renders whole seconds
    content_type: str = "binary/octet-stream"
    # Stored response headers: content-encoding, content-disposition, content-language,
    # cache-control, expires, lower-case names.
    headers: dict[str, str] = field(default_factory=dict)
    # User metadata without the "x-amz-meta-" prefix, lower-case names.
    metadata: dict[str, str] = field(default_factory=dict)
    # Object tags (at most 10, in the order they were given); replaced by PutObjectTagging
    # without a new version of the bytes, dropped when the object is overwritten.
    tags: dict[str, str] = field(default_factory=dict)
    acl: str = ""  # cargohold.acl.Acl.to_json(); "" is private
    # SSE-C: how the blobs are encrypted (algorithm, key check, chunking); "" = plaintext.
    sse: str = ""
    # Flexible checksums: algorithm ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME")
    # -> base64 value, plus "type" -> "FULL_OBJECT" | "COMPOSITE" where relevant.
    checksums: dict[str, str] = field(default_factory=dict)
    storage_class: str = "STANDARD"
    version_id: str = NULL_VERSION
    # A multipart object's manifest, in order; empty for single-blob objects (then
    # ``blob_id`` holds the bytes, and is "" when the manifest is used).
    parts: tuple[PartRef, ...] = ()
    # Small objects' bytes live in the metadata store (``blob_id`` is then ""): their PUTs
    # ride the group commit instead of paying a file, a rename and two fsyncs each.
    inline: bytes | None = field(default=None, repr=False)
    # A delete marker: a version with no data (only versioned reads ever return one).
    delete_marker: bool = False

    def blob_ids(self) -> list[str]:
        """Every blob this object owns."""
        if self.parts:
            return [p.blob_id for p in self.parts if p.blob_id]
        return [self.blob_id] if self.blob_id else []


@dataclass(frozen=True)
class Upload:
    """An in-progress multipart upload and the object attributes fixed at its creation."""

    upload_id: str
    bucket: str
    key: str
    owner_id: str
    initiated: float
    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # from x-amz-tagging, for the object
    acl: str = ""  # the ACL the completed object gets
    sse: str = ""  # SSE-C parameters every part is encrypted with; "" = plaintext
    checksum_algorithm: str = ""  # "" or one of the flexible checksum algorithms
    checksum_type: str = ""  # "" | "COMPOSITE" | "FULL_OBJECT"
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class UploadedPart:
    upload_id: str
    number: int
    blob_id: str
    size: int
    etag: str
    last_modified: float
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadPage:
    uploads: list[Upload]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


class ListEntry(NamedTuple):
    """What a listing shows of one object (a tuple: a 1000-key page builds a thousand)."""

    key: str
    size: int
    etag: str
    last_modified: float
    storage_class: str
    checksum_algorithm: str  # "" when the object has no flexible checksum
    checksum_type: str  # "FULL_OBJECT" | "COMPOSITE" | ""
    version_id: str = NULL_VERSION

    @classmethod
    def of(cls, record: ObjectRecord) -> ListEntry:
        algorithm = next((a for a in record.checksums if a != "type"), "")
        return cls(record.key, record.size, record.etag, record.last_modified,
                   record.storage_class, algorithm,
                   record.checksums.get("type", "FULL_OBJECT") if algorithm else "",
                   record.version_id)


@dataclass(frozen=True)
class ListPage:
    """One page of a listing.

    ``entries`` and ``common_prefixes`` are each in byte order; ``next_marker`` is the last
    key or common prefix returned (the value S3 calls NextMarker / what a continuation token
    encodes), ``None`` when the page is not truncated.
    """

    entries: list[ListEntry]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str | None


class VersionEntry(NamedTuple):
    """What ListObjectVersions shows of one version or delete marker."""

    key: str
    version_id: str
    is_latest: bool
    delete_marker: bool
    size: int
    etag: str
    last_modified: float
    storage_class: str
    checksum_algorithm: str
    checksum_type: str
    noncurrent_since: float | None  # when a newer version replaced it; None while latest


@dataclass(frozen=True)
class VersionPage:
    """One page of ListObjectVersions: versions by key (byte order), newest first."""

    entries: list[VersionEntry]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_version_id_marker: str | None


@dataclass(frozen=True)
class DeleteResult:
    """What a delete did.

    ``version_id``: the version deleted, or the delete marker made (``None`` for a plain
    delete in a bucket that never had versioning). ``delete_marker``: a marker was made, or
    the version deleted was one. ``removed``: the version whose data went away, if any.
    """

    version_id: str | None
    delete_marker: bool
    removed: ObjectRecord | None


@dataclass(frozen=True)
class LogRecord:
    """One access-log record waiting for delivery into ``target_bucket``
    (:mod:`cargohold.logdelivery`); ``line`` is the formatted record, whose first field is
    the logged bucket's owner."""

    target_bucket: str
    target_prefix: str
    line: str
    created: float  # unix time the record was made


class MetadataStore(Protocol):
    """Transactional metadata: accounts, keys, buckets, objects, the blob deletion queue."""

    # True when point reads (keys, buckets, objects) never wait on the event loop: the
    # HTTP layer then answers bodiless requests outside a task (cargohold/http/protocol.py).
    # A store whose reads await I/O, or use asyncio timeouts (they need a task), is False.
    point_reads_inline: bool = False

    async def open(self) -> None:
        """Create or migrate the schema and get ready to serve."""

    async def close(self) -> None:
        """Flush pending commits and release connections."""

    async def schema_version(self) -> int:
        """The schema version the store is at (``open()`` migrates to the latest)."""

    # --- settings (small key/value table: generated root credentials, schema info) ---
    async def get_setting(self, name: str) -> str | None: ...
    async def set_setting(self, name: str, value: str) -> None: ...

    # --- accounts and keys ---
    async def create_account(self, account: Account) -> None:
        """Raise ``InvalidArgument`` when the name or canonical id is taken."""

    async def get_account(self, canonical_id: str) -> Account | None: ...
    async def get_account_by_name(self, name: str) -> Account | None: ...
    async def list_accounts(self) -> list[Account]: ...

    async def delete_account(self, canonical_id: str) -> None:
        """Delete the account and its keys; raise ``InvalidRequest`` if it owns buckets."""

    async def create_key(self, key: AccessKey) -> None:
        """Raise ``InvalidArgument`` when the access key id exists."""

    async def get_key(self, access_key: str) -> AccessKey | None: ...
    async def list_keys(self, account_id: str | None = None) -> list[AccessKey]: ...
    async def set_key_grants(self, access_key: str, grants: dict[str, str]) -> AccessKey:
        """Replace a limited key's grants; ``InvalidRequest`` for a full-access key,
        ``InvalidArgument`` for an unknown one."""

    async def delete_key(self, access_key: str) -> bool: ...

    # --- buckets ---
    async def create_bucket(self, bucket: Bucket, max_buckets: int) -> None:
        """Create the bucket.

        Raise ``BucketAlreadyOwnedByYou`` if the same owner has it, ``BucketAlreadyExists`` if
        another owner does, ``TooManyBuckets`` when the owner already has ``max_buckets``.
        """

    async def get_bucket(self, name: str) -> Bucket | None: ...

    async def list_buckets(
        self, owner_id: str, prefix: str = "", start_after: str = "", limit: int = 10000
    ) -> list[Bucket]:
        """The owner's buckets in name order, names > start_after, at most ``limit``."""

    async def delete_bucket(self, name: str) -> None:
        """Raise ``NoSuchBucket`` or ``BucketNotEmpty``."""

    # --- objects ---
    async def get_object(self, bucket: str, key: str) -> ObjectRecord | None: ...

    async def put_object(
        self,
        record: ObjectRecord,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Make ``record`` the current object at (bucket, key) in one transaction; return
        its version id (``record.version_id`` is ignored: the bucket's versioning decides).

        ``if_match``: the current object's ETag must equal it (else ``PreconditionFailed``;
        a missing object is ``NoSuchKey``). ``if_none_match``: there must be no current
        object (else ``PreconditionFailed``). Raise ``NoSuchBucket`` if the bucket is gone.
        The replaced object's blob (if any, and not equal to the new one) is queued for
        deletion in the same transaction, unless versioning keeps it as a noncurrent version.
        """

    async def get_version(self, bucket: str, key: str,
                          version_id: str | None) -> ObjectRecord | None:
        """The named version (delete markers included), or with ``None`` the latest: the
        current object, else the delete marker that hides it; ``None`` when there is none.
        """

    async def set_object_tags(self, bucket: str, key: str, tags: dict[str, str],
                              version_id: str | None = None) -> ObjectRecord:
        """Replace the tags of the current object (or of the version ``version_id``;
        ``NoSuchVersion`` if absent, ``MethodNotAllowed`` for a delete marker).

        Nothing else changes: not the bytes, the ETag nor Last-Modified (S3 does not touch
        them on tagging). Raise ``NoSuchBucket`` if the bucket is gone, ``NoSuchKey`` if
        there is no object; return the object as it now is.
        """

    async def delete_object(self, bucket: str, key: str, version_id: str | None = None, *,
                            older_than: float | None = None) -> DeleteResult:
        """Delete as S3 does; queue the blobs of whatever version is removed for good.

        Without ``version_id``: in a bucket that never had versioning the object goes;
        Enabled puts a new delete marker on top; Suspended replaces the ``null`` version
        with a ``null`` delete marker. With ``version_id``: that version (or marker) goes
        for good, and when it was the latest the next one becomes current; an unknown id
        changes nothing. ``older_than`` (lifecycle) acts only if the current object was
        last modified before it, or with ``version_id``, if that version has been noncurrent
        since before it.
        """

    async def delete_objects(self, bucket: str,
                             items: list[tuple[str, str | None]]) -> list[DeleteResult]:
        """Delete several (key, version id or None) in one transaction, aligned with
        ``items``."""

    async def remove_expired_delete_marker(self, bucket: str, key: str) -> str | None:
        """Remove the key's delete marker if it is the latest and only version left
        (lifecycle's ExpiredObjectDeleteMarker); return its version id, else ``None``."""

    async def list_object_versions(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionPage:
        """Every version and delete marker by key (byte order), newest first per key.

        Rolled up by ``delimiter`` like :meth:`list_objects` (versions and common prefixes
        each count once toward ``max_keys``). Resumes after ``key_marker``; with
        ``version_id_marker``, first with that key's versions older than the marker.
        """

    async def buckets_with_lifecycle(self) -> list[Bucket]:
        """Every bucket with a lifecycle configuration (for the lifecycle worker)."""

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        """List objects with key > start_after, starting with prefix, in byte order.

        With a delimiter, keys that contain it after the prefix roll up into common prefixes
        (each counted once toward ``max_keys``); the store seeks past each common prefix
        instead of reading the keys beneath it. ``start_after`` may itself be a common
        prefix (the NextMarker of a previous page), in which case everything beneath it is
        skipped.
        """

    async def set_bucket_acl(self, name: str, acl: str) -> None:
        """Replace the bucket's ACL text; ``NoSuchBucket`` if it is gone."""

    async def set_bucket_policy(self, name: str, policy: str | None) -> None:
        """Set or remove the policy; ``InvalidRequest`` if a limited key is granted the
        bucket (Spaces' rule; ``create_key``/``set_key_grants`` refuse the reverse)."""

    async def set_bucket_cors(self, name: str, cors: str | None) -> None:
        """Set or remove the CORS configuration text; ``NoSuchBucket`` if it is gone."""

    async def set_bucket_website(self, name: str, website: str | None) -> None:
        """Set or remove the website configuration text; ``NoSuchBucket`` if gone."""

    async def set_bucket_logging(self, name: str, logging: str | None) -> None:
        """Set or remove the access-logging configuration text; ``NoSuchBucket`` if gone."""

    async def set_bucket_lifecycle(self, name: str, lifecycle: str | None) -> None:
        """Set or remove the lifecycle configuration text; ``NoSuchBucket`` if gone."""

    async def set_bucket_versioning(self, name: str, status: str) -> None:
        """Set the versioning state, "Enabled" or "Suspended"; ``NoSuchBucket`` if gone."""

    async def set_object_acl(self, bucket: str, key: str, acl: str,
                             version_id: str | None = None) -> None:
        """Replace the current object's (or the version's) ACL text only; ``NoSuchKey``
        or ``NoSuchVersion`` if absent."""

    async def bucket_is_empty(self, bucket: str) -> bool: ...

    # --- multipart uploads ---
    async def create_upload(self, upload: Upload) -> None: ...

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> Upload | None: ...

    async def put_part(self, part: UploadedPart) -> None:
        """Record a part (replacing one with the same number, whose blob is queued for
        deletion); ``NoSuchUpload`` if the upload is gone (then the caller frees the blob).
        """

    async def list_parts(
        self, upload_id: str, number_marker: int = 0, max_parts: int = 1000
    ) -> tuple[list[UploadedPart], bool]:
        """Parts with number > marker in order, at most ``max_parts``; and is_truncated."""

    async def complete_upload(
        self,
        upload_id: str,
        record: ObjectRecord,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """In one transaction: check the upload exists (``NoSuchUpload``), make ``record``
        current (conditions as ``put_object``; returns its version id), drop the upload,
        and queue the blobs of its parts that the record's manifest does not use and of
        the replaced object.

        The manifest is checked against the upload's parts inside the transaction, because
        the caller read them before it: a part re-uploaded since with the same ETag and size
        (the same bytes) is used with its new blob; any other difference is
        ``InvalidPart``. So an object never names a blob its upload had already freed.
        """

    async def abort_upload(self, upload_id: str) -> bool:
        """Drop the upload and queue its parts' blobs; False if it did not exist (so of a
        completion and an abort racing, exactly one finds the upload)."""

    async def list_uploads(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadPage:
        """In-progress uploads ordered by (key bytes, initiation, upload id).

        Rolled up by ``delimiter`` like :meth:`list_objects` (a common prefix counts once
        toward ``max_uploads``). Resumes after ``key_marker``; with ``upload_id_marker``,
        first with the marker key's uploads after that upload. ``is_truncated`` is exact;
        the next markers are the last upload (or common prefix, with no upload id).
        """

    async def uploads_initiated_before(self, cutoff: float, limit: int = 1000) -> list[Upload]:
        """Uploads initiated before ``cutoff``, oldest first, at most ``limit`` (for the
        expiry of abandoned uploads, :mod:`cargohold.store.expiry`)."""

    # --- leases: background work that must run once per cluster ---
    async def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``ttl_seconds`` from now
        (by the store's clock, so gateways' clocks may differ); ``False`` while another
        holder's lease has not run out. Atomic: of racing callers at most one holds it."""

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up early (a clean shutdown) if ``holder`` holds it."""

    # --- blob garbage collection ---
    async def pending_blob_deletions(self, limit: int = 1000,
                                     queued_before: float | None = None) -> list[str]:
        """Blob ids queued for deletion by committed transactions, oldest first; with
        ``queued_before`` (a Unix time), only those queued no later than it."""

    async def forget_blob_deletions(self, blob_ids: list[str]) -> None:
        """Drop ids from the queue once their files are gone."""

    async def referenced_blobs(self, blob_ids: list[str],
                               include_queued: bool = False) -> set[str]:
        """Which of ``blob_ids`` are referenced by a committed object or by a part of an
        in-progress upload (for orphan sweeps); with ``include_queued``, also those waiting
        in the deletion queue, read in the same snapshot (a blob taken off the queue by the
        write that references it again is seen in one place or the other, never neither)."""

    # --- access-log records (cargohold/logdelivery.py) ---
    async def append_log_records(self, records: list[LogRecord]) -> None:
        """Queue records for delivery, all of them in one transaction."""

    async def pending_log_targets(self) -> list[str]:
        """The target buckets that have queued records, in name order."""

    async def take_log_batch(self, target_bucket: str,
                             limit: int) -> list[tuple[int, str, str]]:
        """The oldest queued records for ``target_bucket``, at most ``limit``, as
        ``(id, target_prefix, line)`` in id order. They stay queued until delivered."""

    async def deliver_log_object(self, record: ObjectRecord, record_ids: list[int],
                                 owner_id: str) -> bool:
        """In one transaction: store the log object ``record`` (as :meth:`put_object`,
        unconditionally) and delete the queued records ``record_ids``, so a crash either
        delivers them once or leaves them queued.

        When the target bucket is gone, or is no longer owned by ``owner_id`` (the owner of
        the logged bucket), nothing is stored and the records are dropped: return False.
        ``ConditionalRequestConflict`` (nothing changes) if some record was already
        delivered, by a concurrent delivery.
        """
