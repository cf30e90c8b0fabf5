"""Bucket configurations stored as one document each: CORS rules, the website, lifecycle.

Each is put, got and deleted the same way; what differs (parsing and validation, the XML
S3 renders, the error for a missing one) lives in its own module: :mod:`cargohold.cors`,
:mod:`cargohold.website` and :mod:`cargohold.lifecycle`. The dispatcher answers CORS
preflights, the website endpoint (:mod:`cargohold.http.website`) serves the site from the
stored text, and the lifecycle worker (:mod:`cargohold.lifecycle_worker`) applies the rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, Self

from cargohold import cors, errors, lifecycle, website
from cargohold.handlers.context import Context, Handler, Reply
from cargohold.handlers.intake import read_small_body
from cargohold.store.base import Bucket, MetadataStore


class Document(Protocol):
    """What a configuration module's class offers."""

    @classmethod
    def parse(cls, body: bytes, max_size: int) -> Self: ...

    @classmethod
    def from_json(cls, text: str) -> Self: ...

    def to_json(self) -> str: ...

    def to_xml(self) -> bytes: ...


def document_handlers(
    name: str,
    kind: type[Document],
    max_size: int,
    stored: Callable[[Bucket], str | None],
    store_it: Callable[[MetadataStore], Callable[[str, str | None], Awaitable[None]]],
    missing: type[errors.S3Error],
    delete_name: str | None = None,
) -> dict[str, Handler]:
    """``PutBucket<name>``, ``GetBucket<name>`` and ``DeleteBucket<name>`` (or
    ``delete_name``: S3 calls lifecycle's ``DeleteBucketLifecycle``) for one kind."""

    async def put(ctx: Context) -> Reply:
        bucket = ctx.require_bucket()
        body = await read_small_body(ctx, max_size)
        document = kind.parse(body, max_size)  # raises S3's validation errors
        await store_it(ctx.services.store)(bucket.name, document.to_json())
        return Reply()

    async def get(ctx: Context) -> Reply:
        bucket = ctx.require_bucket()
        text = stored(bucket)
        if text is None:
            raise missing(BucketName=bucket.name)
        return Reply(body=kind.from_json(text).to_xml(),
                     headers={"Content-Type": "application/xml"})

    async def delete(ctx: Context) -> Reply:
        bucket = ctx.require_bucket()
        await store_it(ctx.services.store)(bucket.name, None)
        return Reply(status=204)

    return {f"PutBucket{name}": put, f"GetBucket{name}": get,
            delete_name or f"DeleteBucket{name}": delete}


HANDLERS: dict[str, Handler] = {
    **document_handlers("Cors", cors.CorsConfig, cors.MAX_DOCUMENT_SIZE,
                        lambda bucket: bucket.cors, lambda store: store.set_bucket_cors,
                        errors.NoSuchCORSConfiguration),
    **document_handlers("Website", website.WebsiteConfig, website.MAX_DOCUMENT_SIZE,
                        lambda bucket: bucket.website, lambda store: store.set_bucket_website,
                        errors.NoSuchWebsiteConfiguration),
    **document_handlers("LifecycleConfiguration", lifecycle.LifecycleConfig,
                        lifecycle.MAX_DOCUMENT_SIZE, lambda bucket: bucket.lifecycle,
                        lambda store: store.set_bucket_lifecycle,
                        errors.NoSuchLifecycleConfiguration,
                        delete_name="DeleteBucketLifecycle"),
}
