"""S3 access control lists: canned ACLs, grant headers, AccessControlPolicy XML, checks.

Pure: no HTTP framework and no storage. Handlers build an :class:`Acl` from a request with
:func:`from_request` (PutBucketAcl, PutObjectAcl) or :func:`from_headers` (CreateBucket,
PutObject, CopyObject, CreateMultipartUpload), the store keeps :meth:`Acl.to_json`, the
access check asks :meth:`Acl.allows`, and GetBucketAcl/GetObjectAcl answer
:meth:`Acl.to_xml`.

What S3 does, as AWS answers (LocalStack's AWS-validated snapshots of PutBucketAcl and
PutObjectAcl, ceph s3-tests written against AWS) and as AWS documents it:

- A canned ACL always includes the owner's FULL_CONTROL grant, first. ``bucket-owner-read``
  and ``bucket-owner-full-control`` add the bucket owner only when it is not the object
  owner, and on a bucket add nothing. ``log-delivery-write`` grants the LogDelivery group
  WRITE and READ_ACP.
- Grant headers give exactly the grants they name: the owner gets no grant of its own.
- ``x-amz-acl`` with any ``x-amz-grant-*``: ``InvalidRequest`` "Specifying both Canned ACLs
  and Header Grants is not allowed"; either with a body: ``UnexpectedContent``; none of
  the three on PutBucketAcl/PutObjectAcl: ``MissingSecurityHeader`` naming ``x-amz-acl``.
- An unknown canned ACL is ``InvalidArgument`` (ArgumentName ``x-amz-acl``). A grantee of an
  unknown kind is ``InvalidArgument`` "Argument format not recognized" naming the header; an
  unknown group ``InvalidArgument`` "Invalid group uri" (ArgumentName ``uri`` in a header,
  ``Group/URI`` in XML); an unknown canonical id ``InvalidArgument`` "Invalid id" (``id``,
  ``CanonicalUser/ID``); an e-mail address no account has ``UnresolvableGrantByEmailAddress``.
- A body that is not an AccessControlPolicy with an Owner and an AccessControlList, a
  permission or grantee type S3 does not know, a grantee without its ID/URI/EmailAddress,
  more than :data:`MAX_GRANTS` grants: ``MalformedACLError``.
- A policy whose Owner is not the resource's owner: ``AccessDenied`` (S3 does not let an
  ACL give a resource away).
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final
from xml.etree.ElementTree import Element

from cargohold import errors, xmlutil


class Permission(enum.StrEnum):
    """An ACL permission; its value (and str) is S3's name for it."""

    READ = "READ"
    WRITE = "WRITE"
    READ_ACP = "READ_ACP"
    WRITE_ACP = "WRITE_ACP"
    FULL_CONTROL = "FULL_CONTROL"


_FULL: Final = Permission.FULL_CONTROL

ALL_USERS: Final = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS: Final = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY: Final = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS: Final = frozenset({ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY})
_PUBLIC_GROUPS: Final = frozenset({ALL_USERS, AUTHENTICATED_USERS})

CANONICAL_USER: Final = "CanonicalUser"
GROUP: Final = "Group"
_BY_EMAIL = "AmazonCustomerByEmail"  # only ever in requests: resolved to CanonicalUser

# "An ACL can have up to 100 grants." (S3 user guide, ACL overview); more is
# MalformedACLError, as AWS answers (quoted in ceph/ceph#16291).
MAX_GRANTS: Final = 100
# The cap callers pass to from_xml/from_request: ours, not S3's (100 grants of the longest
# form are ~40 KB).
MAX_DOCUMENT_SIZE: Final = 64 * 1024

CANNED: Final = frozenset({"private", "public-read", "public-read-write", "authenticated-read",
                           "bucket-owner-read", "bucket-owner-full-control",
                           "log-delivery-write"})

# Grant headers, in the order their grants are listed in the ACL they build.
GRANT_HEADERS: Final[tuple[tuple[str, Permission], ...]] = (
    ("x-amz-grant-read", Permission.READ),
    ("x-amz-grant-write", Permission.WRITE),
    ("x-amz-grant-read-acp", Permission.READ_ACP),
    ("x-amz-grant-write-acp", Permission.WRITE_ACP),
    ("x-amz-grant-full-control", Permission.FULL_CONTROL),
)

_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{_XSI}}}type"
_GRANTEE_OPEN = f'<Grantee xmlns:xsi="{_XSI}" xsi:type="'

ResolveEmail = Callable[[str], str | None]
"""An e-mail address -> the canonical id of the account that has it, or None."""
KnownId = Callable[[str], bool]
"""Whether a canonical id names an account (S3 refuses grants to unknown ids)."""


