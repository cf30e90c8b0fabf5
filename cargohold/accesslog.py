"""Server access logs: the bucket logging configuration and the S3 log record format.

Pure: no HTTP framework and no storage. The bucket-logging handlers parse and render
:class:`LoggingConfig`; the dispatcher fills an :class:`Entry` per request to a logged bucket
and :func:`format_line` turns it into one record; :mod:`cargohold.logdelivery` buffers the
records and writes them into the target bucket as objects named by :func:`log_object_key`.

What S3 does, as documented ("Amazon S3 server access log format", the S3 user guide) and
as seen in records S3 delivered (quoted in public log parsers):

- One record per line, space-separated fields in a fixed order; any field may be ``-``
  (unknown, not applicable, or zero for Bytes Sent). Request-URI, Referer and User-Agent are
  quoted (``"-"`` when absent); Time is ``[06/Feb/2019:00:00:38 +0000]``, in UTC.
- Key is the key URL-encoded, ``-`` for operations without one; Request-URI is the request
  line's method, target as sent (query included) and protocol.
- Operation is ``REST.<METHOD>.<resource>``: ``REST.GET.OBJECT``, ``REST.PUT.OBJECT``,
  ``REST.GET.BUCKET`` (a listing), ``REST.GET.VERSIONING``, ``REST.GET.LOGGING_STATUS``,
  ``REST.GET.BUCKETPOLICY``, ``REST.POST.MULTI_OBJECT_DELETE``, ``REST.OPTIONS.PREFLIGHT``
  ...; a copy also logs ``REST.COPY.OBJECT_GET`` into the source bucket's log.
- Requester is the canonical user id, ``-`` when unauthenticated; Signature Version
  ``SigV2`` / ``SigV4`` and Authentication Type ``AuthHeader`` / ``QueryString`` (``-`` when
  unauthenticated); Cipher Suite and TLS Version ``-`` over plain HTTP.
- Log objects are named ``TargetPrefixYYYY-mm-DD-HH-MM-SS-UniqueString``.

Left out: the Access Point ARN, ACL Required and Source Region fields S3 appended later
(S3 tells parsers to expect more fields at the end), and the per-key ``BATCH.DELETE.OBJECT``
records of a DeleteObjects request.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass
from urllib.parse import quote

from cargohold import errors, xmlutil

MAX_DOCUMENT_SIZE = 64 * 1024  # a BucketLoggingStatus document (TargetGrants can be long)
MAX_PREFIX_LENGTH = 512  # keeps TargetPrefix + the 36-character name under the 1,024-byte key

TARGET_MISSING = "The target bucket for logging does not exist"
TARGET_IS_SOURCE = "The target bucket must differ from the source bucket."
OWNER_DIFFERS = ("The owner for the bucket to be logged and the target bucket must be the "
                 "same.")


# ------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class LoggingConfig:
    """Where a bucket's access log goes: ``TargetBucket`` and the key prefix of its files.

    ``TargetGrants`` is accepted and ignored: log files belong to the target bucket's
    owner, who must also own the logged bucket, and other readers get access through the
    target bucket's ACL or policy like for any other object. ``TargetObjectKeyFormat`` is
    ignored too: file names always use S3's simple prefix format.
    """

    target_bucket: str
    target_prefix: str

    @classmethod
    def parse(cls, body: bytes) -> LoggingConfig | None:
        """A PutBucketLogging document; ``None`` for ``<BucketLoggingStatus/>`` (logging
        off). ``MalformedXML`` for anything else that is not a valid document."""
        root = xmlutil.parse(body, MAX_DOCUMENT_SIZE)
        if root.tag != "BucketLoggingStatus":
            raise errors.MalformedXML()
        enabled = root.find("LoggingEnabled")
        if enabled is None:
            return None
        target = xmlutil.child_text(enabled, "TargetBucket")
        prefix = xmlutil.child_text(enabled, "TargetPrefix")
        if target is None or prefix is None:
            raise errors.MalformedXML()
        target = target.strip()
        if not target:
            raise errors.InvalidTargetBucketForLogging(TARGET_MISSING, TargetBucket=target)
        if len(prefix.encode("utf-8", "surrogatepass")) > MAX_PREFIX_LENGTH:
            raise errors.InvalidArgument(
                f"The TargetPrefix is longer than {MAX_PREFIX_LENGTH} bytes.",
                ArgumentName="TargetPrefix", ArgumentValue=prefix[:64])
        return cls(target_bucket=target, target_prefix=prefix)

    def to_text(self) -> str:
        """The stored form (``buckets.logging``)."""
        return json.dumps({"TargetBucket": self.target_bucket,
                           "TargetPrefix": self.target_prefix},
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_text(cls, text: str) -> LoggingConfig:
        """Read the stored form back."""
        data = json.loads(text)
        return cls(target_bucket=str(data["TargetBucket"]),
                   target_prefix=str(data["TargetPrefix"]))

    def to_xml(self) -> bytes:
        """The GetBucketLogging answer."""
        return render(self)


def render(config: LoggingConfig | None) -> bytes:
    """A ``BucketLoggingStatus`` document: the configuration, or empty when logging is off."""
    if config is None:
        return xmlutil.document("BucketLoggingStatus", [])
    return xmlutil.document("BucketLoggingStatus", [
        "<LoggingEnabled>",
        xmlutil.element("TargetBucket", config.target_bucket),
        xmlutil.element("TargetPrefix", config.target_prefix),
        "</LoggingEnabled>",
    ])


@functools.lru_cache(maxsize=256)
def stored_config(text: str) -> LoggingConfig:
    """A stored configuration, decoded once per worker (read on every logged request)."""
    return LoggingConfig.from_text(text)


# ---------------------------------------------------------------------- operations

# cargohold's operation names (cargohold/operations.py) -> S3's log operation names.
OPERATION_NAMES: dict[str, str] = {
    # buckets
    "CreateBucket": "REST.PUT.BUCKET",
    "HeadBucket": "REST.HEAD.BUCKET",
    "DeleteBucket": "REST.DELETE.BUCKET",
    "ListObjects": "REST.GET.BUCKET",
    "ListObjectsV2": "REST.GET.BUCKET",
    "ListObjectVersions": "REST.GET.BUCKETVERSIONS",
    "ListMultipartUploads": "REST.GET.UPLOADS",
    "GetBucketLocation": "REST.GET.LOCATION",
    "DeleteObjects": "REST.POST.MULTI_OBJECT_DELETE",
    "PostObject": "REST.POST.OBJECT",
    "GetBucketAcl": "REST.GET.ACL",
    "PutBucketAcl": "REST.PUT.ACL",
    "GetBucketPolicy": "REST.GET.BUCKETPOLICY",
    "PutBucketPolicy": "REST.PUT.BUCKETPOLICY",
    "DeleteBucketPolicy": "REST.DELETE.BUCKETPOLICY",
    "GetBucketPolicyStatus": "REST.GET.POLICY_STATUS",
    "GetBucketVersioning": "REST.GET.VERSIONING",
    "PutBucketVersioning": "REST.PUT.VERSIONING",
    "GetBucketCors": "REST.GET.CORS",
    "PutBucketCors": "REST.PUT.CORS",
    "DeleteBucketCors": "REST.DELETE.CORS",
    "GetBucketLifecycleConfiguration": "REST.GET.LIFECYCLE",
    "PutBucketLifecycleConfiguration": "REST.PUT.LIFECYCLE",
    "DeleteBucketLifecycle": "REST.DELETE.LIFECYCLE",
    "GetBucketWebsite": "REST.GET.WEBSITE",
    "PutBucketWebsite": "REST.PUT.WEBSITE",
    "DeleteBucketWebsite": "REST.DELETE.WEBSITE",
    "GetBucketLogging": "REST.GET.LOGGING_STATUS",
    "PutBucketLogging": "REST.PUT.LOGGING_STATUS",
    "GetBucketTagging": "REST.GET.TAGGING",
    "PutBucketTagging": "REST.PUT.TAGGING",
    "DeleteBucketTagging": "REST.DELETE.TAGGING",
    "GetBucketNotificationConfiguration": "REST.GET.NOTIFICATION",
    "PutBucketNotificationConfiguration": "REST.PUT.NOTIFICATION",
    "GetBucketReplication": "REST.GET.REPLICATION",
    "PutBucketReplication": "REST.PUT.REPLICATION",
    "DeleteBucketReplication": "REST.DELETE.REPLICATION",
    "GetBucketEncryption": "REST.GET.ENCRYPTION",
    "PutBucketEncryption": "REST.PUT.ENCRYPTION",
    "DeleteBucketEncryption": "REST.DELETE.ENCRYPTION",
    "GetObjectLockConfiguration": "REST.GET.OBJECT_LOCK_CONFIGURATION",
    "PutObjectLockConfiguration": "REST.PUT.OBJECT_LOCK_CONFIGURATION",
    "GetBucketAccelerateConfiguration": "REST.GET.ACCELERATE",
    "PutBucketAccelerateConfiguration": "REST.PUT.ACCELERATE",
    "GetBucketRequestPayment": "REST.GET.REQUEST_PAYMENT",
    "PutBucketRequestPayment": "REST.PUT.REQUEST_PAYMENT",
    "GetBucketAnalyticsConfiguration": "REST.GET.ANALYTICS",
    "PutBucketAnalyticsConfiguration": "REST.PUT.ANALYTICS",
    "DeleteBucketAnalyticsConfiguration": "REST.DELETE.ANALYTICS",
    "GetBucketInventoryConfiguration": "REST.GET.INVENTORY",
    "PutBucketInventoryConfiguration": "REST.PUT.INVENTORY",
    "DeleteBucketInventoryConfiguration": "REST.DELETE.INVENTORY",
    "GetBucketMetricsConfiguration": "REST.GET.METRICS",
    "PutBucketMetricsConfiguration": "REST.PUT.METRICS",
    "DeleteBucketMetricsConfiguration": "REST.DELETE.METRICS",
    "GetBucketIntelligentTieringConfiguration": "REST.GET.INTELLIGENT_TIERING",
    "PutBucketIntelligentTieringConfiguration": "REST.PUT.INTELLIGENT_TIERING",
    "DeleteBucketIntelligentTieringConfiguration": "REST.DELETE.INTELLIGENT_TIERING",
    "GetBucketOwnershipControls": "REST.GET.OWNERSHIP_CONTROLS",
    "PutBucketOwnershipControls": "REST.PUT.OWNERSHIP_CONTROLS",
    "DeleteBucketOwnershipControls": "REST.DELETE.OWNERSHIP_CONTROLS",
    "GetPublicAccessBlock": "REST.GET.PUBLIC_ACCESS_BLOCK",
    "PutPublicAccessBlock": "REST.PUT.PUBLIC_ACCESS_BLOCK",
    "DeletePublicAccessBlock": "REST.DELETE.PUBLIC_ACCESS_BLOCK",
    # objects
    "GetObject": "REST.GET.OBJECT",
    "HeadObject": "REST.HEAD.OBJECT",
    "PutObject": "REST.PUT.OBJECT",
    "CopyObject": "REST.COPY.OBJECT",
    "DeleteObject": "REST.DELETE.OBJECT",
    "CreateMultipartUpload": "REST.POST.UPLOADS",
    "UploadPart": "REST.PUT.PART",
    "UploadPartCopy": "REST.COPY.PART",
    "CompleteMultipartUpload": "REST.POST.UPLOAD",
    "AbortMultipartUpload": "REST.DELETE.UPLOAD",
    "ListParts": "REST.GET.UPLOAD",
    "GetObjectAcl": "REST.GET.ACL",
    "PutObjectAcl": "REST.PUT.ACL",
    "GetObjectTagging": "REST.GET.OBJECT_TAGGING",
    "PutObjectTagging": "REST.PUT.OBJECT_TAGGING",
    "DeleteObjectTagging": "REST.DELETE.OBJECT_TAGGING",
    "GetObjectAttributes": "REST.GET.OBJECT_ATTRIBUTES",
    "RestoreObject": "REST.POST.RESTORE",
    "SelectObjectContent": "REST.POST.SELECT",
    "GetObjectTorrent": "REST.GET.TORRENT",
}
# The record a copy adds to the source bucket's log (the "GET part" of the copy).
COPY_SOURCE_OPERATIONS: dict[str, str] = {
    "CopyObject": "REST.COPY.OBJECT_GET",
    "UploadPartCopy": "REST.COPY.PART_GET",
}
PREFLIGHT = "REST.OPTIONS.PREFLIGHT"


def operation_name(operation: str, method: str, has_key: bool) -> str:
    """S3's log name of an operation; ``REST.<METHOD>.OBJECT|BUCKET`` for one S3 does not
    name in its logs (or that cargohold could not resolve)."""
    if method == "OPTIONS":
        return PREFLIGHT
    found = OPERATION_NAMES.get(operation)
    if found is not None:
        return found
    return f"REST.{_token(method.upper())}.{'OBJECT' if has_key else 'BUCKET'}"


def signature_of(authorization: str | None, query: str) -> tuple[str, str]:
    """(Signature Version, Authentication Type) from the shape of a request whose signature
    was not verified (it failed): what the request used, ``("", "")`` when unsigned."""
    if authorization is not None:
        if authorization.startswith("AWS4-"):
            return "SigV4", "AuthHeader"
        if authorization.startswith("AWS "):
            return "SigV2", "AuthHeader"
        return "", "AuthHeader"
    if "X-Amz-Signature=" in query or "X-Amz-Algorithm=" in query:
        return "SigV4", "QueryString"
    if "Signature=" in query and "AWSAccessKeyId=" in query:
        return "SigV2", "QueryString"
    return "", ""


# Object Size is the object's for reads (the whole object, also for a range) and uploads.
_READS = frozenset({"REST.GET.OBJECT", "REST.HEAD.OBJECT", "WEBSITE.GET.OBJECT",
                    "WEBSITE.HEAD.OBJECT"})
_UPLOADS = frozenset({"REST.PUT.OBJECT", "REST.PUT.PART"})


def object_size(operation: str, status: int, content_range: str | None,
                content_length: int | None, declared: int | None) -> int | None:
    """The Object Size field: for a successful read the object's size (the total of a
    ``Content-Range``, else the response's length), for an upload its declared length."""
    if status >= 300:
        return None
    if operation in _READS:
        if content_range:
            total = content_range.rpartition("/")[2]
            return int(total) if total.isdigit() else None
        return content_length
    if operation in _UPLOADS:
        return declared
    return None


