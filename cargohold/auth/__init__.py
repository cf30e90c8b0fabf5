"""Authentication: who is asking, verified byte-exactly against the raw request.

Public surface (the HTTP layer uses only these):

* :class:`SignedRequest` — the raw request parts a signature covers.
* :func:`authenticate` — verifies SigV4 (header / presigned), SigV2 (header / presigned) or
  accepts an anonymous request; returns an :class:`AuthResult` or raises an ``S3Error``.
* :class:`PayloadReader` — decodes and verifies the body (plain with SHA-256, unsigned,
  aws-chunked with chunk signatures, with or without trailers) while streaming it.
"""

from cargohold.auth.model import AuthResult, KeyLookup, PayloadMode, Principal, SignedRequest
from cargohold.auth.payload import PayloadReader
from cargohold.auth.verify import authenticate

__all__ = [
    "AuthResult",
    "KeyLookup",
    "PayloadMode",
    "PayloadReader",
    "Principal",
    "SignedRequest",
    "authenticate",
]
