"""Content integrity: MD5 (ETag, Content-MD5) and S3's flexible checksums.

CRC32, CRC32C and CRC64NVME come from ``awscrt`` (AWS's own native implementation, the
same one the SDKs use); SHA1/SHA256/MD5 from ``hashlib``. All hashers here are fed from a
worker thread by the blob writer, so their cost never lands on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Protocol

from awscrt import checksums as crt

from cargohold import errors

ALGORITHMS = ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME")
_DIGEST_SIZES = {"CRC32": 4, "CRC32C": 4, "SHA1": 20, "SHA256": 32, "CRC64NVME": 8}


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc:
    """A running CRC with the hashlib-like interface."""

    def __init__(self, algorithm: str) -> None:
        self._fn = {"CRC32": crt.crc32, "CRC32C": crt.crc32c, "CRC64NVME": crt.crc64nvme}[
            algorithm
        ]
        self._width = 8 if algorithm == "CRC64NVME" else 4
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


def new_hasher(algorithm: str) -> Hasher:
    """A hasher for one of :data:`ALGORITHMS` (upper case)."""
    if algorithm == "SHA1":
        return hashlib.sha1(usedforsecurity=False)
    if algorithm == "SHA256":
        return hashlib.sha256()
    return _Crc(algorithm)


def header_name(algorithm: str) -> str:
    return "x-amz-checksum-" + algorithm.lower()


def to_b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def parse_content_md5(value: str) -> bytes:
    """Decode a Content-MD5 header; ``InvalidDigest`` unless it is base64 of 16 bytes."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.InvalidDigest() from exc
    if len(raw) != 16:
        raise errors.InvalidDigest()
    return raw


def validate_checksum_value(algorithm: str, value: str) -> None:
    """``InvalidRequest`` unless value is base64 of the algorithm's digest size."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.InvalidRequest(
            f"Value for {header_name(algorithm)} header is invalid.") from exc
    if len(raw) != _DIGEST_SIZES[algorithm]:
        raise errors.InvalidRequest(f"Value for {header_name(algorithm)} header is invalid.")


class ChecksumPlan:
    """Which checksums a write must compute and which values it must match.

    Built from the request headers before the body is read; ``expected`` values that arrive
    in an aws-chunked trailer are added with :meth:`add_trailer` after the body.
    """

    def __init__(self, headers: Mapping[str, str], trailer_names: list[str],
                 also_compute: str = "") -> None:
        self.expected: dict[str, str] = {}
        self.algorithms: list[str] = []
        self.trailer_algorithms: list[str] = []
        for algorithm in ALGORITHMS:
            value = headers.get(header_name(algorithm))
            if value is not None:
                validate_checksum_value(algorithm, value)
                self.expected[algorithm] = value.strip()
                self.algorithms.append(algorithm)
        for name in trailer_names:
            name = name.strip().lower()
            if not name:
                continue
            if not name.startswith("x-amz-checksum-"):
                raise errors.InvalidRequest(f"Unsupported trailer header: {name}")
            algorithm = name[len("x-amz-checksum-"):].upper()
            if algorithm not in ALGORITHMS:
                raise errors.InvalidRequest(f"Unsupported checksum algorithm: {name}")
            if algorithm not in self.algorithms:
                self.algorithms.append(algorithm)
            self.trailer_algorithms.append(algorithm)
        if len(self.expected) + len(
            [a for a in self.trailer_algorithms if a not in self.expected]
        ) > 1:
            raise errors.InvalidRequest("Expecting a single x-amz-checksum- header. "
                                        "Multiple checksum Types are not allowed.")
        declared = headers.get("x-amz-sdk-checksum-algorithm")
        if declared is not None:
            declared = declared.strip().upper()
            if declared not in ALGORITHMS:
                raise errors.InvalidRequest(
                    "Checksum algorithm provided is unsupported. Please try again with any of "
                    "the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
            if declared not in self.algorithms:
                # Declared but no value yet: compute it so it can be stored and returned.
                self.algorithms.append(declared)
        if also_compute and also_compute not in self.algorithms:
            self.algorithms.append(also_compute)
        self.hashers: dict[str, Hasher] = {a: new_hasher(a) for a in self.algorithms}

    def add_trailer(self, trailers: Mapping[str, str]) -> None:
        """Record the checksum values that arrived in the trailer."""
        for algorithm in self.trailer_algorithms:
            value = trailers.get(header_name(algorithm))
            if value is None:
                raise errors.InvalidRequest(
                    f"The trailer {header_name(algorithm)} was declared but not sent.")
            validate_checksum_value(algorithm, value)
            self.expected[algorithm] = value.strip()

    def verify(self) -> dict[str, str]:
        """Check every expected value; return all computed checksums (base64)."""
        computed = {a: to_b64(h.digest()) for a, h in self.hashers.items()}
        for algorithm, value in self.expected.items():
            if computed[algorithm] != value:
                raise errors.BadDigest(
                    f"The {algorithm} you specified did not match the calculated checksum.")
        return computed
