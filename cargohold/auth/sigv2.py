"""AWS Signature Version 2 (HMAC-SHA1): ``Authorization: AWS AK:sig`` and presigned URLs.

Still sent by s3cmd, old boto and a few appliances. StringToSign::

    Method \\n Content-MD5 \\n Content-Type \\n Date-or-Expires \\n
    CanonicalizedAmzHeaders CanonicalizedResource
"""

from __future__ import annotations

import base64
import hmac

from multidict import CIMultiDictProxy

from cargohold import errors
from cargohold.auth import canonical
from cargohold.auth.canonical import WIRE, QueryParam
from cargohold.auth.model import (
    AuthResult,
    KeyLookup,
    PayloadMode,
    SignedRequest,
    principal_for,
)
from cargohold.numbers import decimal

# Query parameters that are part of the CanonicalizedResource (S3 sub-resources).
SUBRESOURCES = frozenset({
    "accelerate", "acl", "analytics", "attributes", "cors", "defaultObjectAcl", "delete",
    "encryption", "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "location",
    "logging", "metrics", "notification", "object-lock", "ownershipControls", "partNumber",
    "policy", "publicAccessBlock", "replication", "requestPayment", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "response-content-language",
    "response-content-type", "response-expires", "restore", "retention", "select",
    "select-type", "storageClass", "tagging", "torrent", "uploadId", "uploads", "versionId",
    "versioning", "versions", "website",
})


def _amz_headers(headers: CIMultiDictProxy[str], extra: dict[str, str]) -> str:
    """CanonicalizedAmzHeaders: ``name:v1,v2\\n`` for each x-amz-* header, sorted."""
    collected: dict[str, list[str]] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith("x-amz-"):
            collected.setdefault(lower, []).append(value.strip())
    for name, value in extra.items():  # presigned URLs may carry x-amz-* "headers" as params
        collected.setdefault(name, [value])
    return "".join(f"{name}:{','.join(collected[name])}\n" for name in sorted(collected))


def _resources(req: SignedRequest, params: list[QueryParam]) -> list[str]:
    """CanonicalizedResource candidates: the raw path, then its AWS re-encoding."""
    paths = [req.raw_path or "/"]
    alternative = canonical.reencoded_path(paths[0])
    if alternative != paths[0]:
        paths.append(alternative)
    if not req.host_bucket and paths[0].count("/") == 1 and len(paths[0]) > 1:
        # A path-style bucket request ("/bucket"): botocore signs the resource "/bucket/",
        # the form S3 uses for a bucket.
        paths.append(paths[0] + "/")
    prefix = f"/{req.host_bucket}" if req.host_bucket else ""
    subresources = sorted(
        (p for p in params if p.raw_name in SUBRESOURCES), key=lambda p: p.raw_name)
    suffix = ""
    if subresources:
        suffix = "?" + "&".join(
            f"{p.raw_name}={p.value}" if p.has_value else p.raw_name for p in subresources)
    return [prefix + path + suffix for path in paths]


def _sign(secret: str, string_to_sign: str) -> bytes:
    digest = hmac.digest(secret.encode(), string_to_sign.encode("utf-8", WIRE), "sha1")
    return base64.b64encode(digest)


def _matches(secret: str, provided: str, heads: list[str], amz: str,
             resources: list[str]) -> bool:
    expected = provided.strip().encode("utf-8", WIRE)
    for head in heads:
        for resource in resources:
            if hmac.compare_digest(_sign(secret, head + amz + resource), expected):
                return True
    return False


def _payload(headers: CIMultiDictProxy[str]) -> tuple[PayloadMode, str | None]:
    mode, digest = canonical.payload_mode(headers.get("x-amz-content-sha256"))
    if mode.is_chunked and mode is not PayloadMode.STREAMING_UNSIGNED_TRAILER:
        raise errors.InvalidRequest("Signed aws-chunked payloads require Signature Version 4.")
    return mode, digest


