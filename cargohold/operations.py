"""The registry of every S3 operation.

An operation is resolved from (method, target, sub-resource keyword, guard), where target is
``service`` (no bucket), ``bucket`` or ``object``. The table lists the S3 API as a whole;
handlers are attached by name in :mod:`cargohold.handlers`, and anything listed without a
handler (or not matched at all) answers ``501 NotImplemented`` as S3 XML.

Each operation declares the access class it needs (read / write / owner), the shape of
Spaces' key grants (read / readwrite / fullaccess).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, unquote_plus

from cargohold import errors


class Access(enum.Enum):
    READ = "read"  # list and read objects
    WRITE = "write"  # create, replace and delete objects
    OWNER = "owner"  # bucket configuration: ACLs, policies, versioning, lifecycle ...
    SERVICE = "service"  # account-level (ListBuckets, CreateBucket)


class Target(enum.Enum):
    SERVICE = "service"
    BUCKET = "bucket"
    OBJECT = "object"


# S3's cap on one uploaded body (a PutObject or one part).
MAX_UPLOAD_BODY = 5 * 1024**3


@dataclass(frozen=True)
class Operation:
    name: str
    access: Access
    # An operation whose body the handler reads (others must not carry one we care about).
    reads_body: bool = False
    # Largest object body it accepts, checked before ``100 Continue`` (None: not an upload).
    max_body: int | None = None
    # Signed inside its body, not its headers (browser POST uploads): the handler checks
    # the signature and access itself once it has read the form.
    authenticates_itself: bool = False


# Sub-resource keywords that select an operation, in the order they are tested (some
# requests carry several, e.g. ``?uploadId=..&partNumber=..``).
SUBRESOURCES = (
    "uploadId", "uploads", "acl", "tagging", "versioning", "versions", "location", "policy",
    "policyStatus", "cors", "lifecycle", "website", "logging", "delete", "notification",
    "replication", "encryption", "object-lock", "retention", "legal-hold", "accelerate",
    "requestPayment", "analytics", "inventory", "metrics", "intelligent-tiering",
    "ownershipControls", "publicAccessBlock", "attributes", "restore", "select", "torrent",
    "session", "renameObject",
)

_SUBRESOURCE_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SUBRESOURCES)}

R, W, O, S = Access.READ, Access.WRITE, Access.OWNER, Access.SERVICE  # noqa: E741
SVC, BKT, OBJ = Target.SERVICE, Target.BUCKET, Target.OBJECT

# (method, target, sub-resource or None, guard or None) -> Operation.
# Guards: "copy" = has an x-amz-copy-source (see copy_source); "v2" = list-type=2.
_TABLE: list[tuple[str, Target, str | None, str | None, Operation]] = [
    ("GET", SVC, None, None, Operation("ListBuckets", S)),
    ("GET", SVC, "session", None, Operation("CreateSession", S)),
    # buckets
    ("PUT", BKT, None, None, Operation("CreateBucket", S, reads_body=True)),
    ("HEAD", BKT, None, None, Operation("HeadBucket", R)),
    ("DELETE", BKT, None, None, Operation("DeleteBucket", O)),
    ("GET", BKT, None, "v2", Operation("ListObjectsV2", R)),
    ("GET", BKT, None, None, Operation("ListObjects", R)),
    ("GET", BKT, "versions", None, Operation("ListObjectVersions", R)),
    ("GET", BKT, "uploads", None, Operation("ListMultipartUploads", R)),
    ("GET", BKT, "location", None, Operation("GetBucketLocation", R)),
    ("POST", BKT, "delete", None, Operation("DeleteObjects", W, reads_body=True)),
    ("POST", BKT, None, None, Operation("PostObject", W, reads_body=True,
                                        authenticates_itself=True)),
    ("GET", BKT, "acl", None, Operation("GetBucketAcl", O)),
    ("PUT", BKT, "acl", None, Operation("PutBucketAcl", O, reads_body=True)),
    ("GET", BKT, "policy", None, Operation("GetBucketPolicy", O)),
    ("PUT", BKT, "policy", None, Operation("PutBucketPolicy", O, reads_body=True)),
    ("DELETE", BKT, "policy", None, Operation("DeleteBucketPolicy", O)),
    ("GET", BKT, "policyStatus", None, Operation("GetBucketPolicyStatus", O)),
    ("GET", BKT, "versioning", None, Operation("GetBucketVersioning", O)),
    ("PUT", BKT, "versioning", None, Operation("PutBucketVersioning", O, reads_body=True)),
    ("GET", BKT, "cors", None, Operation("GetBucketCors", O)),
    ("PUT", BKT, "cors", None, Operation("PutBucketCors", O, reads_body=True)),
    ("DELETE", BKT, "cors", None, Operation("DeleteBucketCors", O)),
    ("GET", BKT, "lifecycle", None, Operation("GetBucketLifecycleConfiguration", O)),
    ("PUT", BKT, "lifecycle", None,
     Operation("PutBucketLifecycleConfiguration", O, reads_body=True)),
    ("DELETE", BKT, "lifecycle", None, Operation("DeleteBucketLifecycle", O)),
    ("GET", BKT, "website", None, Operation("GetBucketWebsite", O)),
    ("PUT", BKT, "website", None, Operation("PutBucketWebsite", O, reads_body=True)),
    ("DELETE", BKT, "website", None, Operation("DeleteBucketWebsite", O)),
    ("GET", BKT, "logging", None, Operation("GetBucketLogging", O)),
    ("PUT", BKT, "logging", None, Operation("PutBucketLogging", O, reads_body=True)),
    ("GET", BKT, "tagging", None, Operation("GetBucketTagging", O)),
    ("PUT", BKT, "tagging", None, Operation("PutBucketTagging", O, reads_body=True)),
    ("DELETE", BKT, "tagging", None, Operation("DeleteBucketTagging", O)),
    ("GET", BKT, "notification", None, Operation("GetBucketNotificationConfiguration", O)),
    ("PUT", BKT, "notification", None,
     Operation("PutBucketNotificationConfiguration", O, reads_body=True)),
    ("GET", BKT, "replication", None, Operation("GetBucketReplication", O)),
    ("PUT", BKT, "replication", None, Operation("PutBucketReplication", O, reads_body=True)),
    ("DELETE", BKT, "replication", None, Operation("DeleteBucketReplication", O)),
    ("GET", BKT, "encryption", None, Operation("GetBucketEncryption", O)),
    ("PUT", BKT, "encryption", None, Operation("PutBucketEncryption", O, reads_body=True)),
    ("DELETE", BKT, "encryption", None, Operation("DeleteBucketEncryption", O)),
    ("GET", BKT, "object-lock", None, Operation("GetObjectLockConfiguration", O)),
    ("PUT", BKT, "object-lock", None,
     Operation("PutObjectLockConfiguration", O, reads_body=True)),
    ("GET", BKT, "accelerate", None, Operation("GetBucketAccelerateConfiguration", O)),
    ("PUT", BKT, "accelerate", None,
     Operation("PutBucketAccelerateConfiguration", O, reads_body=True)),
    ("GET", BKT, "requestPayment", None, Operation("GetBucketRequestPayment", O)),
    ("PUT", BKT, "requestPayment", None,
     Operation("PutBucketRequestPayment", O, reads_body=True)),
    ("GET", BKT, "analytics", None, Operation("GetBucketAnalyticsConfiguration", O)),
    ("PUT", BKT, "analytics", None,
     Operation("PutBucketAnalyticsConfiguration", O, reads_body=True)),
    ("DELETE", BKT, "analytics", None, Operation("DeleteBucketAnalyticsConfiguration", O)),
    ("GET", BKT, "inventory", None, Operation("GetBucketInventoryConfiguration", O)),
    ("PUT", BKT, "inventory", None,
     Operation("PutBucketInventoryConfiguration", O, reads_body=True)),
    ("DELETE", BKT, "inventory", None, Operation("DeleteBucketInventoryConfiguration", O)),
    ("GET", BKT, "metrics", None, Operation("GetBucketMetricsConfiguration", O)),
    ("PUT", BKT, "metrics", None,
     Operation("PutBucketMetricsConfiguration", O, reads_body=True)),
    ("DELETE", BKT, "metrics", None, Operation("DeleteBucketMetricsConfiguration", O)),
    ("GET", BKT, "intelligent-tiering", None,
     Operation("GetBucketIntelligentTieringConfiguration", O)),
    ("PUT", BKT, "intelligent-tiering", None,
     Operation("PutBucketIntelligentTieringConfiguration", O, reads_body=True)),
    ("DELETE", BKT, "intelligent-tiering", None,
     Operation("DeleteBucketIntelligentTieringConfiguration", O)),
    ("GET", BKT, "ownershipControls", None, Operation("GetBucketOwnershipControls", O)),
    ("PUT", BKT, "ownershipControls", None,
     Operation("PutBucketOwnershipControls", O, reads_body=True)),
    ("DELETE", BKT, "ownershipControls", None, Operation("DeleteBucketOwnershipControls", O)),
    ("GET", BKT, "publicAccessBlock", None, Operation("GetPublicAccessBlock", O)),
    ("PUT", BKT, "publicAccessBlock", None,
     Operation("PutPublicAccessBlock", O, reads_body=True)),
    ("DELETE", BKT, "publicAccessBlock", None, Operation("DeletePublicAccessBlock", O)),
    # objects
    ("GET", OBJ, None, None, Operation("GetObject", R)),
    ("HEAD", OBJ, None, None, Operation("HeadObject", R)),
    ("PUT", OBJ, None, "copy", Operation("CopyObject", W)),
    ("PUT", OBJ, None, None, Operation("PutObject", W, True, MAX_UPLOAD_BODY)),
    ("DELETE", OBJ, None, None, Operation("DeleteObject", W)),
    ("POST", OBJ, "uploads", None, Operation("CreateMultipartUpload", W)),
    ("PUT", OBJ, "uploadId", "copy", Operation("UploadPartCopy", W)),
    ("PUT", OBJ, "uploadId", None, Operation("UploadPart", W, True, MAX_UPLOAD_BODY)),
    ("POST", OBJ, "uploadId", None, Operation("CompleteMultipartUpload", W, reads_body=True)),
    ("DELETE", OBJ, "uploadId", None, Operation("AbortMultipartUpload", W)),
    ("GET", OBJ, "uploadId", None, Operation("ListParts", R)),
    ("GET", OBJ, "acl", None, Operation("GetObjectAcl", O)),
    ("PUT", OBJ, "acl", None, Operation("PutObjectAcl", O, reads_body=True)),
    ("GET", OBJ, "tagging", None, Operation("GetObjectTagging", R)),
    ("PUT", OBJ, "tagging", None, Operation("PutObjectTagging", W, reads_body=True)),
    ("DELETE", OBJ, "tagging", None, Operation("DeleteObjectTagging", W)),
    ("GET", OBJ, "attributes", None, Operation("GetObjectAttributes", R)),
    ("GET", OBJ, "retention", None, Operation("GetObjectRetention", R)),
    ("PUT", OBJ, "retention", None, Operation("PutObjectRetention", W, reads_body=True)),
    ("GET", OBJ, "legal-hold", None, Operation("GetObjectLegalHold", R)),
    ("PUT", OBJ, "legal-hold", None, Operation("PutObjectLegalHold", W, reads_body=True)),
    ("POST", OBJ, "restore", None, Operation("RestoreObject", W, reads_body=True)),
    ("POST", OBJ, "select", None, Operation("SelectObjectContent", R, reads_body=True)),
    ("GET", OBJ, "torrent", None, Operation("GetObjectTorrent", R)),
    ("PUT", OBJ, "renameObject", None, Operation("RenameObject", W)),
]

_INDEX: dict[tuple[str, Target, str | None, str | None], Operation] = {
    (method, target, sub, guard): op for method, target, sub, guard, op in _TABLE
}
ALL_OPERATIONS: dict[str, Operation] = {op.name: op for *_, op in _TABLE}
UNKNOWN = Operation("Unknown", Access.OWNER)


# Query parameters that carry a presigned URL's signature (SigV4, SigV2).
_QUERY_SIGNATURES: Final = ("X-Amz-Signature", "Signature")


def copy_source(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """A request's ``x-amz-copy-source``: its header or, in a presigned URL, the query
    parameter the signer moved it to (the AWS SDK for JavaScript moves every ``x-amz-*``
    header there); the signature covers it either way, so a URL cannot gain one."""
    value = headers.get("x-amz-copy-source")
    if value is None and "x-amz-copy-source" in query and any(
            name in query for name in _QUERY_SIGNATURES):
        value = query["x-amz-copy-source"]
    return value


_SOURCE_HINT = "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"


@dataclass(frozen=True)
class CopySource:
    """The object named by ``x-amz-copy-source``."""

    bucket: str
    key: str
    version_id: str | None


def parse_copy_source(value: str) -> CopySource:
    """``[/]bucket/key[?versionId=v]``, the key URL-encoded; ``InvalidArgument`` otherwise.

    Decoded as a form value, as S3 does: ``+`` is a space (Go's ``url.QueryEscape``, which
    s5cmd and others use, writes spaces so), and a literal plus must come as ``%2B``."""
    raw_path, _, raw_query = value.strip().partition("?")
    try:
        path = unquote_plus(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise errors.InvalidArgument(_SOURCE_HINT, ArgumentName="x-amz-copy-source",
                                     ArgumentValue=value) from None
    bucket, _, key = path.removeprefix("/").partition("/")
    if not bucket or not key:
        raise errors.InvalidArgument(_SOURCE_HINT, ArgumentName="x-amz-copy-source",
                                     ArgumentValue=value)
    version_id = None
    if raw_query:
        versions = parse_qs(raw_query, keep_blank_values=True).get("versionId")
        if versions:
            version_id = versions[0]
    return CopySource(bucket, key, version_id)


def resolve(
    method: str,
    bucket: str | None,
    key: str | None,
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> Operation:
    """The operation a request asks for; :data:`UNKNOWN` when nothing matches."""
    target = SVC if bucket is None else (BKT if key is None else OBJ)
    subresource = None
    if query:
        # Walk the (few) parameters, not the long keyword list; the earliest keyword in
        # SUBRESOURCES wins when a request carries several.
        found = [_SUBRESOURCE_RANK[name] for name in query if name in _SUBRESOURCE_RANK]
        if found:
            subresource = SUBRESOURCES[min(found)]
    if target is OBJ and subresource is not None and _INDEX.get(
        (method, target, subresource, None)
    ) is None and _INDEX.get((method, target, subresource, "copy")) is None:
        # An object request with a bucket-only keyword (e.g. ?versions on a key) is not a
        # different operation; fall back to the plain one.
        subresource = None
    guard: str | None = None
    if method == "PUT" and copy_source(query, headers) is not None:
        guard = "copy"
    elif method == "GET" and target is BKT and subresource is None and (
        query.get("list-type") == "2"
    ):
        guard = "v2"
    op = _INDEX.get((method, target, subresource, guard))
    if op is None and guard is not None:
        op = _INDEX.get((method, target, subresource, None))
    return op if op is not None else UNKNOWN
