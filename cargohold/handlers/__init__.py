"""One handler per S3 operation, grouped by resource; :data:`HANDLERS` maps names to them."""

from __future__ import annotations

from cargohold.handlers import (
    acls,
    bucket_cors,
    bucket_logging,
    bucket_policy,
    bucket_website,
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
    **bucket_cors.HANDLERS,
    **bucket_logging.HANDLERS,
    **bucket_website.HANDLERS,
    **acls.HANDLERS,
    **post_object.HANDLERS,
}

__all__ = ["HANDLERS", "Handler"]
