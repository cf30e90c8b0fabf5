"""AWS Signature Version 4: the ``Authorization`` header and presigned query forms.

The canonical request is rebuilt from the raw request bytes. S3 neither normalizes nor
double-encodes the path, so the canonical URI is the path as received; clients that sign a
differently-escaped form than they send get one retry with the AWS-re-encoded path.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections import OrderedDict
from typing import NamedTuple

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

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_PRESIGN_EXPIRES = 604800  # one week, as S3
UNSIGNED_PAYLOAD = PayloadMode.UNSIGNED.value

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


# --- signing keys ---------------------------------------------------------------------------

_KEY_CACHE_SIZE = 512
_key_cache: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()


def signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """kSigning for (secret, yyyymmdd, region), cached: it saves four HMACs a request."""
    cache_key = (secret, date, region)
    if service == "s3":
        key = _key_cache.get(cache_key)
        if key is not None:
            _key_cache.move_to_end(cache_key)
            return key
    k = hmac.digest(("AWS4" + secret).encode(), date.encode(), "sha256")
    k = hmac.digest(k, region.encode(), "sha256")
    k = hmac.digest(k, service.encode(), "sha256")
    key = hmac.digest(k, b"aws4_request", "sha256")
    if service == "s3":
        _key_cache[cache_key] = key
        if len(_key_cache) > _KEY_CACHE_SIZE:
            _key_cache.popitem(last=False)
    return key


# Signing key -> an HMAC keyed with it, never updated: copies of it sign. hmac.digest sets
# up the key's inner and outer hashes on every call, half the cost of a signature.
_keyed: dict[bytes, hmac.HMAC] = {}


def sign(key: bytes, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 of a string to sign."""
    keyed = _keyed.get(key)
    if keyed is None:
        if len(_keyed) >= _KEY_CACHE_SIZE:
            _keyed.clear()
        keyed = _keyed[key] = hmac.new(key, digestmod=hashlib.sha256)
    signer = keyed.copy()
    signer.update(string_to_sign.encode("utf-8", WIRE))
    return signer.hexdigest()


# --- parsing ---------------------------------------------------------------------------------

class Credential(NamedTuple):
    access_key: str
    date: str  # yyyymmdd
    region: str
    service: str
    scope: str  # yyyymmdd/region/service/aws4_request


def _credential(access_key: str, date: str, region: str, service: str) -> Credential:
    return Credential(access_key, date, region, service,
                      f"{date}/{region}/{service}/aws4_request")


def parse_credential(text: str) -> Credential | None:
    """``AKID/yyyymmdd/region/s3/aws4_request`` split up; ``None`` when malformed."""
    parts = text.rsplit("/", 4)
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts[:4]):
        return None
    access_key, date, region, service, _ = parts
    if len(date) != 8 or decimal(date) is None:
        return None
    return _credential(access_key, date, region, service)


class _Parsed(NamedTuple):
    """What the header or query says, before any verification."""

    credential: Credential
    signed_headers: str  # as sent: it is part of the canonical request verbatim
    header_names: list[str]
    signature: str


def _malformed(message: str, **fields: str) -> errors.S3Error:
    return errors.AuthorizationHeaderMalformed(
        f"The authorization header is malformed; {message}", **fields)


# The form every SDK sends; anything else takes the slower path with precise errors.
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 +Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/s3/aws4_request *, *"
    r"SignedHeaders=([a-z0-9;-]+) *, *Signature=([0-9a-f]{64}) *")


_SIGNATURE = re.compile(r"([0-9a-f]{64}) *")


def parse_authorization(value: str) -> _Parsed:
    """Parse ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``."""
    # Everything before the signature repeats from request to request: parsed once.
    head, found, tail = value.rpartition("Signature=")
    signature = _SIGNATURE.fullmatch(tail) if found else None
    if signature is not None:
        parsed = _parse_head(head)
        if parsed is not None:
            return _Parsed(parsed.credential, parsed.signed_headers, parsed.header_names,
                           signature.group(1))
    return _parse_authorization_slowly(value)


@functools.lru_cache(maxsize=256)
def _parse_head(head: str) -> _Parsed | None:
    """The credential and signed headers of the form every SDK sends (signature left
    blank), or None for anything else."""
    match = _AUTHORIZATION.fullmatch(head + "Signature=" + "0" * 64)
    if match is None:
        return None
    access_key, date, region, signed_headers, _ = match.groups()
    names = signed_headers.split(";")
    if "host" not in names or not all(names):
        return None
    return _Parsed(_credential(access_key, date, region, "s3"), signed_headers, names, "")


