"""Bucket access logging configuration: put and get.

The document is parsed by :mod:`cargohold.accesslog`; the dispatcher records every request
to a logged bucket and :mod:`cargohold.logdelivery` writes the records into the target.
"""

from __future__ import annotations

from cargohold import accesslog, errors
from cargohold.accesslog import MAX_DOCUMENT_SIZE, LoggingConfig
from cargohold.handlers.context import Context, Handler, Reply
from cargohold.handlers.intake import read_small_body

# A limited key may send logs only into a bucket it could write objects into itself.
_WRITE_GRANTS = frozenset({"readwrite", "fullaccess"})


async def put_bucket_logging(ctx: Context) -> Reply:
    """Turn logging on (``LoggingEnabled``) or off (an empty ``BucketLoggingStatus``)."""
    bucket = ctx.require_bucket()
    body = await read_small_body(ctx, MAX_DOCUMENT_SIZE)
    config = LoggingConfig.parse(body)
    if config is None:
        await ctx.services.store.set_bucket_logging(bucket.name, None)
        return Reply()
    name = config.target_bucket
    target = await ctx.services.store.get_bucket(name)
    if target is None:
        raise errors.InvalidTargetBucketForLogging(accesslog.TARGET_MISSING, TargetBucket=name)
    if target.name == bucket.name:
        # Spaces' rule: a bucket cannot log into itself (each log file would be logged).
        raise errors.InvalidTargetBucketForLogging(accesslog.TARGET_IS_SOURCE,
                                                   TargetBucket=name)
    if target.owner_id != bucket.owner_id:
        raise errors.InvalidTargetBucketForLogging(accesslog.OWNER_DIFFERS, TargetBucket=name)
    grants = ctx.principal.grants
    if grants is not None and grants.get(target.name) not in _WRITE_GRANTS:
        raise errors.AccessDenied()
    await ctx.services.store.set_bucket_logging(bucket.name, config.to_text())
    return Reply()


async def get_bucket_logging(ctx: Context) -> Reply:
    """The configuration, or an empty ``BucketLoggingStatus`` when logging is off."""
    bucket = ctx.require_bucket()
    config = accesslog.stored_config(bucket.logging) if bucket.logging is not None else None
    return Reply(body=accesslog.render(config), headers={"Content-Type": "application/xml"})


HANDLERS: dict[str, Handler] = {
    "PutBucketLogging": put_bucket_logging,
    "GetBucketLogging": get_bucket_logging,
}
