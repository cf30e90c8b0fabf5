"""Bucket policies: parsed and validated once at Put/load time, evaluated on every request.

The engine is pure (no HTTP, no storage). :meth:`BucketPolicy.parse` checks a policy the way
S3's PutBucketPolicy does and compiles it: every wildcard becomes a regular expression, every
condition value is parsed (numbers, dates, CIDRs) up front, so :meth:`BucketPolicy.evaluate`
does no JSON or parsing work per request.

Evaluation follows AWS IAM: an explicit Deny beats an Allow, which beats no match at all
(:attr:`Decision.NONE`, which the caller combines with ownership, ACLs and key grants).
Condition semantics follow the IAM reference ("IAM JSON policy elements: Condition
operators" and "Conditions with multiple context keys or values"):

- operators in a block, and keys in one operator, are ANDed; the values of one key are ORed,
  except for negated operators (StringNotEquals, NotIpAddress, ...), where they are NORed;
- a key missing from the request makes a condition false, except that negated operators,
  ``...IfExists`` operators and ``ForAllValues:`` are then true, and ``ForAnyValue:`` false;
- ``Null: true`` holds when the key is absent, ``Null: false`` when it is present;
- condition keys are case-insensitive; values are case-sensitive except for ``...IgnoreCase``.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from cargohold import errors

# S3 caps a bucket policy at 20 KB, counted without insignificant whitespace.
MAX_POLICY_SIZE = 20 * 1024
# A pretty-printed policy may be larger than its compact form; past this we do not parse.
_MAX_RAW_SIZE = 10 * MAX_POLICY_SIZE
_VERSIONS = frozenset({"2012-10-17", "2008-10-17"})


class Decision(enum.Enum):
    """What a policy says about a request."""

    ALLOW = "allow"
    DENY = "deny"  # an explicit Deny: nothing else can grant the request
    NONE = "none"  # no statement applies


@dataclass(frozen=True)
class RequestFacts:
    """What a policy is evaluated against, gathered once per request by the caller."""

    action: str  # "s3:GetObject"
    resource: str  # "arn:aws:s3:::bucket" or "arn:aws:s3:::bucket/key"
    # Identifiers of the requester (its canonical id and account name); empty for anonymous.
    principal_ids: frozenset[str]
    anonymous: bool
    # Condition key, lower-cased (e.g. "aws:sourceip") -> its values in this request.
    context: Mapping[str, Sequence[str]]


# --------------------------------------------------------------------------------------------
# IAM actions
# --------------------------------------------------------------------------------------------

# The S3 IAM actions as AWS's Service Authorization Reference lists them, grouped by the
# resource they apply to (needed for S3's "Action does not apply to any resource(s)" check).
_OBJECT_ACTIONS = """
AbortMultipartUpload BypassGovernanceRetention DeleteObject DeleteObjectAnnotation
DeleteObjectTagging DeleteObjectVersion DeleteObjectVersionAnnotation
DeleteObjectVersionTagging GetObject GetObjectAcl GetObjectAnnotation GetObjectAttributes
GetObjectLegalHold GetObjectRetention GetObjectTagging GetObjectTorrent GetObjectVersion
GetObjectVersionAcl GetObjectVersionAnnotation GetObjectVersionAnnotationForReplication
GetObjectVersionAttributes GetObjectVersionForReplication GetObjectVersionTagging
GetObjectVersionTorrent InitiateReplication ListMultipartUploadParts ListObjectAnnotations
ListObjectVersionAnnotations ObjectOwnerOverrideToBucketOwner PutObject PutObjectAcl
PutObjectAnnotation PutObjectLegalHold PutObjectRetention PutObjectTagging
PutObjectVersionAcl PutObjectVersionAnnotation PutObjectVersionTagging ReplicateDelete
ReplicateObject ReplicateObjectAnnotation ReplicateTags RestoreObject UpdateObjectEncryption
"""
_BUCKET_ACTIONS = """
AllowVendedLogDeliveryForResource CreateBucket CreateBucketMetadataTableConfiguration
DeleteBucket DeleteBucketMetadataTableConfiguration DeleteBucketPolicy DeleteBucketWebsite
GetAccelerateConfiguration GetAnalyticsConfiguration GetBucketAbac GetBucketAcl
GetBucketCORS GetBucketLocation GetBucketLogging GetBucketMetadataTableConfiguration
GetBucketNotification GetBucketObjectLockConfiguration GetBucketOwnershipControls
GetBucketPolicy GetBucketPolicyStatus GetBucketPublicAccessBlock GetBucketRequestPayment
GetBucketTagging GetBucketVersioning GetBucketWebsite GetEncryptionConfiguration
GetIntelligentTieringConfiguration GetInventoryConfiguration GetLifecycleConfiguration
GetMetricsConfiguration GetReplicationConfiguration ListBucket ListBucketMultipartUploads
ListBucketVersions ListTagsForResource PauseReplication PutAccelerateConfiguration
PutAnalyticsConfiguration PutBucketAbac PutBucketAcl PutBucketCORS PutBucketLogging
PutBucketNotification PutBucketObjectLockConfiguration PutBucketOwnershipControls
PutBucketPolicy PutBucketPublicAccessBlock PutBucketRequestPayment PutBucketTagging
PutBucketVersioning PutBucketWebsite PutEncryptionConfiguration
PutIntelligentTieringConfiguration PutInventoryConfiguration PutLifecycleConfiguration
PutMetricsConfiguration PutReplicationConfiguration TagResource UntagResource
UpdateBucketMetadataAnnotationTableConfiguration
UpdateBucketMetadataInventoryTableConfiguration
UpdateBucketMetadataJournalTableConfiguration
"""
# Account-level, access point, job and Storage Lens actions: no bucket or object ARN.
_OTHER_ACTIONS = """
AssociateAccessGrantsIdentityCenter CreateAccessGrant CreateAccessGrantsInstance
CreateAccessGrantsLocation CreateAccessPoint CreateAccessPointForObjectLambda CreateJob
CreateMultiRegionAccessPoint CreateStorageLensGroup DeleteAccessGrant
DeleteAccessGrantsInstance DeleteAccessGrantsInstanceResourcePolicy
DeleteAccessGrantsLocation DeleteAccessPoint DeleteAccessPointForObjectLambda
DeleteAccessPointPolicy DeleteAccessPointPolicyForObjectLambda DeleteJobTagging
DeleteMultiRegionAccessPoint DeleteStorageLensConfiguration
DeleteStorageLensConfigurationTagging DeleteStorageLensGroup DescribeJob
DescribeMultiRegionAccessPointOperation DissociateAccessGrantsIdentityCenter GetAccessGrant
GetAccessGrantsInstance GetAccessGrantsInstanceForPrefix
GetAccessGrantsInstanceResourcePolicy GetAccessGrantsLocation GetAccessPoint
GetAccessPointConfigurationForObjectLambda GetAccessPointForObjectLambda
GetAccessPointPolicy GetAccessPointPolicyForObjectLambda GetAccessPointPolicyStatus
GetAccessPointPolicyStatusForObjectLambda GetAccountPublicAccessBlock GetDataAccess
GetJobTagging GetMultiRegionAccessPoint GetMultiRegionAccessPointPolicy
GetMultiRegionAccessPointPolicyStatus GetMultiRegionAccessPointRoutes
GetStorageLensConfiguration GetStorageLensConfigurationTagging GetStorageLensDashboard
GetStorageLensGroup ListAccessGrants ListAccessGrantsInstances ListAccessGrantsLocations
ListAccessPoints ListAccessPointsForObjectLambda ListAllMyBuckets ListCallerAccessGrants
ListJobs ListMultiRegionAccessPoints ListStorageLensConfigurations ListStorageLensGroups
PutAccessGrantsInstanceResourcePolicy PutAccessPointConfigurationForObjectLambda
PutAccessPointPolicy PutAccessPointPolicyForObjectLambda PutAccessPointPublicAccessBlock
PutAccountPublicAccessBlock PutJobTagging PutMultiRegionAccessPointPolicy
PutStorageLensConfiguration PutStorageLensConfigurationTagging
SubmitMultiRegionAccessPointRoutes UpdateAccessGrantsLocation UpdateJobPriority
UpdateJobStatus UpdateStorageLensGroup
"""
_BUCKET, _OBJECT, _OTHER = "bucket", "object", "other"
# Lower-cased "s3:name" -> the kind of resource the action applies to.
_KNOWN_ACTIONS: dict[str, str] = {
    f"s3:{name.lower()}": kind
    for kind, names in ((_OBJECT, _OBJECT_ACTIONS), (_BUCKET, _BUCKET_ACTIONS),
                        (_OTHER, _OTHER_ACTIONS))
    for name in names.split()
}

# Every operation of cargohold.operations -> the IAM action S3 authorizes it with.
ACTIONS: dict[str, str] = {
    "ListBuckets": "s3:ListAllMyBuckets",
    "CreateSession": "s3express:CreateSession",
    "CreateBucket": "s3:CreateBucket",
    "HeadBucket": "s3:ListBucket",
    "DeleteBucket": "s3:DeleteBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetBucketLocation": "s3:GetBucketLocation",
    "DeleteObjects": "s3:DeleteObject",
    "PostObject": "s3:PutObject",
    "GetBucketAcl": "s3:GetBucketAcl",
    "PutBucketAcl": "s3:PutBucketAcl",
    "GetBucketPolicy": "s3:GetBucketPolicy",
    "PutBucketPolicy": "s3:PutBucketPolicy",
    "DeleteBucketPolicy": "s3:DeleteBucketPolicy",
    "GetBucketPolicyStatus": "s3:GetBucketPolicyStatus",
    "GetBucketVersioning": "s3:GetBucketVersioning",
    "PutBucketVersioning": "s3:PutBucketVersioning",
    "GetBucketCors": "s3:GetBucketCORS",
    "PutBucketCors": "s3:PutBucketCORS",
    "DeleteBucketCors": "s3:PutBucketCORS",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "DeleteBucketLifecycle": "s3:PutLifecycleConfiguration",
    "GetBucketWebsite": "s3:GetBucketWebsite",
    "PutBucketWebsite": "s3:PutBucketWebsite",
    "DeleteBucketWebsite": "s3:DeleteBucketWebsite",
    "GetBucketLogging": "s3:GetBucketLogging",
    "PutBucketLogging": "s3:PutBucketLogging",
    "GetBucketTagging": "s3:GetBucketTagging",
    "PutBucketTagging": "s3:PutBucketTagging",
    "DeleteBucketTagging": "s3:PutBucketTagging",
    "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    "PutBucketNotificationConfiguration": "s3:PutBucketNotification",
    "GetBucketReplication": "s3:GetReplicationConfiguration",
    "PutBucketReplication": "s3:PutReplicationConfiguration",
    "DeleteBucketReplication": "s3:PutReplicationConfiguration",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "DeleteBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "PutObjectLockConfiguration": "s3:PutBucketObjectLockConfiguration",
    "GetBucketAccelerateConfiguration": "s3:GetAccelerateConfiguration",
    "PutBucketAccelerateConfiguration": "s3:PutAccelerateConfiguration",
    "GetBucketRequestPayment": "s3:GetBucketRequestPayment",
    "PutBucketRequestPayment": "s3:PutBucketRequestPayment",
    "GetBucketAnalyticsConfiguration": "s3:GetAnalyticsConfiguration",
    "PutBucketAnalyticsConfiguration": "s3:PutAnalyticsConfiguration",
    "DeleteBucketAnalyticsConfiguration": "s3:PutAnalyticsConfiguration",
    "GetBucketInventoryConfiguration": "s3:GetInventoryConfiguration",
    "PutBucketInventoryConfiguration": "s3:PutInventoryConfiguration",
    "DeleteBucketInventoryConfiguration": "s3:PutInventoryConfiguration",
    "GetBucketMetricsConfiguration": "s3:GetMetricsConfiguration",
    "PutBucketMetricsConfiguration": "s3:PutMetricsConfiguration",
    "DeleteBucketMetricsConfiguration": "s3:PutMetricsConfiguration",
    "GetBucketIntelligentTieringConfiguration": "s3:GetIntelligentTieringConfiguration",
    "PutBucketIntelligentTieringConfiguration": "s3:PutIntelligentTieringConfiguration",
    "DeleteBucketIntelligentTieringConfiguration": "s3:PutIntelligentTieringConfiguration",
    "GetBucketOwnershipControls": "s3:GetBucketOwnershipControls",
    "PutBucketOwnershipControls": "s3:PutBucketOwnershipControls",
    "DeleteBucketOwnershipControls": "s3:PutBucketOwnershipControls",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "DeletePublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "CopyObject": "s3:PutObject",  # the source also needs s3:GetObject
    "PutObject": "s3:PutObject",
    "DeleteObject": "s3:DeleteObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPartCopy": "s3:PutObject",  # the source also needs s3:GetObject
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "GetObjectAcl": "s3:GetObjectAcl",
    "PutObjectAcl": "s3:PutObjectAcl",
    "GetObjectTagging": "s3:GetObjectTagging",
    "PutObjectTagging": "s3:PutObjectTagging",
    "DeleteObjectTagging": "s3:DeleteObjectTagging",
    "GetObjectAttributes": "s3:GetObjectAttributes",
    "GetObjectRetention": "s3:GetObjectRetention",
    "PutObjectRetention": "s3:PutObjectRetention",
    "GetObjectLegalHold": "s3:GetObjectLegalHold",
    "PutObjectLegalHold": "s3:PutObjectLegalHold",
    "RestoreObject": "s3:RestoreObject",
    "SelectObjectContent": "s3:GetObject",
    "GetObjectTorrent": "s3:GetObjectTorrent",
    # S3 only has RenameObject on directory buckets, authorized by the session.
    "RenameObject": "s3express:CreateSession",
}

# The action S3 checks instead when the request names a ?versionId.
VERSIONED_ACTIONS: dict[str, str] = {
    "GetObject": "s3:GetObjectVersion",
    "HeadObject": "s3:GetObjectVersion",
    "DeleteObject": "s3:DeleteObjectVersion",
    "DeleteObjects": "s3:DeleteObjectVersion",
    "GetObjectAcl": "s3:GetObjectVersionAcl",
    "PutObjectAcl": "s3:PutObjectVersionAcl",
    "GetObjectTagging": "s3:GetObjectVersionTagging",
    "PutObjectTagging": "s3:PutObjectVersionTagging",
    "DeleteObjectTagging": "s3:DeleteObjectVersionTagging",
    "GetObjectAttributes": "s3:GetObjectVersionAttributes",
    "GetObjectTorrent": "s3:GetObjectVersionTorrent",
}


# --------------------------------------------------------------------------------------------
# Wildcards
# --------------------------------------------------------------------------------------------

# A pattern token: ("lit", char, _) | ("star", "", free) | ("one", "", free). A "free"
# wildcard may match ':'; ARN wildcards outside the last segment may not.
_Token = tuple[str, str, bool]


def _glob_tokens(pattern: str, free: bool = True) -> list[_Token]:
    """Tokens of a ``*`` / ``?`` pattern."""
    out: list[_Token] = []
    for ch in pattern:
        if ch == "*":
            out.append(("star", "", free))
        elif ch == "?":
            out.append(("one", "", free))
        else:
            out.append(("lit", ch, free))
    return out


def _arn_tokens(pattern: str) -> list[_Token]:
    """Tokens of an ARN pattern: each colon-separated segment matches on its own (IAM's rule
    for Resource and Arn* conditions); the last segment, an S3 bucket/key, may hold colons."""
    segments = pattern.split(":", 5)
    out: list[_Token] = []
    for i, segment in enumerate(segments):
        if i:
            out.append(("lit", ":", False))
        out.extend(_glob_tokens(segment, free=i == len(segments) - 1))
    return out


def _token_regex(tokens: Iterable[_Token]) -> str:
    parts = []
    for kind, ch, free in tokens:
        if kind == "lit":
            parts.append(re.escape(ch))
        elif kind == "star":
            parts.append(".*" if free else "[^:]*")
        else:
            parts.append("." if free else "[^:]")
    return "".join(parts)


def _has_wildcard(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


class _Matcher:
    """Matches a string against a list of patterns: exact ones by set lookup, wildcard ones by
    one compiled alternation."""

    __slots__ = ("_exact", "_regex")

    def __init__(self, patterns: Iterable[str], tokens: Callable[[str], list[_Token]]) -> None:
        exact: set[str] = set()
        wild: list[str] = []
        for pattern in patterns:
            if _has_wildcard(pattern):
                wild.append(_token_regex(tokens(pattern)))
            else:
                exact.add(pattern)
        self._exact = frozenset(exact)
        self._regex = re.compile("|".join(f"(?:{w})" for w in wild), re.DOTALL) if wild else None

    def __call__(self, value: str) -> bool:
        if value in self._exact:
            return True
        return self._regex is not None and self._regex.fullmatch(value) is not None


def _reachable(tokens: Sequence[_Token], text: str) -> set[int]:
    """Token positions a pattern can be at after consuming ``text`` (an NFA walk): used at
    parse time to ask whether a pattern can match a string or anything that extends it."""

    def close(states: set[int]) -> set[int]:
        todo = list(states)
        while todo:
            i = todo.pop()
            if i < len(tokens) and tokens[i][0] == "star" and i + 1 not in states:
                states.add(i + 1)
                todo.append(i + 1)
        return states

    states = close({0})
    for ch in text:
        nxt: set[int] = set()
        for i in states:
            if i == len(tokens):
                continue
            kind, lit, free = tokens[i]
            if kind == "lit":
                if lit == ch:
                    nxt.add(i + 1)
            elif free or ch != ":":
                nxt.add(i if kind == "star" else i + 1)
        states = close(nxt)
        if not states:
            break
    return states


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _malformed(message: str, where: str | None = None) -> errors.S3Error:
    """A MalformedPolicy error; ``where`` names the statement (and element) at fault."""
    return errors.MalformedPolicy(f"{message} ({where})" if where else message)


def _strings(value: object, what: str, where: str) -> list[str]:
    """A policy element that is one string or a non-empty list of strings."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise _malformed(f"{what} must be a non-empty string or list of strings", where)
    return [item for item in items if isinstance(item, str)]