# -------------------------------------------------------------------------- records


@dataclass(slots=True)
class Entry:
    """What one log record says about one request, before formatting.

    Strings are ``""`` and numbers ``None`` when unknown or not applicable (printed ``-``).
    """

    bucket_owner: str
    bucket: str
    time: float  # unix time the request was received
    remote_ip: str
    requester: str  # canonical user id
    request_id: str
    operation: str
    key: str | None
    method: str
    target: str  # the request target exactly as sent: raw path and query
    protocol: str  # "HTTP/1.1"
    status: int
    error_code: str
    bytes_sent: int  # response body bytes
    object_size: int | None
    total_ms: int | None
    turnaround_ms: int | None
    referrer: str
    user_agent: str
    version_id: str
    host_id: str
    signature_version: str
    cipher_suite: str
    auth_type: str
    host_header: str
    tls_version: str


def format_line(entry: Entry) -> str:
    """One record of S3's server access log format (without the newline)."""
    fields = (
        _token(entry.bucket_owner),
        _token(entry.bucket),
        format_time(entry.time),
        _token(entry.remote_ip),
        _token(entry.requester),
        _token(entry.request_id),
        _token(entry.operation),
        _token(quote(entry.key, safe="/")) if entry.key else "-",
        _quoted(f"{entry.method} {entry.target} {entry.protocol}"),
        str(entry.status),
        _token(entry.error_code),
        str(entry.bytes_sent) if entry.bytes_sent > 0 else "-",
        _number(entry.object_size),
        _number(entry.total_ms),
        _number(entry.turnaround_ms),
        _quoted(entry.referrer),
        _quoted(entry.user_agent),
        _token(entry.version_id),
        _token(entry.host_id),
        _token(entry.signature_version),
        _token(entry.cipher_suite),
        _token(entry.auth_type),
        _token(entry.host_header),
        _token(entry.tls_version),
    )
    return " ".join(fields)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_time(timestamp: float) -> str:
    """``[06/Feb/2019:00:00:38 +0000]`` (month names spelt out here: ``%b`` follows the
    locale)."""
    t = time.gmtime(timestamp)
    return (f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000]")


def _number(value: int | None) -> str:
    return "-" if value is None or value < 0 else str(value)


def _token(value: str) -> str:
    """An unquoted field: ``-`` when empty; whitespace, quotes, backslashes and control
    characters percent-encoded so the field can never split or end a record."""
    if not value:
        return "-"
    if value.isprintable() and " " not in value and '"' not in value and "\\" not in value:
        return value
    return "".join(c if c.isprintable() and c not in ' "\\' else _percent(c) for c in value)


def _quoted(value: str) -> str:
    """A quoted field (``"-"`` when empty); ``"`` and ``\\`` backslash-escaped, control
    characters as ``\\xHH``, so a header value cannot end the field or the record."""
    if not value:
        return '"-"'
    if value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    out = []
    for c in value:
        if c in '"\\':
            out.append("\\" + c)
        elif not c.isprintable():
            out.append("".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogatepass")))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _percent(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))


# ----------------------------------------------------------------------- log files


def log_object_key(prefix: str, when: float) -> str:
    """``TargetPrefixYYYY-mm-DD-HH-MM-SS-UniqueString`` (16 upper-case hex characters)."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(when))
    return f"{prefix}{stamp}-{os.urandom(8).hex().upper()}"