def _parse_authorization_slowly(value: str) -> _Parsed:
    fields: dict[str, str] = {}
    for item in value[len(ALGORITHM):].split(","):
        name, eq, val = item.strip().partition("=")
        if not eq or name in fields:
            raise _malformed(f"the authorization component \"{item.strip()}\" is malformed.")
        fields[name] = val.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if n not in fields]
    if missing or len(fields) != 3:
        raise _malformed("it must contain exactly Credential, SignedHeaders and Signature.")
    credential = parse_credential(fields["Credential"])
    if credential is None:
        raise _malformed('the Credential is mal-formed; expecting '
                         '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
    if credential.service != "s3":
        raise _malformed(f"incorrect service \"{credential.service}\". This endpoint belongs "
                         "to \"s3\".")
    signature = fields["Signature"]
    if not _HEX64.fullmatch(signature):
        raise _malformed("the Signature is not a 64-character hex string.")
    signed_headers = fields["SignedHeaders"]
    names = signed_headers.lower().split(";")
    if not all(names):
        raise _malformed("SignedHeaders is malformed.")
    if "host" not in names:
        raise _malformed("the host header must be signed.")
    return _Parsed(credential, signed_headers, names, signature.lower())


def _query_error(message: str) -> errors.S3Error:
    return errors.AuthorizationQueryParametersError(message)


def _parse_presigned(values: dict[str, str]) -> tuple[_Parsed, str, int]:
    """Parse the ``X-Amz-*`` query parameters: (parsed, amz_date, expires seconds)."""
    algorithm = values.get("X-Amz-Algorithm")
    if algorithm is None:
        raise _query_error("Query-string authentication version 4 requires the "
                           "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, "
                           "X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
    if algorithm != ALGORITHM:
        raise _query_error("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
    for name in ("X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders",
                 "X-Amz-Expires"):
        if not values.get(name):
            raise _query_error("Query-string authentication version 4 requires the "
                               "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, "
                               "X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires "
                               "parameters.")
    credential = parse_credential(values["X-Amz-Credential"])
    if credential is None:
        raise _query_error('Error parsing the X-Amz-Credential parameter; the Credential is '
                           'mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/'
                           'aws4_request".')
    if credential.service != "s3":
        raise _query_error("Error parsing the X-Amz-Credential parameter; incorrect service "
                           f"\"{credential.service}\". This endpoint belongs to \"s3\".")
    expires_text = values["X-Amz-Expires"]
    expires = decimal(expires_text)
    if expires is None or not 1 <= expires <= MAX_PRESIGN_EXPIRES:
        raise _query_error("X-Amz-Expires must be between 1 and 604800 seconds "
                           "(one week).")
    signature = values["X-Amz-Signature"]
    if not _HEX64.fullmatch(signature):
        raise _query_error("X-Amz-Signature must be a 64-character hex string.")
    signed_headers = values["X-Amz-SignedHeaders"]
    names = signed_headers.lower().split(";")
    if not all(names) or "host" not in names:
        raise _query_error("X-Amz-SignedHeaders must be a ';'-separated list including host.")
    parsed = _Parsed(credential, signed_headers, names, signature.lower())
    return parsed, values["X-Amz-Date"], expires


# --- verification ----------------------------------------------------------------------------

def _check_signature(req: SignedRequest, parsed: _Parsed, key: bytes, amz_date: str,
                     query: str, payload_hashes: tuple[str, ...]) -> bool:
    """Whether the signature verifies for any accepted canonical URI / payload hash."""
    headers = canonical.canonical_headers(req.headers, parsed.header_names)
    if headers is None:  # a signed header is absent: it cannot have been signed as sent
        return False
    expected = parsed.signature.encode()
    paths = [req.raw_path or "/"]
    alternative = canonical.reencoded_path(paths[0])
    if alternative != paths[0]:
        paths.append(alternative)
    prefix = f"{ALGORITHM}\n{amz_date}\n{parsed.credential.scope}\n"
    for path in paths:
        for payload_hash in payload_hashes:
            request = (f"{req.method}\n{path}\n{query}\n{headers}\n"
                       f"{parsed.signed_headers}\n{payload_hash}")
            digest = hashlib.sha256(request.encode("utf-8", WIRE)).hexdigest()
            signature = sign(key, prefix + digest).encode()
            if hmac.compare_digest(signature, expected):
                return True
    return False


def _skewed(request_time: float, now: float, max_skew: float) -> errors.S3Error:
    return errors.RequestTimeTooSkewed(
        RequestTime=canonical.format_http_date(request_time),
        ServerTime=canonical.format_http_date(now),
        MaxAllowedSkewMilliseconds=str(int(max_skew * 1000)))


async def verify_header(req: SignedRequest, authorization: str, params: list[QueryParam],
                        lookup: KeyLookup, now: float, max_skew: float) -> AuthResult:
    """Verify a request signed with ``Authorization: AWS4-HMAC-SHA256 ...``."""
    parsed = parse_authorization(authorization)
    headers = req.headers
    content_sha = headers.get("x-amz-content-sha256")
    if content_sha is None:
        raise errors.MissingSecurityHeader(
            "Missing required header for this request: x-amz-content-sha256",
            MissingHeaderName="x-amz-content-sha256")
    mode, expected_sha = canonical.payload_mode(content_sha)
    amz_date = headers.get("x-amz-date")
    if amz_date is not None:
        request_time = canonical.parse_amz_date(amz_date)
    else:
        date_header = headers.get("Date")
        request_time = None if date_header is None else canonical.parse_http_date(date_header)
        # With only a Date header, the string to sign carries its ISO 8601 basic form.
        amz_date = "" if request_time is None else canonical.format_amz_date(request_time)
    if request_time is None:
        raise errors.AccessDenied("AWS authentication requires a valid Date or x-amz-date "
                                  "header")
    if parsed.credential.date != amz_date[:8]:
        raise _malformed(f"Invalid credential date \"{parsed.credential.date}\". This date is "
                         "not the same as X-Amz-Date: \"" + amz_date[:8] + "\".")
    if abs(now - request_time) > max_skew:
        raise _skewed(request_time, now, max_skew)
    principal, secret = await principal_for(lookup, parsed.credential.access_key)
    key = signing_key(secret, parsed.credential.date, parsed.credential.region)
    query = canonical.canonical_query(params)
    if not _check_signature(req, parsed, key, amz_date, query, (content_sha,)):
        raise errors.SignatureDoesNotMatch(AWSAccessKeyId=parsed.credential.access_key)
    return AuthResult(
        principal=principal, signature_version="SigV4", auth_type="AuthHeader",
        payload_mode=mode, payload_sha256=expected_sha, seed_signature=parsed.signature,
        signing_key=key, amz_date=amz_date, scope=parsed.credential.scope)


async def verify_presigned(req: SignedRequest, params: list[QueryParam], lookup: KeyLookup,
                           now: float, max_skew: float) -> AuthResult:
    """Verify a presigned URL (``X-Amz-Algorithm=AWS4-HMAC-SHA256&...``)."""
    values: dict[str, str] = {}
    for param in params:
        if param.name.startswith("X-Amz-"):
            values.setdefault(param.name, param.value)
    parsed, amz_date, expires = _parse_presigned(values)
    request_time = canonical.parse_amz_date(amz_date)
    if request_time is None:
        raise _query_error("X-Amz-Date must be in the ISO8601 Long Format "
                           "\"yyyyMMdd'T'HHmmss'Z'\"")
    if parsed.credential.date != amz_date[:8]:
        raise _query_error(f"Invalid credential date \"{parsed.credential.date}\". This date "
                           "is not the same as X-Amz-Date: \"" + amz_date[:8] + "\".")
    if request_time - now > max_skew:
        raise errors.AccessDenied("Request is not valid yet",
                                  ServerTime=canonical.format_http_date(now))
    if now > request_time + expires:
        raise errors.AccessDenied("Request has expired", **{
            "X-Amz-Expires": str(expires),
            "Expires": canonical.format_http_date(request_time + expires),
            "ServerTime": canonical.format_http_date(now)})
    content_sha = req.headers.get("x-amz-content-sha256")
    mode, expected_sha = canonical.payload_mode(content_sha)
    # Presigners (botocore and most SDKs) sign the literal UNSIGNED-PAYLOAD; a few sign the
    # x-amz-content-sha256 header they also send. Accept either.
    hashes = ((UNSIGNED_PAYLOAD,) if content_sha is None or content_sha == UNSIGNED_PAYLOAD
              else (content_sha, UNSIGNED_PAYLOAD))
    principal, secret = await principal_for(lookup, parsed.credential.access_key)
    key = signing_key(secret, parsed.credential.date, parsed.credential.region)
    query = canonical.canonical_query(params, exclude="X-Amz-Signature")
    if not _check_signature(req, parsed, key, amz_date, query, hashes):
        raise errors.SignatureDoesNotMatch(AWSAccessKeyId=parsed.credential.access_key)
    return AuthResult(
        principal=principal, signature_version="SigV4", auth_type="QueryString",
        payload_mode=mode, payload_sha256=expected_sha, seed_signature=parsed.signature,
        signing_key=key, amz_date=amz_date, scope=parsed.credential.scope)