async def verify_header(req: SignedRequest, authorization: str, params: list[QueryParam],
                        lookup: KeyLookup, now: float, max_skew: float) -> AuthResult:
    """Verify ``Authorization: AWS <access key>:<base64 signature>``."""
    access_key, colon, signature = authorization[4:].strip().partition(":")
    if not colon or not access_key or not signature:
        raise errors.InvalidArgument("AWS authorization header is invalid.  Expected "
                                     "AwsAccessKeyId:signature",
                                     ArgumentName="Authorization",
                                     ArgumentValue=authorization)
    headers = req.headers
    amz_date = headers.get("x-amz-date")
    date = headers.get("Date")
    request_time = canonical.parse_any_date(amz_date if amz_date is not None else date or "")
    if request_time is None:
        raise errors.AccessDenied("AWS authentication requires a valid Date or x-amz-date "
                                  "header")
    if abs(now - request_time) > max_skew:
        raise errors.RequestTimeTooSkewed(
            RequestTime=canonical.format_http_date(request_time),
            ServerTime=canonical.format_http_date(now),
            MaxAllowedSkewMilliseconds=str(int(max_skew * 1000)))
    mode, digest = _payload(headers)
    principal, secret = await principal_for(lookup, access_key)
    start = (f"{req.method}\n{headers.get('Content-MD5', '').strip()}\n"
             f"{headers.get('Content-Type', '').strip()}\n")
    # With x-amz-date the Date line is empty (x-amz-date is among the amz headers); some
    # signers (botocore's HmacV1Auth) put their Date there regardless, so accept that too.
    if amz_date is None:
        heads = [f"{start}{(date or '').strip()}\n"]
    else:
        heads = [f"{start}\n"] + ([f"{start}{date.strip()}\n"] if date is not None else [])
    if not _matches(secret, signature, heads, _amz_headers(headers, {}),
                    _resources(req, params)):
        raise errors.SignatureDoesNotMatch(AWSAccessKeyId=access_key)
    return AuthResult(principal=principal, signature_version="SigV2", auth_type="AuthHeader",
                      payload_mode=mode, payload_sha256=digest)


async def verify_presigned(req: SignedRequest, params: list[QueryParam], lookup: KeyLookup,
                           now: float) -> AuthResult:
    """Verify ``?AWSAccessKeyId=..&Expires=..&Signature=..``."""
    values: dict[str, str] = {}
    amz_params: dict[str, str] = {}
    for param in params:
        values.setdefault(param.name, param.value)
        lower = param.name.lower()
        if lower.startswith("x-amz-"):
            amz_params.setdefault(lower, param.value)
    access_key = values.get("AWSAccessKeyId", "")
    signature = values.get("Signature", "")
    expires = values.get("Expires", "")
    if not access_key or not signature or not expires:
        raise errors.AccessDenied("Query-string authentication requires the Signature, "
                                  "Expires and AWSAccessKeyId parameters")
    expires_at = decimal(expires)
    if expires_at is None:
        raise errors.AccessDenied("Invalid date (should be seconds since epoch): " + expires)
    if now > expires_at:
        raise errors.AccessDenied("Request has expired",
                                  Expires=canonical.format_http_date(expires_at),
                                  ServerTime=canonical.format_http_date(now))
    headers = req.headers
    mode, digest = _payload(headers)
    principal, secret = await principal_for(lookup, access_key)
    # Signers move Content-Type / Content-MD5 / x-amz-* into the query (botocore does); the
    # client fetching the URL may or may not send them again as headers.
    content_md5 = headers.get("Content-MD5", values.get("content-md5", "")).strip()
    content_type = headers.get("Content-Type", values.get("content-type", "")).strip()
    head = f"{req.method}\n{content_md5}\n{content_type}\n{expires}\n"
    if not _matches(secret, signature, [head], _amz_headers(headers, amz_params),
                    _resources(req, params)):
        raise errors.SignatureDoesNotMatch(AWSAccessKeyId=access_key)
    return AuthResult(principal=principal, signature_version="SigV2", auth_type="QueryString",
                      payload_mode=mode, payload_sha256=digest)