# --------------------------------------------------------------------------------------------
# Principals
# --------------------------------------------------------------------------------------------

_IAM_ARN = re.compile(r"arn:aws:iam::([^:]+):(?:root|user/.+)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Principals:
    everyone: bool  # "*" or {"AWS": "*"}: anybody, anonymous included
    ids: frozenset[str]  # account ids / canonical ids / account names

    def matches(self, facts: RequestFacts) -> bool:
        if self.everyone:
            return True
        return not facts.anonymous and not self.ids.isdisjoint(facts.principal_ids)


def _parse_principals(value: object, where: str) -> _Principals:
    if value == "*":
        return _Principals(everyone=True, ids=frozenset())
    if not isinstance(value, dict) or not value:
        raise _malformed("Invalid principal in policy", where)
    everyone = False
    ids: set[str] = set()
    for kind, names in value.items():
        if kind not in ("AWS", "CanonicalUser", "Service"):
            raise _malformed(f"Invalid principal in policy: unknown principal type {kind}", where)
        for name in _strings(names, f"Principal {kind}", where):
            if kind == "AWS" and name == "*":
                everyone = True
            elif _has_wildcard(name):
                raise _malformed(f"Invalid principal in policy: {name}", where)
            elif kind == "AWS":
                ids.add(_account_of(name, where))
            elif kind == "CanonicalUser":
                ids.add(name)
            # A service principal (e.g. logging.s3.amazonaws.com) never signs requests here.
    return _Principals(everyone=everyone, ids=frozenset(ids))


def _account_of(name: str, where: str) -> str:
    """The account an AWS principal names: a bare id, or the id in an IAM root/user ARN."""
    if not name.startswith("arn:"):
        return name
    match = _IAM_ARN.fullmatch(name)
    if match is None:
        raise _malformed(f"Invalid principal in policy: {name}", where)
    return match.group(1)


# --------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------

# A compiled test of one request value against a condition's policy values: True / False, or
# None when the request value cannot be read as the operator's type (then nothing matches).
_Test = Callable[[str], bool | None]
_Builder = Callable[[list[str], str], _Test]


def _string_test(values: list[str], where: str) -> _Test:
    wanted = frozenset(values)
    return lambda v: v in wanted


def _string_ignore_case_test(values: list[str], where: str) -> _Test:
    wanted = frozenset(value.casefold() for value in values)
    return lambda v: v.casefold() in wanted


def _like_test(values: list[str], where: str) -> _Test:
    return _Matcher(values, _glob_tokens)


def _arn_test(values: list[str], where: str) -> _Test:
    return _Matcher(values, _arn_tokens)


def _parse_number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


_EPOCH = re.compile(r"-?\d+(?:\.\d+)?")


@functools.lru_cache(maxsize=1024)  # aws:CurrentTime repeats within a second
def _parse_date(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 date/time or of epoch seconds."""
    text = text.strip()
    if _EPOCH.fullmatch(text):
        return float(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _ordered_test(
    parse: Callable[[str], Any], compare: Callable[[Any, Any], bool], what: str
) -> _Builder:
    """A builder for Numeric* / Date* operators: ``compare(request value, policy value)``."""

    def build(values: list[str], where: str) -> _Test:
        limits = []
        for value in values:
            parsed = parse(value)
            if parsed is None:
                raise _malformed(f"Invalid {what} value in Condition: {value}", where)
            limits.append(parsed)

        def test(v: str) -> bool | None:
            got = parse(v)
            if got is None:
                return None
            return any(compare(got, limit) for limit in limits)

        return test

    return build


def _bool_values(values: list[str], where: str, what: str = "Bool") -> frozenset[str]:
    lowered = frozenset(value.lower() for value in values)
    if not lowered <= {"true", "false"}:
        raise _malformed(f"Invalid {what} value in Condition: {values}", where)
    return lowered


def _bool_test(values: list[str], where: str) -> _Test:
    wanted = _bool_values(values, where)
    return lambda v: v.lower() in wanted


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_networks(values: list[str], where: str) -> list[_Network]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise _malformed(f"Invalid IP address in Condition: {value}", where) from None
    return networks


@functools.lru_cache(maxsize=4096)  # parsing an address costs more than the whole rest
def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # An IPv4 client seen through a dual-stack socket arrives as ::ffff:a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _ip_test(values: list[str], where: str) -> _Test:
    networks = _parse_networks(values, where)

    def test(v: str) -> bool | None:
        address = _parse_ip(v)
        if address is None:
            return None
        return any(address.version == n.version and address in n for n in networks)

    return test


_NULL = "null"
# Operator name (lower-case, without qualifier or IfExists) -> (family, builder, negated).
_OPERATORS: dict[str, tuple[str, _Builder | None, bool]] = {
    "stringequals": ("StringEquals", _string_test, False),
    "stringnotequals": ("StringEquals", _string_test, True),
    "stringequalsignorecase": ("StringEqualsIgnoreCase", _string_ignore_case_test, False),
    "stringnotequalsignorecase": ("StringEqualsIgnoreCase", _string_ignore_case_test, True),
    "stringlike": ("StringLike", _like_test, False),
    "stringnotlike": ("StringLike", _like_test, True),
    "numericequals": ("Numeric", _ordered_test(_parse_number, operator.eq, "Numeric"), False),
    "numericnotequals": ("Numeric", _ordered_test(_parse_number, operator.eq, "Numeric"), True),
    "numericlessthan": ("Numeric", _ordered_test(_parse_number, operator.lt, "Numeric"), False),
    "numericlessthanequals": (
        "Numeric", _ordered_test(_parse_number, operator.le, "Numeric"), False),
    "numericgreaterthan": (
        "Numeric", _ordered_test(_parse_number, operator.gt, "Numeric"), False),
    "numericgreaterthanequals": (
        "Numeric", _ordered_test(_parse_number, operator.ge, "Numeric"), False),
    "dateequals": ("Date", _ordered_test(_parse_date, operator.eq, "Date"), False),
    "datenotequals": ("Date", _ordered_test(_parse_date, operator.eq, "Date"), True),
    "datelessthan": ("Date", _ordered_test(_parse_date, operator.lt, "Date"), False),
    "datelessthanequals": ("Date", _ordered_test(_parse_date, operator.le, "Date"), False),
    "dategreaterthan": ("Date", _ordered_test(_parse_date, operator.gt, "Date"), False),
    "dategreaterthanequals": ("Date", _ordered_test(_parse_date, operator.ge, "Date"), False),
    "bool": ("Bool", _bool_test, False),
    "binaryequals": ("Binary", _string_test, False),
    "ipaddress": ("IpAddress", _ip_test, False),
    "notipaddress": ("IpAddress", _ip_test, True),
    "arnequals": ("Arn", _arn_test, False),
    "arnlike": ("Arn", _arn_test, False),
    "arnnotequals": ("Arn", _arn_test, True),
    "arnnotlike": ("Arn", _arn_test, True),
    _NULL: ("Null", None, False),
}

_ANY, _ALL = "ForAnyValue", "ForAllValues"


@dataclass(frozen=True, slots=True)
class _Condition:
    """One (operator, key) pair of a Condition block, compiled."""

    key: str  # lower-case
    family: str
    qualifier: str | None  # _ANY, _ALL or None
    if_exists: bool
    negated: bool
    values: tuple[str, ...]  # as written (for the public-access check)
    test: _Test
    when_missing: bool  # the result when the request has no value for the key

    def holds(self, context: Mapping[str, Sequence[str]]) -> bool:
        values = context.get(self.key)
        if not values:
            return self.when_missing
        if isinstance(values, str):  # a bare string is a Sequence[str] of characters
            values = (values,)
        if self.qualifier == _ALL:
            return all(self._value_matches(v) for v in values)
        return any(self._value_matches(v) for v in values)

    def _value_matches(self, value: str) -> bool:
        hit = self.test(value)
        return hit is not None and hit != self.negated


def _condition_values(value: object, where: str) -> list[str]:
    """Condition values as strings: JSON numbers and booleans are written as S3 reads them."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, int | float):
            out.append(json.dumps(item))
        elif isinstance(item, str):
            out.append(item)
        else:
            raise _malformed("Condition values must be strings, numbers or booleans", where)
    if not out:
        raise _malformed("Condition values must not be empty", where)
    return out


def _split_operator(name: str, where: str) -> tuple[str | None, str, bool]:
    """(qualifier, lower-case base operator, IfExists) of an operator name."""
    qualifier: str | None = None
    base = name
    head, colon, rest = name.partition(":")
    if colon:
        qualifier = {_ANY.lower(): _ANY, _ALL.lower(): _ALL}.get(head.lower())
        if qualifier is None:
            raise _malformed(f"Invalid Condition operator: {name}", where)
        base = rest
    base = base.lower()
    if_exists = base.endswith("ifexists") and base != "ifexists"
    if if_exists:
        base = base[: -len("ifexists")]
    if base not in _OPERATORS or (if_exists and base == _NULL):
        raise _malformed(f"Invalid Condition operator: {name}", where)
    return qualifier, base, if_exists


def _parse_conditions(block: object, where: str) -> list[_Condition]:
    if not isinstance(block, dict):
        raise _malformed("Condition must be an object of operators", where)
    conditions = []
    for op_name, keys in block.items():
        qualifier, base, if_exists = _split_operator(op_name, where)
        if not isinstance(keys, dict) or not keys:
            raise _malformed(f"Condition operator {op_name} must map keys to values", where)
        for key, raw in keys.items():
            conditions.append(
                _compile_condition(op_name, qualifier, base, if_exists, key, raw, where))
    return conditions


def _compile_condition(
    op_name: str, qualifier: str | None, base: str, if_exists: bool, key: str, raw: object,
    where: str,
) -> _Condition:
    at = f"{where}, Condition {op_name} {key}"
    if not key:
        raise _malformed("Condition keys must not be empty", at)
    values = _condition_values(raw, at)
    family, builder, negated = _OPERATORS[base]
    if builder is None:  # Null: a test of presence, not of values
        wants = _bool_values(values, at, "Null")
        present_ok = "false" in wants
        return _Condition(
            key=key.lower(), family=family, qualifier=None, if_exists=False, negated=False,
            values=tuple(values), test=lambda v: present_ok, when_missing="true" in wants)
    if if_exists or qualifier == _ALL:
        when_missing = True
    elif qualifier == _ANY:
        when_missing = False
    else:
        when_missing = negated  # "key not matched" holds for a key that is not there
    return _Condition(
        key=key.lower(), family=family, qualifier=qualifier, if_exists=if_exists,
        negated=negated, values=tuple(values), test=builder(values, at),
        when_missing=when_missing)


# --------------------------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------------------------

_STATEMENT_FIELDS = frozenset({
    "Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
    "NotResource", "Condition",
})


@dataclass(frozen=True, slots=True)
class _Statement:
    deny: bool
    principals: _Principals
    not_principal: bool
    actions: _Matcher
    not_action: bool
    resources: _Matcher
    not_resource: bool
    conditions: tuple[_Condition, ...]

    def applies(self, facts: RequestFacts, action: str) -> bool:
        """Whether the statement covers the request (``action`` is lower-cased)."""
        if self.principals.matches(facts) == self.not_principal:
            return False
        if self.actions(action) == self.not_action:
            return False
        if self.resources(facts.resource) == self.not_resource:
            return False
        context = facts.context
        return all(condition.holds(context) for condition in self.conditions)


def _one_of(raw: dict[str, Any], name: str, where: str) -> tuple[object, bool]:
    """The value of element ``name`` or ``Not<name>`` (exactly one must be there), and whether
    it was the Not form."""
    if name in raw and f"Not{name}" in raw:
        raise _malformed(f"A statement cannot have both {name} and Not{name}", where)
    if name in raw:
        return raw[name], False
    if f"Not{name}" in raw:
        return raw[f"Not{name}"], True
    raise _malformed(f"Missing required field {name}", where)


def _parse_actions(value: object, where: str) -> list[str]:
    """The actions of a statement, as written; refuses any that is not an S3 action."""
    actions = _strings(value, "Action", where)
    for action in actions:
        if action == "*":
            continue
        service, colon, name = action.lower().partition(":")
        if service != "s3" or not colon or not name:
            raise _malformed(f"Policy has invalid action: {action}", where)
        if not _has_wildcard(name) and f"s3:{name}" not in _KNOWN_ACTIONS:
            raise _malformed(f"Policy has invalid action: {action}", where)
    return actions


def _resource_kinds(patterns: list[str], bucket: str, where: str) -> set[str]:
    """The kinds of resource (bucket, object, other) the patterns cover; raises if one of them
    can match nothing in ``bucket``."""
    bucket_arn = f"arn:aws:s3:::{bucket}"
    kinds: set[str] = set()
    for pattern in patterns:
        tokens = _arn_tokens(pattern)
        covers_bucket = len(tokens) in _reachable(tokens, bucket_arn)
        covers_objects = bool(_reachable(tokens, bucket_arn + "/"))
        if not covers_bucket and not covers_objects:
            raise _malformed(f"Policy has invalid resource: {pattern}", where)
        if covers_bucket:
            kinds.add(_BUCKET)
        if covers_objects:
            kinds.add(_OBJECT)
        if pattern == "*":
            kinds.add(_OTHER)
    return kinds


@functools.lru_cache(maxsize=512)
def _action_kinds(action: str) -> frozenset[str]:
    """The resource kinds of the known actions a (lower-case) action pattern names."""
    matches = _Matcher([action], _glob_tokens)
    return frozenset(kind for known, kind in _KNOWN_ACTIONS.items() if matches(known))


def _check_actions_apply(actions: list[str], kinds: set[str], where: str) -> None:
    """S3 refuses a statement naming an action that none of its resources can take (e.g.
    s3:ListBucket on arn:aws:s3:::bucket/*)."""
    for action in actions:
        if action == "*":
            continue
        action_kinds = _action_kinds(action.lower())
        if action_kinds and not action_kinds & kinds:
            raise _malformed(
                f"Action does not apply to any resource(s) in statement: {action}", where)


def _parse_statement(raw: object, where: str, bucket: str) -> _Statement:
    if not isinstance(raw, dict):
        raise _malformed("Each statement must be a JSON object", where)
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise _malformed("Sid must be a string", where)
    if sid:
        where = f'{where}, Sid "{sid}"'
    for field in raw:
        if field not in _STATEMENT_FIELDS:
            raise _malformed(f"Unknown field {field}", where)
    if "Effect" not in raw:
        raise _malformed("Missing required field Effect", where)
    effect = raw["Effect"]
    if effect not in ("Allow", "Deny"):
        raise _malformed(f"Invalid effect: {effect}", where)
    principal, not_principal = _one_of(raw, "Principal", where)
    action_value, not_action = _one_of(raw, "Action", where)
    resource_value, not_resource = _one_of(raw, "Resource", where)
    actions = _parse_actions(action_value, where)
    resources = _strings(resource_value, "Resource", where)
    kinds = _resource_kinds(resources, bucket, where)
    if not not_action and not not_resource:
        _check_actions_apply(actions, kinds, where)
    conditions = _parse_conditions(raw["Condition"], where) if "Condition" in raw else []
    return _Statement(
        deny=effect == "Deny",
        principals=_parse_principals(principal, where),
        not_principal=not_principal,
        actions=_Matcher([action.lower() for action in actions], _glob_tokens),
        not_action=not_action,
        resources=_Matcher(resources, _arn_tokens),
        not_resource=not_resource,
        conditions=tuple(conditions),
    )


# --------------------------------------------------------------------------------------------
# Public access (GetBucketPolicyStatus)
# --------------------------------------------------------------------------------------------

# Condition keys that tie a grant to fixed, trusted values: S3 does not count a statement
# restricted by one of them as public ("The meaning of public", S3 Block Public Access).
_TRUST_KEYS = frozenset({
    "aws:sourcearn", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceowner", "aws:sourceaccount",
    "s3:x-amz-server-side-encryption-aws-kms-key-id", "aws:userid", "aws:principalaccount",
    "aws:principalarn", "aws:principalorgid", "s3:dataaccesspointarn",
    "s3:dataaccesspointaccount",
})
_FIXED_FAMILIES = frozenset({"StringEquals", "StringEqualsIgnoreCase", "StringLike", "Arn"})
_PRIVATE_V4 = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_ROLE_SESSIONS = re.compile(r"[^*?]+:\*")


def _narrow(network: _Network) -> bool:
    """A CIDR S3 treats as a real restriction: no wider than /8 (IPv4) or /32 (IPv6), or
    private."""
    if isinstance(network, ipaddress.IPv4Network):
        return network.prefixlen >= 8 or any(network.subnet_of(p) for p in _PRIVATE_V4)
    return network.prefixlen >= 32


def _restricts(condition: _Condition) -> bool:
    """Whether a condition limits a grant to trusted requesters (so it is not public)."""
    if condition.if_exists or condition.negated or condition.qualifier == _ALL:
        return False  # each of these holds for a request that lacks the key
    if condition.key == "aws:sourceip":
        if condition.family != "IpAddress":
            return False
        networks = _parse_networks(list(condition.values), "")
        return all(_narrow(network) for network in networks)
    if condition.key not in _TRUST_KEYS or condition.family not in _FIXED_FAMILIES:
        return False
    for value in condition.values:
        fixed = not _has_wildcard(value)
        if condition.key == "aws:userid" and _ROLE_SESSIONS.fullmatch(value):
            fixed = True  # "AROLEID:*" is any session of one role
        if not fixed:
            return False
    return True


def _is_public(statement: _Statement) -> bool:
    if statement.deny:
        return False
    # NotPrincipal in an Allow grants to everybody but the principals it names.
    if not (statement.principals.everyone or statement.not_principal):
        return False
    return not any(_restricts(condition) for condition in statement.conditions)


# --------------------------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------------------------


class BucketPolicy:
    """A validated, compiled bucket policy."""

    __slots__ = ("_allows", "_denies", "_public")

    def __init__(self, statements: Sequence[_Statement]) -> None:
        # Denies first: one match ends the evaluation.
        self._denies = tuple(s for s in statements if s.deny)
        self._allows = tuple(s for s in statements if not s.deny)
        self._public = any(_is_public(s) for s in statements)

    @classmethod
    def parse(cls, document: bytes, bucket: str) -> BucketPolicy:
        """Validate and compile the policy ``document`` put on ``bucket``.

        Raises ``errors.MalformedPolicy`` with a message naming the statement and element at
        fault, including for a policy over :data:`MAX_POLICY_SIZE`.
        """
        raw = _load_json(document)
        unknown = [field for field in raw if field not in ("Version", "Id", "Statement")]
        if unknown:
            raise _malformed(f"Unknown field {unknown[0]}")
        version = raw.get("Version")
        if version is not None and (not isinstance(version, str) or version not in _VERSIONS):
            raise _malformed(f"Policy has an invalid version: {version}")
        if "Statement" not in raw:
            raise _malformed("Missing required field Statement")
        items = raw["Statement"]
        items = items if isinstance(items, list) else [items]
        if not items:
            raise _malformed("Could not parse the policy: Statement is empty!")
        return cls([_parse_statement(item, f"statement {i}", bucket)
                    for i, item in enumerate(items, start=1)])

    def evaluate(self, facts: RequestFacts) -> Decision:
        """The policy's decision on a request: DENY, ALLOW, or NONE when no statement
        applies."""
        action = facts.action.lower()
        for statement in self._denies:
            if statement.applies(facts, action):
                return Decision.DENY
        for statement in self._allows:
            if statement.applies(facts, action):
                return Decision.ALLOW
        return Decision.NONE

    def grants_public_access(self) -> bool:
        """Whether an Allow statement grants to everybody (Principal "*" or {"AWS": "*"}, or a
        NotPrincipal) without a condition tying it to trusted sources: GetBucketPolicyStatus's
        IsPublic."""
        return self._public


def _load_json(document: bytes) -> dict[str, Any]:
    if len(document) > _MAX_RAW_SIZE:
        raise _malformed(f"Policies must be less than {MAX_POLICY_SIZE // 1024} KB")
    if not document.startswith(b"{"):
        raise _malformed("Policies must be valid JSON and the first byte must be '{'")
    try:
        raw = json.loads(document.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _malformed(f"This policy contains invalid Json: {exc}") from None
    if not isinstance(raw, dict):
        raise _malformed("Policies must be valid JSON and the first byte must be '{'")
    # S3 counts the policy without insignificant whitespace.
    if len(document) > MAX_POLICY_SIZE:
        compact = json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
        if len(compact) > MAX_POLICY_SIZE:
            raise _malformed(f"Policies must be less than {MAX_POLICY_SIZE // 1024} KB")
    return raw
