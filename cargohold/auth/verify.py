"""Entry point of request authentication: pick the scheme, verify it, describe the payload.

Schemes: SigV4 ``Authorization`` header, SigV4 presigned query, SigV2 header, SigV2
presigned query, or none (anonymous; the caller decides whether that is allowed).
"""

from __future__ import annotations

import time

from cargohold import errors
from cargohold.auth import canonical, sigv2, sigv4
from cargohold.auth.model import ANONYMOUS, AuthResult, KeyLookup, PayloadMode, SignedRequest

_V4_QUERY = frozenset({"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature"})
_V2_QUERY = frozenset({"AWSAccessKeyId", "Signature"})


async def authenticate(req: SignedRequest, lookup: KeyLookup, *, now: float | None = None,
                       max_skew: float = 900.0) -> AuthResult:
    """Verify the request's signature and return who signed it and how the body is framed.

    ``now`` (unix time) defaults to the current time; ``max_skew`` bounds the difference
    between the request's date and ``now`` (seconds). Raises an ``S3Error`` subclass:
    ``AuthorizationHeaderMalformed``, ``AuthorizationQueryParametersError``,
    ``MissingSecurityHeader``, ``InvalidArgument``, ``InvalidAccessKeyId``,
    ``SignatureDoesNotMatch``, ``RequestTimeTooSkewed`` or ``AccessDenied``.
    """
    if now is None:
        now = time.time()
    params = canonical.parse_query(req.raw_query)
    names = {p.name for p in params} if params else set()
    v4_query = not _V4_QUERY.isdisjoint(names)
    v2_query = not _V2_QUERY.isdisjoint(names)
    authorization = req.headers.get("Authorization")
    if (authorization is not None) + v4_query + v2_query > 1:
        raise errors.InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be "
            "specified", ArgumentName="Authorization")
    if authorization is not None:
        if authorization.startswith(sigv4.ALGORITHM):
            return await sigv4.verify_header(req, authorization, params, lookup, now, max_skew)
        if authorization.startswith("AWS "):
            return await sigv2.verify_header(req, authorization, params, lookup, now, max_skew)
        raise errors.InvalidArgument("Unsupported Authorization Type",
                                     ArgumentName="Authorization",
                                     ArgumentValue=authorization.split(" ", 1)[0])
    if v4_query:
        return await sigv4.verify_presigned(req, params, lookup, now, max_skew)
    if v2_query:
        return await sigv2.verify_presigned(req, params, lookup, now)
    mode, digest = canonical.payload_mode(req.headers.get("x-amz-content-sha256"))
    if mode in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER):
        # Chunk signatures chain from a seed signature an anonymous request does not have.
        raise errors.InvalidRequest("Signed aws-chunked payloads require an authenticated "
                                    "Signature Version 4 request.")
    return AuthResult(principal=ANONYMOUS, payload_mode=mode, payload_sha256=digest)