@dataclass(frozen=True)
class Grant:
    """One grant: a grantee and the permission it has."""

    grantee_type: str  # CANONICAL_USER | GROUP (e-mail grants are resolved when parsed)
    grantee: str  # canonical id or group URI
    permission: Permission


@dataclass(frozen=True)
class Acl:
    """The ACL of a bucket or object: its owner and its grants, in S3's order."""

    owner_id: str
    grants: tuple[Grant, ...]

    def to_json(self) -> str:
        """A compact JSON form for storage (:meth:`from_json` reads it back)."""
        return json.dumps(
            {"Owner": self.owner_id,
             "Grants": [[g.grantee_type, g.grantee, g.permission.value] for g in self.grants]},
            separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Acl:
        """The ACL :meth:`to_json` wrote (trusted), parsed once per distinct text.

        The access check reads a stored ACL on every request it decides by ACL; the few
        distinct ACLs a worker sees are cached, and an :class:`Acl` is immutable.
        """
        return _from_json(text)

    def to_xml(self, display_names: Mapping[str, str]) -> bytes:
        """The GetBucketAcl/GetObjectAcl body, as S3 writes it.

        ``display_names`` maps canonical ids to display names; a user missing from it is
        written without ``DisplayName``, which S3's schema allows (and AWS now omits).
        """
        parts = ["<Owner>", xmlutil.element("ID", self.owner_id)]
        if (name := display_names.get(self.owner_id)) is not None:
            parts.append(xmlutil.element("DisplayName", name))
        parts.append("</Owner><AccessControlList>")
        for grant in self.grants:
            parts.append(f"<Grant>{_GRANTEE_OPEN}{grant.grantee_type}\">")
            if grant.grantee_type == GROUP:
                parts.append(xmlutil.element("URI", grant.grantee))
            else:
                parts.append(xmlutil.element("ID", grant.grantee))
                if (name := display_names.get(grant.grantee)) is not None:
                    parts.append(xmlutil.element("DisplayName", name))
            parts.append(f"</Grantee><Permission>{grant.permission.value}</Permission></Grant>")
        parts.append("</AccessControlList>")
        return xmlutil.document("AccessControlPolicy", parts)

    def allows(self, requester_id: str | None, permission: Permission) -> bool:
        """Whether a grant gives ``permission`` to the requester (None: anonymous).

        FULL_CONTROL implies every permission. AllUsers matches everyone, anonymous
        included; AuthenticatedUsers any signed requester; a CanonicalUser grant the account
        it names; LogDelivery no requester (it is S3's own log writer). Only grants count:
        what the resource owner may do regardless is the access check's business.
        """
        for grant in self.grants:
            if grant.permission != permission and grant.permission is not _FULL:
                continue
            if grant.grantee_type == GROUP:
                if grant.grantee == ALL_USERS or (
                        grant.grantee == AUTHENTICATED_USERS and requester_id is not None):
                    return True
            elif grant.grantee == requester_id:
                return True
        return False

    def is_public(self) -> bool:
        """Whether AllUsers or AuthenticatedUsers has any grant (S3's "public" ACL)."""
        return any(grant.grantee_type == GROUP and grant.grantee in _PUBLIC_GROUPS
                   for grant in self.grants)


@functools.lru_cache(maxsize=4096)
def _from_json(text: str) -> Acl:
    raw = json.loads(text)
    return Acl(str(raw["Owner"]),
               tuple(Grant(str(kind), str(grantee), Permission(permission))
                     for kind, grantee, permission in raw["Grants"]))


def private(owner_id: str) -> Acl:
    """The default ACL: the owner has FULL_CONTROL, nobody else anything."""
    return Acl(owner_id, (_user(owner_id, Permission.FULL_CONTROL),))


def canned(name: str, owner_id: str, bucket_owner_id: str | None = None) -> Acl:
    """The ACL a canned ACL name stands for; ``InvalidArgument`` for a name S3 does not know.

    ``bucket_owner_id`` is the bucket's owner when the ACL is an object's; S3 adds it to
    ``bucket-owner-read``/``-full-control`` only when it is not the object's owner, and
    ignores those two names on a bucket (pass None).
    """
    grants = [_user(owner_id, Permission.FULL_CONTROL)]
    if name == "private":
        pass
    elif name == "public-read":
        grants.append(_group(ALL_USERS, Permission.READ))
    elif name == "public-read-write":
        grants += [_group(ALL_USERS, Permission.READ), _group(ALL_USERS, Permission.WRITE)]
    elif name == "authenticated-read":
        grants.append(_group(AUTHENTICATED_USERS, Permission.READ))
    elif name in ("bucket-owner-read", "bucket-owner-full-control"):
        if bucket_owner_id is not None and bucket_owner_id != owner_id:
            grants.append(_user(bucket_owner_id, Permission.READ if name == "bucket-owner-read"
                                else Permission.FULL_CONTROL))
    elif name == "log-delivery-write":
        grants += [_group(LOG_DELIVERY, Permission.WRITE),
                   _group(LOG_DELIVERY, Permission.READ_ACP)]
    else:
        # AWS answers without a Message; ours is the default "Invalid Argument".
        raise errors.InvalidArgument(ArgumentName="x-amz-acl", ArgumentValue=name)
    return Acl(owner_id, tuple(grants))


def from_headers(headers: Mapping[str, str], owner_id: str, resolve_email: ResolveEmail,
                 bucket_owner_id: str | None = None, *,
                 known_id: KnownId | None = None) -> Acl | None:
    """The ACL that ``x-amz-acl`` or the ``x-amz-grant-*`` headers ask for, or None.

    None when the request has neither (the caller applies the default: :func:`private` on a
    new resource). ``headers`` is looked up with lower-case names through ``.get``: pass a
    case-insensitive mapping (aiohttp's ``CIMultiDictProxy``) or one with lower-case keys.
    An empty header counts as absent. ``known_id`` checks ``id=`` grantees; without it any
    non-empty id is taken. Raises the errors listed in the module docstring.
    """
    canned_name = (headers.get("x-amz-acl") or "").strip()
    present = [(name, permission, value) for name, permission in GRANT_HEADERS
               if (value := (headers.get(name) or "").strip())]
    if canned_name and present:
        raise errors.InvalidRequest("Specifying both Canned ACLs and Header Grants is not allowed")
    if canned_name:
        return canned(canned_name, owner_id, bucket_owner_id)
    if not present:
        return None
    grants: list[Grant] = []
    for name, permission, value in present:
        for kind, grantee in _header_grantees(name, value):
            grants.append(_header_grant(kind, grantee, permission, resolve_email, known_id))
    if len(grants) > MAX_GRANTS:
        raise errors.MalformedACLError()
    return Acl(owner_id, tuple(grants))


def from_xml(body: bytes, owner_id: str, resolve_email: ResolveEmail, max_size: int, *,
             known_id: KnownId | None = None) -> Acl:
    """The ACL of an ``AccessControlPolicy`` request body (PutBucketAcl, PutObjectAcl).

    ``owner_id`` is the resource's owner. The whole document's shape is checked first
    (``MalformedACLError``), then its values in document order, owner first (``InvalidArgument``,
    ``UnresolvableGrantByEmailAddress``), then that its Owner is ``owner_id``
    (``AccessDenied``). ``known_id`` checks canonical ids as in :func:`from_headers`.
    E-mail grantees are resolved to CanonicalUser grants. Grants keep document order,
    duplicates included (S3 keeps them too).
    """
    try:
        root = xmlutil.parse(body, max_size)
    except errors.MalformedXML as exc:
        raise errors.MalformedACLError() from exc
    if root.tag != "AccessControlPolicy":
        raise errors.MalformedACLError()
    sections = _children(root, {"Owner", "AccessControlList"})
    owner_element, acl_element = sections.get("Owner"), sections.get("AccessControlList")
    if owner_element is None or acl_element is None:
        raise errors.MalformedACLError()
    owner = _children(owner_element, {"ID", "DisplayName"})
    if "ID" not in owner:
        raise errors.MalformedACLError()
    policy_owner = _text(owner["ID"])
    if len(acl_element) > MAX_GRANTS:
        raise errors.MalformedACLError()
    parsed = [_read_grant(element) for element in acl_element]

    _check_id(policy_owner, "CanonicalUser/ID", known_id)
    grants: list[Grant] = []
    for kind, value, permission in parsed:
        if kind == GROUP:
            _check_group(value, "Group/URI")
            grants.append(_group(value, permission))
        elif kind == CANONICAL_USER:
            _check_id(value, "CanonicalUser/ID", known_id)
            grants.append(_user(value, permission))
        else:
            grants.append(_user(_resolve(value, resolve_email), permission))
    if policy_owner != owner_id:
        raise errors.AccessDenied()
    return Acl(owner_id, tuple(grants))


def from_request(headers: Mapping[str, str], body: bytes, owner_id: str,
                 resolve_email: ResolveEmail, max_size: int,
                 bucket_owner_id: str | None = None, *,
                 known_id: KnownId | None = None) -> Acl:
    """The new ACL of a PutBucketAcl/PutObjectAcl: from its headers or from its body.

    Exactly one of a canned ACL, grant headers and an AccessControlPolicy body: headers
    with a body is ``UnexpectedContent``, none of them ``MissingSecurityHeader``. See
    :func:`from_headers` and :func:`from_xml` for the rest.
    """
    from_header = from_headers(headers, owner_id, resolve_email, bucket_owner_id,
                               known_id=known_id)
    has_body = bool(body.strip())
    if from_header is not None:
        if has_body:
            raise errors.UnexpectedContent("This request does not support content")
        return from_header
    if not has_body:
        raise errors.MissingSecurityHeader("Your request was missing a required header",
                                           MissingHeaderName="x-amz-acl")
    return from_xml(body, owner_id, resolve_email, max_size, known_id=known_id)


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------

def _user(canonical_id: str, permission: Permission) -> Grant:
    return Grant(CANONICAL_USER, canonical_id, permission)


def _group(uri: str, permission: Permission) -> Grant:
    return Grant(GROUP, uri, permission)


# One grantee of a grant header: `kind=value` or `kind="value"`, spaces allowed around both.
_GRANTEE = re.compile(r'([A-Za-z]+)\s*=\s*(?:"([^"]*)"|([^"]*?))\s*', re.DOTALL)


def _header_grantees(header: str, value: str) -> Iterator[tuple[str, str]]:
    """(kind, value) of each comma-separated grantee; a comma inside quotes is kept."""
    for item in _split_outside_quotes(value):
        item = item.strip()
        match = _GRANTEE.fullmatch(item)
        if match is None or match[1].lower() not in ("id", "uri", "emailaddress"):
            raise errors.InvalidArgument("Argument format not recognized",
                                         ArgumentName=header, ArgumentValue=item)
        yield match[1].lower(), match[2] if match[2] is not None else match[3]


def _split_outside_quotes(value: str) -> Iterator[str]:
    start, quoted = 0, False
    for index, char in enumerate(value):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            yield value[start:index]
            start = index + 1
    yield value[start:]


def _header_grant(kind: str, value: str, permission: Permission, resolve_email: ResolveEmail,
                  known_id: KnownId | None) -> Grant:
    if kind == "uri":
        _check_group(value, "uri")
        return _group(value, permission)
    if kind == "id":
        _check_id(value, "id", known_id)
        return _user(value, permission)
    return _user(_resolve(value, resolve_email), permission)


def _check_group(uri: str, argument: str) -> None:
    if uri not in GROUPS:
        raise errors.InvalidArgument("Invalid group uri", ArgumentName=argument,
                                     ArgumentValue=uri)


def _check_id(canonical_id: str, argument: str, known_id: KnownId | None) -> None:
    if not canonical_id or (known_id is not None and not known_id(canonical_id)):
        raise errors.InvalidArgument("Invalid id", ArgumentName=argument,
                                     ArgumentValue=canonical_id)


def _resolve(email: str, resolve_email: ResolveEmail) -> str:
    canonical_id = resolve_email(email) if email else None
    if canonical_id is None:
        raise errors.UnresolvableGrantByEmailAddress()
    return canonical_id


def _children(element: Element, allowed: set[str]) -> dict[str, Element]:
    """An element's children by tag: each at most once and of ``allowed`` tags only."""
    found: dict[str, Element] = {}
    for child in element:
        if child.tag not in allowed or child.tag in found:
            raise errors.MalformedACLError()
        found[child.tag] = child
    return found


def _text(element: Element) -> str:
    """A simple element's text, trimmed; ``MalformedACLError`` when it has children."""
    if len(element):
        raise errors.MalformedACLError()
    return (element.text or "").strip()


# What each grantee type names its grantee by.
_GRANTEE_KEYS: Final = {CANONICAL_USER: "ID", GROUP: "URI", _BY_EMAIL: "EmailAddress"}


def _read_grant(element: Element) -> tuple[str, str, Permission]:
    """(grantee type, ID/URI/EmailAddress, permission) of a ``<Grant>``, shape checked."""
    if element.tag != "Grant":
        raise errors.MalformedACLError()
    parts = _children(element, {"Grantee", "Permission"})
    grantee, permission_element = parts.get("Grantee"), parts.get("Permission")
    if grantee is None or permission_element is None:
        raise errors.MalformedACLError()
    try:
        permission = Permission(_text(permission_element))
    except ValueError as exc:
        raise errors.MalformedACLError() from exc
    kind = _grantee_type(grantee)
    fields = _children(grantee, {"ID", "DisplayName", "URI", "EmailAddress"})
    key = _GRANTEE_KEYS.get(kind)
    if key is None or key not in fields:
        raise errors.MalformedACLError()
    for field in fields.values():
        _text(field)  # DisplayName and the rest are ignored, but must be simple text
    return kind, _text(fields[key]), permission


def _grantee_type(grantee: Element) -> str:
    """The ``xsi:type`` of a Grantee, under whatever prefix the client bound the namespace."""
    kind = grantee.get(_XSI_TYPE)
    if kind is None:
        raise errors.MalformedACLError()
    return kind.strip()
