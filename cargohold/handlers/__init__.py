"""One handler per S3 operation, grouped by resource; :data:`HANDLERS` maps names to them."""

from __future__ import annotations

from cargohold.handlers import buckets, copy, listing, multipart, objects, tagging
from cargohold.handlers.context import Handler

HANDLERS: dict[str, Handler] = {
    **buckets.HANDLERS,
    **objects.HANDLERS,
    **listing.HANDLERS,
    **multipart.HANDLERS,
    **tagging.HANDLERS,
    **copy.HANDLERS,
}

__all__ = ["HANDLERS", "Handler"]
