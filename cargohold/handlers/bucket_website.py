"""Bucket website configuration: put, get, delete.

Validation and the routing decisions live in :mod:`cargohold.website`; the website endpoint
(``<bucket>.<region>-static.<domain>``, :mod:`cargohold.http.website`) serves the site.
"""

from __future__ import annotations

from cargohold import errors
from cargohold.handlers.context import Context, Handler, Reply
from cargohold.handlers.intake import read_small_body
from cargohold.website import MAX_DOCUMENT_SIZE, WebsiteConfig


async def put_bucket_website(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    body = await read_small_body(ctx, MAX_DOCUMENT_SIZE)
    config = WebsiteConfig.parse(body, MAX_DOCUMENT_SIZE)
    await ctx.services.store.set_bucket_website(bucket.name, config.to_json())
    return Reply()


async def get_bucket_website(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    if bucket.website is None:
        raise errors.NoSuchWebsiteConfiguration(BucketName=bucket.name)
    return Reply(body=WebsiteConfig.from_json(bucket.website).to_xml(),
                 headers={"Content-Type": "application/xml"})


async def delete_bucket_website(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    await ctx.services.store.set_bucket_website(bucket.name, None)
    return Reply(status=204)


HANDLERS: dict[str, Handler] = {
    "PutBucketWebsite": put_bucket_website,
    "GetBucketWebsite": get_bucket_website,
    "DeleteBucketWebsite": delete_bucket_website,
}
