"""ACLs: GetBucketAcl, PutBucketAcl, GetObjectAcl, PutObjectAcl, and the ACL a write sets.

The model (canned ACLs, grant headers, AccessControlPolicy XML) lives in
:mod:`cargohold.acl`; ACLs are stored as its compact text, ``""`` meaning private, so the
common case costs nothing. Objects belong to their bucket's owner, so an object ACL's owner
is the bucket owner.
"""

from __future__ import annotations

from cargohold import acl
from cargohold.handlers.context import (
    Context,
    Handler,
    Reply,
    load_current_object,
    requested_version,
)
from cargohold.handlers.intake import read_small_body
from cargohold.store.base import Account


class _Accounts:
    """Account lookups the ACL parser needs synchronously (emails and known ids)."""

    def __init__(self, accounts: list[Account]) -> None:
        self.by_email = {a.email.lower(): a.canonical_id for a in accounts if a.email}
        self.ids = {a.canonical_id for a in accounts}
        self.names = {a.canonical_id: a.display_name for a in accounts}

    def resolve_email(self, email: str) -> str | None:
        return self.by_email.get(email.strip().lower())

    def known(self, canonical_id: str) -> bool:
        return canonical_id in self.ids


async def _accounts(ctx: Context) -> _Accounts:
    return _Accounts(await ctx.services.store.list_accounts())


def stored(value: acl.Acl) -> str:
    """The stored text of an ACL: ``""`` for plain private."""
    return "" if value == acl.private(value.owner_id) else value.to_json()


_GRANT_HEADER_NAMES = tuple(name for name, _ in acl.GRANT_HEADERS)


async def acl_from_headers(ctx: Context, owner_id: str) -> str:
    """The stored ACL a write's ``x-amz-acl`` / ``x-amz-grant-*`` headers ask for (``""``,
    private, when there are none)."""
    headers = ctx.headers
    grants = any(name in headers for name in _GRANT_HEADER_NAMES)
    if not grants:
        # A canned ACL (or none: an empty header counts as absent, as in acl.from_headers)
        # needs no account lookups.
        canned = headers.get("x-amz-acl", "").strip()
        return stored(acl.canned(canned, owner_id)) if canned else ""
    accounts = await _accounts(ctx)
    parsed = acl.from_headers(headers, owner_id, accounts.resolve_email,
                              known_id=accounts.known)
    return "" if parsed is None else stored(parsed)


def _current(text: str, owner_id: str) -> acl.Acl:
    return acl.Acl.from_json(text) if text else acl.private(owner_id)


async def _render(ctx: Context, value: acl.Acl) -> Reply:
    accounts = await _accounts(ctx)
    return Reply(body=value.to_xml(accounts.names), headers={"Content-Type": "application/xml"})


async def _new_acl(ctx: Context, owner_id: str) -> acl.Acl:
    body = await read_small_body(ctx, acl.MAX_DOCUMENT_SIZE)
    accounts = await _accounts(ctx)
    return acl.from_request(ctx.headers, body, owner_id, accounts.resolve_email,
                            acl.MAX_DOCUMENT_SIZE, known_id=accounts.known)


async def get_bucket_acl(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    return await _render(ctx, _current(bucket.acl, bucket.owner_id))


async def put_bucket_acl(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    new = await _new_acl(ctx, bucket.owner_id)
    await ctx.services.store.set_bucket_acl(bucket.name, stored(new))
    return Reply()


async def get_object_acl(ctx: Context) -> Reply:
    record = await load_current_object(ctx)
    return await _render(ctx, _current(record.acl, ctx.require_bucket().owner_id))


async def put_object_acl(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    key = ctx.require_key()
    version_id = requested_version(ctx)
    new = await _new_acl(ctx, bucket.owner_id)
    await ctx.services.store.set_object_acl(bucket.name, key, stored(new), version_id)
    return Reply()


HANDLERS: dict[str, Handler] = {
    "GetBucketAcl": get_bucket_acl,
    "PutBucketAcl": put_bucket_acl,
    "GetObjectAcl": get_object_acl,
    "PutObjectAcl": put_object_acl,
}
