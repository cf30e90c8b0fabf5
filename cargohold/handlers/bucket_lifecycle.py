"""Bucket lifecycle configuration: put, get and delete.

The document is parsed, validated and rendered by :mod:`cargohold.lifecycle`; the store keeps
its JSON form in the bucket's ``lifecycle`` column. Not :func:`bucket_config.document_handlers`:
S3 names the delete ``DeleteBucketLifecycle``, not ``DeleteBucketLifecycleConfiguration``.
"""

from __future__ import annotations

from cargohold import errors
from cargohold.handlers.context import Context, Handler, Reply
from cargohold.handlers.intake import read_small_body
from cargohold.lifecycle import MAX_DOCUMENT_SIZE, LifecycleConfig


async def put_bucket_lifecycle_configuration(ctx: Context) -> Reply:
    """Replace the bucket's lifecycle rules; a refused document leaves the old ones."""
    bucket = ctx.require_bucket()
    body = await read_small_body(ctx, MAX_DOCUMENT_SIZE)  # Content-MD5 / checksums checked
    config = LifecycleConfig.parse(body, MAX_DOCUMENT_SIZE)  # raises S3's validation errors
    await ctx.services.store.set_bucket_lifecycle(bucket.name, config.to_json())
    return Reply()


async def get_bucket_lifecycle_configuration(ctx: Context) -> Reply:
    """The rules as put (generated IDs filled in); ``NoSuchLifecycleConfiguration`` if none."""
    bucket = ctx.require_bucket()
    if bucket.lifecycle is None:
        raise errors.NoSuchLifecycleConfiguration(BucketName=bucket.name)
    return Reply(body=LifecycleConfig.from_json(bucket.lifecycle).to_xml(),
                 headers={"Content-Type": "application/xml"})


async def delete_bucket_lifecycle(ctx: Context) -> Reply:
    """Remove the rules (204 whether or not there were any, as S3 answers)."""
    bucket = ctx.require_bucket()
    await ctx.services.store.set_bucket_lifecycle(bucket.name, None)
    return Reply(status=204)


HANDLERS: dict[str, Handler] = {
    "PutBucketLifecycleConfiguration": put_bucket_lifecycle_configuration,
    "GetBucketLifecycleConfiguration": get_bucket_lifecycle_configuration,
    "DeleteBucketLifecycle": delete_bucket_lifecycle,
}
