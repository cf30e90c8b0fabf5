"""The request facts bucket-policy conditions test (``aws:SourceIp``, ``s3:prefix`` ...).

Built only for buckets that have a policy, from what arrived on the wire; keys are lower
case, each maps to the list of its values (absent keys are simply missing).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from aiohttp import web

from cargohold import xmlutil
from cargohold.auth.model import Principal

# Query parameters that S3 exposes as condition keys.
_QUERY_KEYS = {"prefix": "s3:prefix", "delimiter": "s3:delimiter",
               "max-keys": "s3:max-keys", "versionId": "s3:versionid"}
_HEADER_KEYS = {"Referer": "aws:referer", "User-Agent": "aws:useragent",
                "x-amz-acl": "s3:x-amz-acl",
                "x-amz-server-side-encryption-customer-algorithm":
                    "s3:x-amz-server-side-encryption-customer-algorithm"}


def condition_context(request: web.BaseRequest, principal: Principal,
                      headers: Mapping[str, str] | None = None) -> Mapping[str, Sequence[str]]:
    """The condition keys of ``request`` as policy evaluation wants them; ``headers`` are
    the ones the request is served with when they are not just the wire's (a presigned
    URL's ``x-amz-*`` query parameters count as headers)."""
    if headers is None:
        headers = request.headers
    now = time.time()
    context: dict[str, Sequence[str]] = {
        "aws:sourceip": [request.remote or ""],
        "aws:securetransport": ["true" if request.secure else "false"],
        "aws:currenttime": [xmlutil.iso_time(now)],
        "aws:epochtime": [str(int(now))],
        "aws:principaltype": ["Anonymous" if principal.is_anonymous else "Account"],
    }
    for name, key in _HEADER_KEYS.items():
        value = headers.get(name)
        if value is not None:
            context[key] = [value]
    for name, key in _QUERY_KEYS.items():
        value = request.query.get(name)
        if value is not None:
            context[key] = [value]
    return context
