"""Bucket policies: put, get, delete, and the policy status (is it public?).

The document is validated and compiled by :mod:`cargohold.policy` when it is put, stored as
sent, and evaluated by the access check on every request to the bucket.
"""

from __future__ import annotations

from cargohold import errors, xmlutil
from cargohold.access import parsed_policy
from cargohold.handlers.context import Context, Handler, Reply
from cargohold.handlers.intake import read_small_body
from cargohold.policy import MAX_POLICY_SIZE

# Read a little past the limit so pretty-printed documents can be measured compactly.
_READ_LIMIT = 10 * MAX_POLICY_SIZE


async def put_bucket_policy(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    try:
        body = await read_small_body(ctx, _READ_LIMIT)
    except errors.MalformedXML:
        raise errors.MalformedPolicy("Policies must be less than 20 KB") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.MalformedPolicy("Policies must be valid UTF-8 JSON") from None
    # Validates (MalformedPolicy with the reason) and leaves the compiled policy in the
    # cache the access check reads, so the next request does not parse it again.
    parsed_policy(text, bucket.name)
    await ctx.services.store.set_bucket_policy(bucket.name, text)
    return Reply(status=204)


async def get_bucket_policy(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    if bucket.policy is None:
        raise errors.NoSuchBucketPolicy(BucketName=bucket.name)
    return Reply(body=bucket.policy.encode(), headers={"Content-Type": "application/json"})


async def delete_bucket_policy(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    await ctx.services.store.set_bucket_policy(bucket.name, None)
    return Reply(status=204)


async def get_bucket_policy_status(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    if bucket.policy is None:
        raise errors.NoSuchBucketPolicy(BucketName=bucket.name)
    public = parsed_policy(bucket.policy, bucket.name).grants_public_access()
    body = xmlutil.document("PolicyStatus",
                            [f"<IsPublic>{'true' if public else 'false'}</IsPublic>"])
    return Reply(body=body, headers={"Content-Type": "application/xml"})


HANDLERS: dict[str, Handler] = {
    "PutBucketPolicy": put_bucket_policy,
    "GetBucketPolicy": get_bucket_policy,
    "DeleteBucketPolicy": delete_bucket_policy,
    "GetBucketPolicyStatus": get_bucket_policy_status,
}
