"""Who may do what.

Today's rules: an authenticated account may do anything to the buckets it owns (and create
buckets); anonymous requests and other accounts' buckets are refused. A limited access key
(Spaces' bucket-scoped keys) narrows that further to the buckets it is granted, each with
``read``, ``readwrite`` or ``fullaccess``; since every operation declares its access class,
a grant check is one lookup. ACLs and bucket policies plug in here.
"""

from __future__ import annotations

from collections.abc import Mapping

from cargohold import errors
from cargohold.auth.model import Principal
from cargohold.operations import Access, Operation
from cargohold.store.base import Bucket

# The access classes each Spaces key permission covers on its bucket.
GRANT_COVERS: dict[str, frozenset[Access]] = {
    "read": frozenset({Access.READ}),
    "readwrite": frozenset({Access.READ, Access.WRITE}),
    "fullaccess": frozenset({Access.READ, Access.WRITE, Access.OWNER}),
}


def authorize(principal: Principal, operation: Operation, bucket: Bucket | None) -> None:
    """Raise ``AccessDenied`` unless ``principal`` may run ``operation`` on ``bucket``."""
    if principal.is_anonymous:
        raise errors.AccessDenied()
    if principal.grants is not None:
        check_key_grant(principal.grants, operation, bucket)
    if operation.access is Access.SERVICE or bucket is None:
        return
    if bucket.owner_id != principal.account_id:
        raise errors.AccessDenied()


def check_key_grant(grants: Mapping[str, str], operation: Operation,
                    bucket: Bucket | None) -> None:
    """A limited key reaches only its granted buckets, within each grant's permission."""
    if operation.access is Access.SERVICE:
        if operation.name == "ListBuckets":
            return  # the handler shows only the granted buckets
        raise errors.AccessDenied("This access key is limited to specific buckets and cannot "
                                  "create buckets.")
    permission = grants.get(bucket.name) if bucket is not None else None
    if permission is None or operation.access not in GRANT_COVERS.get(permission, ()):
        raise errors.AccessDenied()
