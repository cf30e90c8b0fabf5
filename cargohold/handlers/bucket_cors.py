"""Bucket CORS configuration: put, get, delete.

Validation and matching live in :mod:`cargohold.cors`; the dispatcher answers preflight
``OPTIONS`` requests and adds CORS headers to actual responses from the stored rules.
"""

from __future__ import annotations

from cargohold import errors
from cargohold.cors import MAX_DOCUMENT_SIZE, CorsConfig
from cargohold.handlers.context import Context, Handler, Reply
from cargohold.handlers.intake import read_small_body


async def put_bucket_cors(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    body = await read_small_body(ctx, MAX_DOCUMENT_SIZE)
    config = CorsConfig.parse(body, MAX_DOCUMENT_SIZE)
    await ctx.services.store.set_bucket_cors(bucket.name, config.to_json())
    return Reply()


async def get_bucket_cors(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    if bucket.cors is None:
        raise errors.NoSuchCORSConfiguration(BucketName=bucket.name)
    return Reply(body=CorsConfig.from_json(bucket.cors).to_xml(),
                 headers={"Content-Type": "application/xml"})


async def delete_bucket_cors(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    await ctx.services.store.set_bucket_cors(bucket.name, None)
    return Reply(status=204)


HANDLERS: dict[str, Handler] = {
    "PutBucketCors": put_bucket_cors,
    "GetBucketCors": get_bucket_cors,
    "DeleteBucketCors": delete_bucket_cors,
}
