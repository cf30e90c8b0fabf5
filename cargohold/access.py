"""Who may do what: key grants, bucket policies, ownership and ACLs, combined as S3 does.

The decision for one request, in order:

1. A limited access key (Spaces' bucket-scoped keys) reaches only its granted buckets, each
   with ``read``, ``readwrite`` or ``fullaccess``; every operation declares its access
   class, so this is one lookup. It narrows whatever the account may do.
2. An explicit ``Deny`` in the bucket policy refuses, even the owner (except that the owner
   can always manage the policy itself, so a policy cannot lock its bucket for good).
3. The bucket owner may do anything. Objects belong to their bucket's owner (S3's
   "bucket owner enforced" ownership), so this covers every object in the bucket.
4. A policy ``Allow`` grants.
5. An ACL grant grants: the bucket's ACL for bucket reads and for writes (S3's WRITE on a
   bucket means creating, overwriting and deleting objects), the object's ACL for reading
   an object and its ACL. The object's ACL is read only when it is needed, so requests by
   the owner never pay for it.
6. Everything else is ``AccessDenied``, anonymous requests included.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

from cargohold import acl as acls
from cargohold import errors
from cargohold.acl import Permission
from cargohold.auth.model import Principal
from cargohold.operations import Access, Operation
from cargohold.policy import ACTIONS, VERSIONED_ACTIONS, BucketPolicy, Decision, RequestFacts
from cargohold.store.base import Bucket, ObjectRecord

# The access classes each Spaces key permission covers on its bucket.
GRANT_COVERS: Final[dict[str, frozenset[Access]]] = {
    "read": frozenset({Access.READ}),
    "readwrite": frozenset({Access.READ, Access.WRITE}),
    "fullaccess": frozenset({Access.READ, Access.WRITE, Access.OWNER}),
}

# What an ACL must grant for an operation, and on what: S3's ACL permission table.
_BUCKET, _OBJECT = "bucket", "object"
ACL_NEEDS: Final[dict[str, tuple[str, Permission]]] = {
    "ListObjects": (_BUCKET, Permission.READ),
    "ListObjectsV2": (_BUCKET, Permission.READ),
    "ListObjectVersions": (_BUCKET, Permission.READ),
    "ListMultipartUploads": (_BUCKET, Permission.READ),
    "HeadBucket": (_BUCKET, Permission.READ),
    "GetBucketLocation": (_BUCKET, Permission.READ),
    "PutObject": (_BUCKET, Permission.WRITE),
    "CopyObject": (_BUCKET, Permission.WRITE),
    "PostObject": (_BUCKET, Permission.WRITE),
    "DeleteObject": (_BUCKET, Permission.WRITE),
    "DeleteObjects": (_BUCKET, Permission.WRITE),
    "CreateMultipartUpload": (_BUCKET, Permission.WRITE),
    "UploadPart": (_BUCKET, Permission.WRITE),
    "UploadPartCopy": (_BUCKET, Permission.WRITE),
    "CompleteMultipartUpload": (_BUCKET, Permission.WRITE),
    "AbortMultipartUpload": (_BUCKET, Permission.WRITE),
    "ListParts": (_BUCKET, Permission.WRITE),
    "GetBucketAcl": (_BUCKET, Permission.READ_ACP),
    "PutBucketAcl": (_BUCKET, Permission.WRITE_ACP),
    "GetObject": (_OBJECT, Permission.READ),
    "HeadObject": (_OBJECT, Permission.READ),
    "GetObjectAcl": (_OBJECT, Permission.READ_ACP),
    "PutObjectAcl": (_OBJECT, Permission.WRITE_ACP),
}
# Only the owner may manage the policy, and it always may, whatever the policy says.
_POLICY_OPERATIONS: Final = frozenset({"GetBucketPolicy", "PutBucketPolicy",
                                       "DeleteBucketPolicy"})

ConditionContext = Callable[[], Mapping[str, Sequence[str]]]
"""Builds the policy condition keys of the request (called only when a policy exists)."""
ObjectLoader = Callable[[], Awaitable[ObjectRecord | None]]
"""Loads the target object (``None`` when there is none); called only when its ACL or tags
are needed, at most once."""
_TAG_KEY = "s3:existingobjecttag/"


@functools.lru_cache(maxsize=512)
def _tests_object_tags(document: str) -> bool:
    return _TAG_KEY in document.lower()


@functools.lru_cache(maxsize=512)
def parsed_policy(document: str, bucket: str) -> BucketPolicy:
    """A stored policy, parsed once per worker (parsing takes ~1 ms, evaluating ~10 µs)."""
    return BucketPolicy.parse(document.encode(), bucket)


async def authorize(
    principal: Principal,
    operation: Operation,
    bucket: Bucket | None,
    key: str | None = None,
    context: ConditionContext | None = None,
    target: ObjectLoader | None = None,
    versioned: bool = False,
) -> None:
    """Raise ``AccessDenied`` unless ``principal`` may run ``operation`` on ``bucket`` (and
    ``key``); see the module docstring for the order of the rules. ``versioned``: the
    request names a version (``versionId``), so a policy is asked about the version action
    (``s3:GetObjectVersion`` for GetObject, and so on), as S3 does."""
    if principal.grants is not None:
        check_key_grant(principal.grants, operation, bucket)
    if operation.access is Access.SERVICE:
        if principal.is_anonymous:
            raise errors.AccessDenied()
        return
    if bucket is None:
        # Only anonymous requests get here (a signed one gets NoSuchBucket first).
        raise errors.AccessDenied()
    owner = principal.account_id is not None and principal.account_id == bucket.owner_id
    if operation.name in _POLICY_OPERATIONS and not owner:
        raise errors.AccessDenied()  # only the bucket owner manages its policy (as S3)
    decision = Decision.NONE
    if bucket.policy is not None:
        decision = await _policy_decision(principal, operation, bucket, key, context, target,
                                          versioned)
        if decision is Decision.DENY and not (owner and operation.name in _POLICY_OPERATIONS):
            raise errors.AccessDenied()
    if owner or decision is Decision.ALLOW:
        return
    needs = ACL_NEEDS.get(operation.name)
    if needs is not None:
        on, permission = needs
        if on == _BUCKET:
            text: str | None = bucket.acl
        else:
            record = await target() if target is not None else None
            text = record.acl if record is not None else None
        if text and acls.Acl.from_json(text).allows(principal.account_id, permission):
            return
    raise errors.AccessDenied()


async def _policy_decision(principal: Principal, operation: Operation, bucket: Bucket,
                           key: str | None, context: ConditionContext | None,
                           target: ObjectLoader | None, versioned: bool) -> Decision:
    assert bucket.policy is not None
    action = (VERSIONED_ACTIONS.get(operation.name) if versioned else None) or ACTIONS.get(
        operation.name)
    if action is None:
        return Decision.NONE
    resource = f"arn:aws:s3:::{bucket.name}" + (f"/{key}" if key is not None else "")
    keys = dict(context()) if context is not None else {}
    if target is not None and _tests_object_tags(bucket.policy):
        # s3:ExistingObjectTag/<key>: the tags of the object the request is about.
        record = await target()
        for name, value in (record.tags if record is not None else {}).items():
            keys[_TAG_KEY + name.lower()] = [value]
    facts = RequestFacts(
        action=action, resource=resource,
        principal_ids=frozenset({principal.account_id}) if principal.account_id else frozenset(),
        anonymous=principal.is_anonymous, context=keys,
    )
    return parsed_policy(bucket.policy, bucket.name).evaluate(facts)


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
