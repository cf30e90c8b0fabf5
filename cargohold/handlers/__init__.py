"""One handler per S3 operation, grouped by resource; :data:`HANDLERS` maps names to them."""

from __future__ import annotations

from cargohold.handlers import (
    acls,
    bucket_config,
    bucket_logging,
    bucket_policy,
    bucket_versioning,
    buckets,
    copy,
    listing,
    multipart,
    objects,
    post_object,
    tagging,
)
from cargohold.handlers.context import Handler

HANDLERS: dict[str, Handler] = {
    **buckets.HANDLERS,
    **objects.HANDLERS,
    **listing.HANDLERS,
    **multipart.HANDLERS,
    **tagging.HANDLERS,
    **copy.HANDLERS,
    **bucket_policy.HANDLERS,
    **bucket_versioning.HANDLERS,
    **bucket_config.HANDLERS,
    **bucket_logging.HANDLERS,
    **acls.HANDLERS,
    **post_object.HANDLERS,
}

__all__ = ["HANDLERS", "Handler"]
