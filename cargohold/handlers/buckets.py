"""Bucket operations: create, head, delete, list, location."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import time

from cargohold import errors, xmlutil
from cargohold.handlers.acls import acl_from_headers
from cargohold.handlers.context import Context, Handler, Reply
from cargohold.handlers.intake import read_small_body
from cargohold.numbers import decimal
from cargohold.store.base import Bucket

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Regions clients send in LocationConstraint that mean "this server": its own, and the
# AWS default that s3fs and others send regardless of endpoint.
_DEFAULT_REGION_ALIASES = ("", "us-east-1")


def validate_bucket_name(name: str) -> None:
    """S3's naming rules; ``InvalidBucketName`` otherwise."""
    if not _BUCKET_NAME.match(name) or ".." in name or ".-" in name or "-." in name:
        raise errors.InvalidBucketName(BucketName=name)
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        raise errors.InvalidBucketName("Bucket name must not be formatted as an IP address.",
                                       BucketName=name)
    if name.startswith("xn--") or name.endswith("-s3alias"):
        raise errors.InvalidBucketName(BucketName=name)


async def create_bucket(ctx: Context) -> Reply:
    name = ctx.bucket_name or ""
    validate_bucket_name(name)
    principal = ctx.principal
    assert principal.account_id is not None
    acl_text = await acl_from_headers(ctx, principal.account_id)
    settings = ctx.services.settings
    body = await read_small_body(ctx, settings.max_xml_size)
    if body.strip():
        root = xmlutil.parse(body, settings.max_xml_size)
        if root.tag != "CreateBucketConfiguration":
            raise errors.MalformedXML()
        constraint = (xmlutil.child_text(root, "LocationConstraint") or "").strip()
        if constraint not in (settings.region, *_DEFAULT_REGION_ALIASES):
            raise errors.IllegalLocationConstraintException(
                f"The {constraint} location constraint is incompatible for the region "
                f"specific endpoint this request was sent to.")
    await ctx.services.store.create_bucket(
        Bucket(name=name, owner_id=principal.account_id, region=settings.region,
               created=time.time(), acl=acl_text),
        max_buckets=settings.max_buckets,
    )
    return Reply(headers={"Location": f"/{name}"})


async def head_bucket(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    return Reply(headers={"x-amz-bucket-region": bucket.region,
                          "x-amz-access-point-alias": "false"})


async def delete_bucket(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    await ctx.services.store.delete_bucket(bucket.name)
    return Reply(status=204)


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidArgument("The continuation token provided is incorrect",
                                     ArgumentName="continuation-token") from exc


async def list_buckets(ctx: Context) -> Reply:
    principal = ctx.principal
    assert principal.account_id is not None
    store = ctx.services.store
    prefix = ctx.query.get("prefix", "")
    raw_max = ctx.query.get("max-buckets")
    limit = 10000
    if raw_max is not None:
        parsed = decimal(raw_max)
        if parsed is None or not 1 <= parsed <= 10000:
            raise errors.InvalidArgument("max-buckets must be an integer from 1 to 10000",
                                         ArgumentName="max-buckets")
        limit = parsed
    token = ctx.query.get("continuation-token")
    start_after = _decode_token(token) if token else ""
    if principal.grants is None:
        found = await store.list_buckets(principal.account_id, prefix=prefix,
                                         start_after=start_after, limit=limit + 1)
    else:
        # A limited key sees only its granted buckets (an account has at most a few
        # hundred, so filtering them all is cheap).
        grants = principal.grants
        found = [b for b in await store.list_buckets(principal.account_id, prefix=prefix,
                                                     start_after=start_after)
                 if b.name in grants][:limit + 1]
    truncated = len(found) > limit
    found = found[:limit]
    account = await store.get_account(principal.account_id)
    display = account.display_name if account else ""
    parts = [f"<Owner>{xmlutil.element('ID', principal.account_id)}"
             f"{xmlutil.element('DisplayName', display)}</Owner><Buckets>"]
    for bucket in found:
        parts.append(f"<Bucket>{xmlutil.element('Name', bucket.name)}"
                     f"<CreationDate>{xmlutil.iso_time(bucket.created)}</CreationDate>"
                     f"{xmlutil.element('BucketRegion', bucket.region)}</Bucket>")
    parts.append("</Buckets>")
    if truncated:
        parts.append(xmlutil.element("ContinuationToken", _encode_token(found[-1].name)))
    if prefix:
        parts.append(xmlutil.element("Prefix", prefix))
    return Reply(body=xmlutil.document("ListAllMyBucketsResult", parts),
                 headers={"Content-Type": "application/xml"})


async def get_bucket_location(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    # S3 answers an empty constraint for us-east-1 only.
    region = "" if bucket.region == "us-east-1" else bucket.region
    body = (f'{xmlutil.XML_DECL}<LocationConstraint xmlns="{xmlutil.S3_NS}">'
            f"{xmlutil.escape(region)}</LocationConstraint>").encode()
    return Reply(body=body, headers={"Content-Type": "application/xml"})


HANDLERS: dict[str, Handler] = {
    "CreateBucket": create_bucket,
    "HeadBucket": head_bucket,
    "DeleteBucket": delete_bucket,
    "ListBuckets": list_buckets,
    "GetBucketLocation": get_bucket_location,
}
