"""PutBucketVersioning and GetBucketVersioning.

A bucket starts unversioned; Enabled and Suspended can follow each other but it never goes
back to unversioned (S3's rule), so the store's ``''`` state is only ever left. MFA delete
needs hardware tokens this server has no notion of: asking for it is refused.
"""

from __future__ import annotations

from cargohold import errors, xmlutil
from cargohold.handlers.context import Context, Handler, Reply
from cargohold.handlers.intake import read_small_body

STATES = ("Enabled", "Suspended")


async def put_bucket_versioning(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    max_size = ctx.services.settings.max_xml_size
    root = xmlutil.parse(await read_small_body(ctx, max_size), max_size)
    if root.tag != "VersioningConfiguration":
        raise errors.MalformedXML()
    status = xmlutil.child_text(root, "Status")
    mfa_delete = xmlutil.child_text(root, "MfaDelete")
    if mfa_delete is not None and mfa_delete not in ("Enabled", "Disabled"):
        raise errors.MalformedXML()
    if mfa_delete == "Enabled":
        raise errors.NotImplementedError_("MFA delete is not supported.")
    if status is None:
        return Reply()  # nothing asked for: S3 leaves the state as it is
    if status not in STATES:
        raise errors.MalformedXML()
    await ctx.services.store.set_bucket_versioning(bucket.name, status)
    return Reply()


async def get_bucket_versioning(ctx: Context) -> Reply:
    bucket = ctx.require_bucket()
    parts = [xmlutil.element("Status", bucket.versioning)] if bucket.versioning else []
    return Reply(body=xmlutil.document("VersioningConfiguration", parts),
                 headers={"Content-Type": "application/xml"})


HANDLERS: dict[str, Handler] = {
    "PutBucketVersioning": put_bucket_versioning,
    "GetBucketVersioning": get_bucket_versioning,
}
