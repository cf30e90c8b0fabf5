"""Data types shared by the auth modules and the HTTP layer."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from multidict import CIMultiDictProxy

from cargohold import errors
from cargohold.store.base import AccessKey

KeyLookup = Callable[[str], Awaitable[AccessKey | None]]
"""Find an access key by id (``None`` if unknown)."""


class SignedRequest(NamedTuple):
    """The parts of an HTTP request a signature covers, exactly as they came off the wire."""

    method: str
    raw_path: str  # undecoded path, without the query
    raw_query: str  # undecoded query string without '?', "" when absent
    headers: CIMultiDictProxy[str]
    # Bucket named by the Host header (virtual-host style), for SigV2's CanonicalizedResource.
    host_bucket: str | None = None


@dataclass(frozen=True)
class Principal:
    """Who is asking: an account (via one of its keys), or anonymous."""

    account_id: str | None
    access_key: str | None
    # A limited key's {bucket: permission} grants; None for a full-access key (or anonymous).
    grants: Mapping[str, str] | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.account_id is None


ANONYMOUS = Principal(account_id=None, access_key=None)
_PRINCIPALS: dict[tuple[str, str], Principal] = {}


async def principal_for(lookup: KeyLookup, access_key: str) -> tuple[Principal, str]:
    """The principal an access key id stands for, and its secret; ``InvalidAccessKeyId``
    for an unknown key."""
    key = await lookup(access_key)
    if key is None:
        raise errors.InvalidAccessKeyId(AWSAccessKeyId=access_key)
    if key.grants is not None:
        return Principal(account_id=key.account_id, access_key=key.access_key,
                         grants=key.grants), key.secret_key
    # A full-access key's principal is the same every time: made once.
    principal = _PRINCIPALS.get((key.account_id, key.access_key))
    if principal is None:
        if len(_PRINCIPALS) >= 10_000:
            _PRINCIPALS.clear()
        principal = _PRINCIPALS[(key.account_id, key.access_key)] = Principal(
            account_id=key.account_id, access_key=key.access_key)
    return principal, key.secret_key


class PayloadMode(enum.Enum):
    """How the request body is framed and what protects it."""

    UNSIGNED = "UNSIGNED-PAYLOAD"  # nothing to verify (besides checksums / Content-MD5)
    SIGNED = "SIGNED"  # hex SHA-256 in x-amz-content-sha256 must match the body
    STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"

    @property
    def is_chunked(self) -> bool:
        return self.name.startswith("STREAMING")

    @property
    def has_trailer(self) -> bool:
        return self.name.endswith("TRAILER")


@dataclass
class AuthResult:
    """The verified identity plus what the payload reader needs to verify the body."""

    principal: Principal
    signature_version: str | None = None  # "SigV4" | "SigV2" | None (anonymous)
    auth_type: str | None = None  # "AuthHeader" | "QueryString" | None
    payload_mode: PayloadMode = PayloadMode.UNSIGNED
    payload_sha256: str | None = None  # expected hex digest for PayloadMode.SIGNED
    # SigV4 streaming context: seed signature and signing key pieces for chunk signatures.
    seed_signature: str = ""
    signing_key: bytes = b""
    amz_date: str = ""  # yyyymmddThhmmssZ
    scope: str = ""  # yyyymmdd/region/s3/aws4_request
    extra: dict[str, str] = field(default_factory=dict)
