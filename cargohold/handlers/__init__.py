"""One handler per S3 operation, grouped by resource; :data:`HANDLERS` maps names to them."""

from __future__ import annotations

from cargohold.handlers import buckets, listing, multipart, objects
from cargohold.handlers.context import Handler

HANDLERS: dict[str, Handler] = {
    **buckets.HANDLERS,
    **objects.HANDLERS,
    **listing.HANDLERS,
    **multipart.HANDLERS,
}

__all__ = ["HANDLERS", "Handler"]
