"""Canonical forms shared by the signature checks: URI encoding, query, headers, dates,
and the payload mode an ``x-amz-content-sha256`` value selects.

Everything here works on the request exactly as it came off the wire. Strings that came from
aiohttp may carry undecodable bytes as surrogates (``surrogateescape``); they are turned back
into the original bytes with :data:`WIRE` before hashing or percent-decoding.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_tz
from typing import NamedTuple
from urllib.parse import quote_from_bytes, unquote_to_bytes

from multidict import CIMultiDictProxy

from cargohold import errors
from cargohold.auth.model import PayloadMode

WIRE = "surrogateescape"  # error handler that round-trips raw bytes through str

# Strings made only of these need no percent-encoding (AWS "unreserved" characters).
_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~]*")
_UNRESERVED_PATH = re.compile(r"[A-Za-z0-9\-_.~/]*")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_NAMED_MODES = {
    mode.value: mode for mode in PayloadMode if mode.is_chunked or mode is PayloadMode.UNSIGNED
}


def uri_encode(data: bytes, *, keep_slash: bool) -> str:
    """AWS URI encoding: unreserved ``A-Za-z0-9-_.~`` kept, all else ``%XX`` upper case."""
    # quote_from_bytes never quotes letters, digits and "_.-~", exactly AWS's unreserved set.
    return quote_from_bytes(data, safe="/" if keep_slash else "")


def percent_decode(text: str) -> bytes:
    """Decode ``%XX`` escapes only (``+`` stays a plus: AWS clients send spaces as %20)."""
    return unquote_to_bytes(text.encode("utf-8", WIRE))


def reencoded_path(raw_path: str) -> str:
    """The path decoded, then re-encoded the AWS way (the fallback canonical URI)."""
    if _UNRESERVED_PATH.fullmatch(raw_path):
        return raw_path
    return uri_encode(percent_decode(raw_path), keep_slash=True)


class QueryParam(NamedTuple):
    """One query parameter: decoded name/value plus its AWS-encoded canonical form."""

    name: str  # percent-decoded
    value: str  # percent-decoded ("" when the parameter had no "=")
    enc_name: str  # AWS URI-encoded, "/" encoded too
    enc_value: str
    raw_name: str  # as sent (SigV2 compares sub-resource names undecoded)
    has_value: bool  # whether the parameter carried an "="


def _decode_and_encode(part: str) -> tuple[str, str]:
    if _UNRESERVED.fullmatch(part):  # the common case: nothing to decode or encode
        return part, part
    data = percent_decode(part)
    return data.decode("utf-8", WIRE), uri_encode(data, keep_slash=False)


def parse_query(raw_query: str) -> list[QueryParam]:
    """Split a raw query string into parameters, in the order sent."""
    params: list[QueryParam] = []
    if not raw_query:
        return params
    for part in raw_query.split("&"):
        if not part:
            continue
        raw_name, eq, raw_value = part.partition("=")
        name, enc_name = _decode_and_encode(raw_name)
        value, enc_value = _decode_and_encode(raw_value) if raw_value else ("", "")
        params.append(QueryParam(name, value, enc_name, enc_value, raw_name, bool(eq)))
    return params


def canonical_query(params: list[QueryParam], exclude: str | None = None) -> str:
    """SigV4 CanonicalQueryString: encoded pairs sorted by name, then value."""
    if not params:
        return ""
    pairs = sorted((p.enc_name, p.enc_value) for p in params if p.name != exclude)
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_headers(headers: CIMultiDictProxy[str], names: list[str]) -> str | None:
    """SigV4 CanonicalHeaders for ``names`` (lower case); ``None`` if one is missing.

    Values are trimmed with inner whitespace runs collapsed; repeated headers are joined
    with ``,`` in the order received.
    """
    lines: list[str] = []
    for name in names:
        values = headers.getall(name, None)
        if values is None:
            return None
        if len(values) == 1:
            value = " ".join(values[0].split())
        else:
            value = ",".join(" ".join(v.split()) for v in values)
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


@functools.lru_cache(maxsize=64)  # consecutive requests mostly share the same second
def parse_amz_date(text: str) -> float | None:
    """Unix time of an ISO 8601 basic timestamp (``20130524T000000Z``), else ``None``."""
    if (len(text) != 16 or text[8] != "T" or text[15] != "Z"
            or not text[:8].isdigit() or not text[9:15].isdigit()):
        return None
    try:
        moment = datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]),
                          int(text[11:13]), int(text[13:15]), tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp()


def parse_http_date(text: str) -> float | None:
    """Unix time of an RFC 1123 (or RFC 850 / asctime) date, else ``None``."""
    parsed = parsedate_tz(text)
    if parsed is None:
        return None
    try:
        moment = datetime(*parsed[:6], tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp() - (parsed[9] or 0)


def parse_any_date(text: str) -> float | None:
    """An ``x-amz-date`` / ``Date`` value in either format clients use."""
    text = text.strip()
    return parse_amz_date(text) if len(text) == 16 else parse_http_date(text)


def format_amz_date(timestamp: float) -> str:
    """``yyyymmddThhmmssZ`` for a unix time."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(timestamp))


def format_http_date(timestamp: float) -> str:
    """RFC 1123 form, for error details."""
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(timestamp))


def payload_mode(value: str | None) -> tuple[PayloadMode, str | None]:
    """The payload mode an ``x-amz-content-sha256`` value selects (``None``: unsigned).

    Returns the mode and, for a signed payload, the expected lower-case hex digest.
    """
    if value is None:
        return PayloadMode.UNSIGNED, None
    mode = _NAMED_MODES.get(value)
    if mode is not None:
        return mode, None
    if len(value) == 64 and _HEX64.fullmatch(value):
        return PayloadMode.SIGNED, value.lower()
    raise errors.InvalidArgument(
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or "
        "a valid sha256 value.",
        ArgumentName="x-amz-content-sha256", ArgumentValue=value)
