"""SSE-C keys: the request headers, the stored key check, and S3's answers when they are off.

A request names its key with three headers (``x-amz-server-side-encryption-customer-*``, or
``x-amz-copy-source-server-side-encryption-customer-*`` for a copy's source): the algorithm
(``AES256``), the 256-bit key in base64, and the base64 MD5 of the key. The key is never
stored. An object (or a multipart upload) keeps :class:`Encryption`: the algorithm, the key's
MD5 (S3 echoes it), a random salt, an HKDF-derived check value that tells the right key from
a wrong one (compared in constant time), and the chunk size of its blobs. The check value
cannot be turned back into the key, and it is derived with a different label from the data
keys (:mod:`cargohold.sse.chunks`), so it says nothing about them either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from multidict import istr

from cargohold import errors
from cargohold.sse.chunks import CHUNK_SIZE, SALT_SIZE, ObjectCipher, hkdf

ALGORITHM: Final = "AES256"
HEADERS: Final = "x-amz-server-side-encryption-customer-"
COPY_SOURCE_HEADERS: Final = "x-amz-copy-source-server-side-encryption-customer-"
ALGORITHM_HEADER: Final = HEADERS + "algorithm"
KEY_MD5_HEADER: Final = HEADERS + "key-MD5"
_CHECK_INFO: Final = b"cargohold sse-c v1 key check"
_KEY_SIZE: Final = 32
# S3 names this argument in every SSE-C InvalidArgument, whichever header was wrong.
_ARGUMENT: Final = "x-amz-server-side-encryption"
# --sse-c-over-http values
OVER_HTTP_MODES: Final = ("loopback", "always", "never")


@dataclass(frozen=True)
class CustomerKey:
    """A customer key as a request gave it (validated)."""

    key: bytes = field(repr=False)
    md5: str  # base64 MD5 of the key, as S3 echoes it

    def response_headers(self) -> dict[str, str]:
        """The headers S3 answers an SSE-C request with."""
        return {ALGORITHM_HEADER: ALGORITHM, KEY_MD5_HEADER: self.md5}


# The three header names under each prefix, built once: this runs on every GET and PUT.
_NAMES: Final[dict[str, tuple[istr, istr, istr]]] = {
    prefix: (istr(prefix + "algorithm"), istr(prefix + "key"), istr(prefix + "key-md5"))
    for prefix in (HEADERS, COPY_SOURCE_HEADERS)
}


def _names(prefix: str) -> tuple[istr, istr, istr]:
    names = _NAMES.get(prefix)
    if names is None:
        names = (istr(prefix + "algorithm"), istr(prefix + "key"), istr(prefix + "key-md5"))
    return names


def sent(headers: Mapping[str, str], prefix: str = HEADERS) -> bool:
    """Whether the request carries any of the three headers under ``prefix``."""
    algorithm, key, md5 = _names(prefix)
    return algorithm in headers or key in headers or md5 in headers


def request_key(headers: Mapping[str, str], prefix: str = HEADERS, *,
                write: bool = True) -> CustomerKey | None:
    """The key the headers under ``prefix`` give; ``None`` when there are none.

    Checked in S3's order: a write may not also ask for another encryption
    (``x-amz-server-side-encryption``), the algorithm and key must both be there, the
    algorithm must be AES256, the MD5 must match (writes must send it; S3 lets reads leave
    it out), the key must be 256 bits. ``headers`` must be case-insensitive.
    """
    algorithm_name, key_name, md5_name = _names(prefix)
    algorithm = headers.get(algorithm_name)
    encoded = headers.get(key_name)
    md5 = headers.get(md5_name)
    if algorithm is None and encoded is None and md5 is None:
        return None
    other = headers.get(_ARGUMENT)
    if write and prefix == HEADERS and other is not None:
        raise errors.InvalidArgument(
            "Server Side Encryption with Customer provided key is incompatible with the "
            "encryption method specified", ArgumentName=_ARGUMENT, ArgumentValue=other)
    if algorithm is None:
        raise errors.InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide a valid encryption algorithm.", ArgumentName=_ARGUMENT, ArgumentValue="null")
    if encoded is None:
        raise errors.InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide an appropriate secret key.", ArgumentName=_ARGUMENT, ArgumentValue="null")
    if algorithm.strip() != ALGORITHM:
        raise errors.InvalidEncryptionAlgorithmError(ArgumentName=_ARGUMENT,
                                                     ArgumentValue=algorithm)
    if md5 is None and write:
        raise errors.InvalidArgument(
            "Requests specifying Server Side Encryption with Customer provided keys must "
            "provide the client calculated MD5 of the secret key.",
            ArgumentName=_ARGUMENT, ArgumentValue="null")
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid_key() from None
    actual_md5 = base64.b64encode(hashlib.md5(key, usedforsecurity=False).digest()).decode()
    # S3 compares the MD5 before the length (a 24-byte key with a wrong MD5 is refused for
    # the MD5).
    if md5 is not None and not hmac.compare_digest(md5.strip().encode(), actual_md5.encode()):
        raise errors.InvalidArgument(
            "The calculated MD5 hash of the key did not match the hash that was provided.",
            ArgumentName=_ARGUMENT, ArgumentValue="null")
    if len(key) != _KEY_SIZE:
        raise _invalid_key()
    return CustomerKey(key, actual_md5)


def _invalid_key() -> errors.S3Error:
    return errors.InvalidArgument("The secret key was invalid for the specified algorithm.",
                                  ArgumentName=_ARGUMENT, ArgumentValue="null")


def check_transport(headers: Mapping[str, str], mode: str, secure: bool, remote: str) -> None:
    """Refuse SSE-C headers that came over plain HTTP, unless ``mode`` allows it.

    ``mode`` is the ``sse_c_over_http`` setting: ``always``, ``never``, or ``loopback``
    (plain HTTP from a loopback address, for local development). Any other value refuses,
    so a typo fails closed. A key sent in the clear is already exposed, so it is refused
    before anything looks at it (S3 refuses SSE-C over HTTP outright).
    """
    if secure or not (sent(headers) or sent(headers, COPY_SOURCE_HEADERS)):
        return
    if mode == "always" or (mode == "loopback" and _is_loopback(remote)):
        return
    raise errors.InsecureSseCustomerRequest()


def _is_loopback(remote: str) -> bool:
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass(frozen=True)
class Encryption:
    """An object's (or upload's) SSE-C parameters, stored as JSON text; never the key."""

    key_md5: str
    salt: bytes
    check: bytes = field(repr=False)
    chunk_size: int = CHUNK_SIZE
    algorithm: str = ALGORITHM

    @classmethod
    def create(cls, key: CustomerKey) -> Encryption:
        """Fresh parameters (a new random salt) for a new object or upload."""
        salt = os.urandom(SALT_SIZE)
        return cls(key.md5, salt, _check_value(key.key, salt))

    def matches(self, key: CustomerKey) -> bool:
        """Whether ``key`` is the one these parameters were made with (constant time)."""
        return hmac.compare_digest(_check_value(key.key, self.salt), self.check)

    def cipher(self, key: CustomerKey) -> ObjectCipher:
        """The blob cipher for ``key`` (which must match)."""
        return ObjectCipher(key.key, self.salt, self.chunk_size)

    def response_headers(self) -> dict[str, str]:
        """The headers S3 answers a read of the object with."""
        return {ALGORITHM_HEADER: self.algorithm, KEY_MD5_HEADER: self.key_md5}

    def to_json(self) -> str:
        """The text stored as ``ObjectRecord.sse`` / ``Upload.sse``."""
        return json.dumps({"algorithm": self.algorithm, "key_md5": self.key_md5,
                           "salt": _b64(self.salt), "check": _b64(self.check),
                           "chunk_size": self.chunk_size}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Encryption:
        """Parameters from their stored text."""
        data = json.loads(text)
        return cls(key_md5=data["key_md5"], salt=base64.b64decode(data["salt"]),
                   check=base64.b64decode(data["check"]), chunk_size=int(data["chunk_size"]),
                   algorithm=data["algorithm"])


@dataclass(frozen=True)
class Sealing:
    """An object's SSE-C parameters with the cipher the request's key gives for them."""

    encryption: Encryption
    cipher: ObjectCipher

    @classmethod
    def new(cls, key: CustomerKey | None) -> Sealing | None:
        """Fresh parameters for a new object or upload sealed with ``key``; ``None`` for
        no key (plaintext)."""
        if key is None:
            return None
        encryption = Encryption.create(key)
        return cls(encryption, encryption.cipher(key))


def _check_value(key: bytes, salt: bytes) -> bytes:
    return hkdf(key, salt, _CHECK_INFO)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def open_object(stored: str, key: CustomerKey | None) -> Sealing | None:
    """Decide a read of an object (GET, HEAD, a copy's source) whose ``sse`` text is
    ``stored``: ``None`` for a plaintext object read without a key, else its parameters and
    cipher.

    ``SseCustomerKeyRequired`` (400) when an SSE-C object is read without its key,
    ``SseCustomerKeyNotApplicable`` (400) when a plaintext one is read with one,
    ``SseCustomerKeyIncorrect`` (403 AccessDenied) for a wrong key.
    """
    if not stored:
        if key is not None:
            raise errors.SseCustomerKeyNotApplicable()
        return None
    if key is None:
        raise errors.SseCustomerKeyRequired()
    encryption = Encryption.from_json(stored)
    if not encryption.matches(key):
        raise errors.SseCustomerKeyIncorrect()
    return Sealing(encryption, encryption.cipher(key))


def open_upload(stored: str, key: CustomerKey | None) -> ObjectCipher | None:
    """Decide a part written to an upload whose ``sse`` text is ``stored`` (UploadPart,
    UploadPartCopy): the cipher for its blob, ``None`` for a plaintext upload.

    Parts must carry exactly the upload's key: none or one where the upload has the other
    is ``SseMultipartEncrypted``, another key ``SseCustomerParametersMismatch`` (both 400).
    """
    if not stored and key is None:
        return None
    if not stored or key is None:
        raise errors.SseMultipartEncrypted()
    encryption = Encryption.from_json(stored)
    if not encryption.matches(key):
        raise errors.SseCustomerParametersMismatch()
    return encryption.cipher(key)
