"""Who may do what.

For now the rule is ownership: an authenticated account may do anything to the buckets it
owns (and create buckets); anonymous requests and other accounts' buckets are refused.
Key grants, ACLs and bucket policies plug in here, keyed on each operation's access class.
"""

from __future__ import annotations

from cargohold import errors
from cargohold.auth.model import Principal
from cargohold.operations import Access, Operation
from cargohold.store.base import Bucket


def authorize(principal: Principal, operation: Operation, bucket: Bucket | None) -> None:
    """Raise ``AccessDenied`` unless ``principal`` may run ``operation`` on ``bucket``."""
    if principal.is_anonymous:
        raise errors.AccessDenied()
    if operation.access is Access.SERVICE or bucket is None:
        return
    if bucket.owner_id != principal.account_id:
        raise errors.AccessDenied()
