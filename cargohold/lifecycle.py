"""Bucket lifecycle: the PutBucketLifecycleConfiguration document and when its rules act.

Pure: no HTTP framework and no storage. The handlers parse and render the document; the
object handlers ask :meth:`LifecycleConfig.expiration_for` and :meth:`LifecycleConfig.abort_for`
for the ``x-amz-expiration`` and ``x-amz-abort-*`` headers, and the lifecycle worker applies
the same arithmetic. The store keeps :meth:`LifecycleConfig.to_json`.

What Spaces supports, and so what is kept: rules filtered by key prefix only, with the
actions Expiration (Days, Date or ExpiredObjectDeleteMarker), NoncurrentVersionExpiration and
AbortIncompleteMultipartUpload. Tag and object-size filters and transitions between storage
classes (Spaces has one class) are refused with ``NotImplemented`` (501): the document is
valid S3, the feature is what is missing, and a 501 tells a client that retrying or fixing the
document will not help. They are refused only once the rest of the document has been found
valid, so a document S3 itself would refuse gets S3's answer.

Validation, as S3 answers it (its error-response table and what S3 was recorded answering, as
kept by ceph s3-tests, LocalStack, Swift's s3api and other S3 implementations):

- ``MalformedXML`` for anything outside the schema: another root, an unknown, repeated or
  misplaced element, a rule without Status or with a Status other than Enabled / Disabled,
  a rule with neither Filter nor Prefix, a Filter with more than one predicate (Prefix and
  And together), an Expiration with none or more than one of Days, Date and
  ExpiredObjectDeleteMarker, a NoncurrentVersionExpiration without NoncurrentDays, an
  AbortIncompleteMultipartUpload without DaysAfterInitiation, a number that is not an
  xsd:int, a Date that is not an xsd:dateTime, a document over :data:`MAX_DOCUMENT_SIZE`.
- ``InvalidRequest``: no rule, more than 1000, a rule without an action, a base-level Prefix
  in a configuration that uses Filter anywhere ("Lifecycle V2"), NewerNoncurrentVersions
  without Filter, overlapping prefixes for one kind of action without Filter ("Lifecycle
  V1"), ExpiredObjectDeleteMarker or AbortIncompleteMultipartUpload beside a tag or size
  filter.
- ``InvalidArgument``: an ID over 255 characters or given twice, a day count that is not
  positive, a Date that is not midnight UTC.

A rule without an ID (or with an empty one) gets a generated one, as S3 does.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import Any
from urllib.parse import quote
from xml.etree.ElementTree import Element

from cargohold import errors, xmlutil

# S3 publishes no size limit for this document; 1000 rules of ordinary size fit easily.
MAX_DOCUMENT_SIZE = 256 * 1024
MAX_RULES = 1000
MAX_ID_LENGTH = 255
_MAX_INT = 2**31 - 1  # day counts are xsd:int
_SECONDS_PER_DAY = 86400  # a Date is a real calendar midnight, whatever day_seconds says
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ENABLED = "Enabled"
DISABLED = "Disabled"
STATUSES = frozenset({ENABLED, DISABLED})

# How a rule gave its prefix; kept so GetBucketLifecycleConfiguration answers the same shape
# (SDKs and Terraform compare what they read back with what they wrote).
PREFIX_IN_FILTER = "Filter"  # <Filter><Prefix>p</Prefix></Filter>
PREFIX_IN_AND = "And"  # <Filter><And><Prefix>p</Prefix></And></Filter>
EMPTY_FILTER = "Empty"  # <Filter/>: every object
TOP_LEVEL_PREFIX = "Prefix"  # <Prefix>p</Prefix> beside Status (before "Lifecycle V2")
FILTER_FORMS = frozenset({PREFIX_IN_FILTER, PREFIX_IN_AND, EMPTY_FILTER, TOP_LEVEL_PREFIX})

# S3's messages, verbatim where S3 was recorded answering them.
NO_RULES = "At least one lifecycle rule must be specified."
TOO_MANY_RULES = (f"The number of lifecycle rules must not exceed the allowed limit of "
                  f"{MAX_RULES} rules.")
ID_TOO_LONG = f"ID length should not exceed allowed limit of {MAX_ID_LENGTH}"
DUPLICATE_ID = "Rule ID must be unique. Found same ID for more than one rule"
NO_ACTION = "At least one action needs to be specified in a rule"
PREFIX_IN_V2 = ("Base level prefix cannot be used in Lifecycle V2, prefixes are only "
                "supported in the Filter.")
NEWER_IN_V1 = "NewerNoncurrentVersions element can only be used in Lifecycle V2."
EXPIRATION_DAYS = "'Days' for Expiration action must be a positive integer"
NONCURRENT_DAYS = ("'NoncurrentDays' for NoncurrentVersionExpiration action must be a "
                   "positive integer")
NEWER_VERSIONS = ("'NewerNoncurrentVersions' for NoncurrentVersionExpiration action must be "
                  "a positive integer")
ABORT_DAYS = ("'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a "
              "positive integer")
NOT_MIDNIGHT = "'Date' must be at midnight GMT"
MARKER_WITH_TAGS = "ExpiredObjectDeleteMarker cannot be specified with Tags."
MARKER_WITH_SIZE = "ExpiredObjectDeleteMarker cannot be specified with Object Size."
ABORT_WITH_TAGS = "AbortIncompleteMultipartUpload cannot be specified with Tags."
ABORT_WITH_SIZE = "AbortIncompleteMultipartUpload cannot be specified with Object Size."
# Refusals of what Spaces lacks (501 NotImplemented, see the module docstring).
TAGS_UNSUPPORTED = ("Lifecycle rules filtered by object tags are not supported: filter by "
                    "key prefix only.")
SIZES_UNSUPPORTED = ("Lifecycle rules filtered by object size are not supported: filter by "
                     "key prefix only.")
TRANSITIONS_UNSUPPORTED = ("Lifecycle transitions are not supported: there is a single "
                           "storage class. Use Expiration, NoncurrentVersionExpiration or "
                           "AbortIncompleteMultipartUpload.")

_RULE_ELEMENTS = ("ID", "Prefix", "Filter", "Status", "Expiration", "Transition",
                  "NoncurrentVersionTransition", "NoncurrentVersionExpiration",
                  "AbortIncompleteMultipartUpload")
_REPEATABLE = frozenset({"Transition", "NoncurrentVersionTransition"})
_INT = re.compile(r"[+-]?[0-9]+")
# xsd:dateTime: a date, a time, optional fraction and zone (no zone: read as UTC).
_DATE_TIME = re.compile(r"-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                        r"(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})?")
# What rule-id="..." carries as is: printable ASCII but the quote, the backslash and the
# percent sign (escaped so a client can percent-decode the ID unambiguously).
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\%')


@dataclass(frozen=True)
class LifecycleRule:
    """One ``<Rule>``, validated: a key prefix and the actions Spaces supports.

    ``expiration_date`` is the Unix time of the Date (a midnight UTC);
    ``expired_object_delete_marker`` is None when the element was not given.
    """

    rule_id: str
    status: str = ENABLED
    prefix: str = ""
    filter_form: str = PREFIX_IN_FILTER
    expiration_days: int | None = None
    expiration_date: int | None = None
    expired_object_delete_marker: bool | None = None
    noncurrent_days: int | None = None
    newer_noncurrent_versions: int | None = None
    abort_days: int | None = None

    @property
    def enabled(self) -> bool:
        """Whether the rule acts (a Disabled rule is kept but does nothing)."""
        return self.status == ENABLED

    def applies_to(self, key: str) -> bool:
        """Whether ``key`` is under the rule's prefix (the empty prefix covers every key)."""
        return key.startswith(self.prefix)

    def expires_at(self, created: float, day_seconds: float) -> float | None:
        """When the rule's Expiration (Days or Date) expires an object created at
        ``created``; None if it has neither."""
        if self.expiration_days is not None:
            return expiry_time(created, self.expiration_days, day_seconds)
        if self.expiration_date is not None:
            return float(self.expiration_date)
        return None


@dataclass(frozen=True)
class LifecycleConfig:
    """A bucket's lifecycle configuration: its rules in document order."""

    rules: tuple[LifecycleRule, ...]

    @classmethod
    def parse(cls, body: bytes, max_size: int = MAX_DOCUMENT_SIZE) -> LifecycleConfig:
        """Read and validate a PutBucketLifecycleConfiguration body, raising the error S3
        answers with (see the module docstring for which fault gets which code).

        The shape of every rule is checked first, then the IDs, then each rule's values in
        order, then what spans rules; unsupported features are refused last.
        """
        root = xmlutil.parse(body, max_size)
        if root.tag != "LifecycleConfiguration" or (root.text or "").strip():
            raise errors.MalformedXML()
        if any(child.tag != "Rule" or (child.tail or "").strip() for child in root):
            raise errors.MalformedXML()
        if len(root) == 0:
            raise errors.InvalidRequest(NO_RULES)
        if len(root) > MAX_RULES:
            raise errors.InvalidRequest(TOO_MANY_RULES)
        given = [_read_rule(element) for element in root]
        taken = _check_ids(given)
        # A Filter anywhere makes the configuration "Lifecycle V2", where base-level
        # prefixes (even beside that Filter) are refused.
        v2 = any(rule.has_filter for rule in given)
        if v2 and any(rule.has_prefix for rule in given):
            raise errors.InvalidRequest(PREFIX_IN_V2)
        rules = [_checked(rule, v2, taken) for rule in given]
        if not v2:
            _check_overlaps(given)
        for rule in given:
            if rule.tags:
                raise errors.NotImplementedError_(TAGS_UNSUPPORTED)
            if rule.sizes:
                raise errors.NotImplementedError_(SIZES_UNSUPPORTED)
            if rule.transitions:
                raise errors.NotImplementedError_(TRANSITIONS_UNSUPPORTED)
        return cls(tuple(rules))

    def to_xml(self) -> bytes:
        """The GetBucketLifecycleConfiguration body: rules in order, each filter in the
        shape it was given."""
        return xmlutil.document("LifecycleConfiguration", map(_rule_xml, self.rules))

    def to_json(self) -> str:
        """A compact JSON form for storage, named as S3's API names the members."""
        return json.dumps({"Rules": [_rule_json(rule) for rule in self.rules]},
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LifecycleConfig:
        """The configuration :meth:`to_json` wrote (trusted: it was validated when put)."""
        return cls(tuple(_rule_from_json(item) for item in json.loads(text)["Rules"]))

    def expiration_for(self, key: str, last_modified: float,
                       day_seconds: float) -> tuple[float, str] | None:
        """When the object ``key`` last modified at ``last_modified`` expires, and the ID of
        the rule that expires it, for ``x-amz-expiration``; None if no rule does.

        Among the enabled rules whose prefix ``key`` has and that have an Expiration with
        Days or Date, the earliest wins ("the shorter expiration policy is honored"), the
        first in document order on a tie.
        """
        return _earliest((rule.expires_at(last_modified, day_seconds), rule.rule_id)
                         for rule in self.rules if rule.enabled and rule.applies_to(key))

    def abort_for(self, key: str, initiated: float,
                  day_seconds: float) -> tuple[float, str] | None:
        """When an incomplete multipart upload of ``key`` initiated at ``initiated`` is
        aborted, and the rule's ID, for ``x-amz-abort-date`` / ``x-amz-abort-rule-id``; None
        if no enabled AbortIncompleteMultipartUpload rule covers ``key``. Earliest wins."""
        return _earliest(
            (None if rule.abort_days is None
             else expiry_time(initiated, rule.abort_days, day_seconds), rule.rule_id)
            for rule in self.rules if rule.enabled and rule.applies_to(key))


def expiry_time(created: float, days: int, day_seconds: float) -> float:
    """``days`` lifecycle days after ``created``, rounded up to the next day boundary.

    S3 "calculates the time by adding the number of days specified in the rule to the
    object creation time and rounding up the resulting time to the next day midnight UTC".
    With a general day length the boundaries are the multiples of ``day_seconds`` since the
    Unix epoch (for 86400: midnight UTC). A time already on a boundary is its own ceiling.
    """
    return math.ceil((created + days * day_seconds) / day_seconds) * day_seconds


def expiration_header(when: float, rule_id: str) -> str:
    """The ``x-amz-expiration`` value: ``expiry-date="Fri, 23 Dec 2012 00:00:00 GMT",
    rule-id="rule id"``.

    S3 sends the ID as it is (spaces included). Characters a quoted header value cannot
    carry (``"``, ``\\``, controls, non-ASCII) are percent-encoded as UTF-8, and so is
    ``%`` itself so that decoding is unambiguous.
    """
    return (f'expiry-date="{formatdate(int(when), usegmt=True)}", '
            f'rule-id="{quote(rule_id, safe=_HEADER_SAFE)}"')


def _earliest(candidates: Iterable[tuple[float | None, str]]) -> tuple[float, str] | None:
    best: tuple[float, str] | None = None
    for when, rule_id in candidates:
        if when is not None and (best is None or when < best[0]):
            best = (when, rule_id)
    return best


# --- reading the document ---


@dataclass
class _Given:
    """A rule as the document gives it: shape checked, values not yet."""

    rule_id: str | None
    status: str
    prefix: str
    filter_form: str
    has_filter: bool
    has_prefix: bool  # a base-level <Prefix>, beside a Filter or not
    tags: bool
    sizes: bool
    expiration: dict[str, str] | None
    noncurrent: dict[str, str] | None
    abort: dict[str, str] | None
    transitions: dict[str, int]  # Transition / NoncurrentVersionTransition: how many

    @property
    def has_action(self) -> bool:
        return (self.expiration is not None or self.noncurrent is not None
                or self.abort is not None or bool(self.transitions))

    def action_kinds(self) -> list[str]:
        """The kinds of action the rule takes, as S3 names them in overlap errors."""
        kinds = [name for name, part in (("Expiration", self.expiration),
                                         ("NoncurrentVersionExpiration", self.noncurrent),
                                         ("AbortIncompleteMultipartUpload", self.abort))
                 if part is not None]
        return kinds + list(self.transitions)


def _children(element: Element) -> list[Element]:
    """An element's children; ``MalformedXML`` for text beside them (mixed content)."""
    if (element.text or "").strip() or any((c.tail or "").strip() for c in element):
        raise errors.MalformedXML()
    return list(element)


def _leaf(element: Element) -> str:
    if len(element):
        raise errors.MalformedXML()
    return element.text or ""


def _leaves(element: Element, allowed: tuple[str, ...]) -> dict[str, str]:
    """Text children by name, each at most once; ``MalformedXML`` for anything else."""
    found: dict[str, str] = {}
    for child in _children(element):
        if child.tag not in allowed or child.tag in found:
            raise errors.MalformedXML()
        found[child.tag] = _leaf(child)
    return found


def _read_rule(element: Element) -> _Given:
    parts: dict[str, Element] = {}
    transitions: dict[str, int] = {}
    for child in _children(element):
        if child.tag not in _RULE_ELEMENTS:
            raise errors.MalformedXML()
        if child.tag in _REPEATABLE:
            _children(child)  # contents unchecked: refused as unsupported later
            transitions[child.tag] = transitions.get(child.tag, 0) + 1
        elif child.tag in parts:
            raise errors.MalformedXML()
        else:
            parts[child.tag] = child
    if "Status" not in parts or _leaf(parts["Status"]) not in STATUSES:
        raise errors.MalformedXML()
    if "Filter" in parts:
        # A base-level Prefix beside it is refused once the whole document is read.
        form, prefix, tags, sizes = _read_filter(parts["Filter"])
        if "Prefix" in parts:
            _leaf(parts["Prefix"])
    elif "Prefix" in parts:
        form, prefix, tags, sizes = TOP_LEVEL_PREFIX, _leaf(parts["Prefix"]), False, False
    else:
        raise errors.MalformedXML()
    rule_id = _leaf(parts["ID"]) if "ID" in parts else None
    return _Given(
        rule_id=rule_id or None,  # an empty ID is a missing one: S3 generates it
        status=_leaf(parts["Status"]),
        prefix=prefix, filter_form=form, has_filter="Filter" in parts,
        has_prefix="Prefix" in parts, tags=tags, sizes=sizes,
        expiration=_optional_leaves(parts, "Expiration",
                                    ("Days", "Date", "ExpiredObjectDeleteMarker")),
        noncurrent=_optional_leaves(parts, "NoncurrentVersionExpiration",
                                    ("NoncurrentDays", "NewerNoncurrentVersions")),
        abort=_optional_leaves(parts, "AbortIncompleteMultipartUpload",
                               ("DaysAfterInitiation",)),
        transitions=transitions,
    )


def _optional_leaves(parts: dict[str, Element], name: str,
                     allowed: tuple[str, ...]) -> dict[str, str] | None:
    return _leaves(parts[name], allowed) if name in parts else None


def _read_filter(element: Element) -> tuple[str, str, bool, bool]:
    """(form, prefix, has tags, has sizes) of a ``<Filter>``: empty or one predicate."""
    children = _children(element)
    if not children:
        return EMPTY_FILTER, "", False, False
    if len(children) > 1:  # the schema's choice: Prefix, Tag, a size or And, not several
        raise errors.MalformedXML()
    child = children[0]
    if child.tag == "Prefix":
        return PREFIX_IN_FILTER, _leaf(child), False, False
    if child.tag == "Tag":
        _read_tag(child)
        return PREFIX_IN_FILTER, "", True, False
    if child.tag in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
        _size(_leaf(child))
        return PREFIX_IN_FILTER, "", False, True
    if child.tag != "And":
        raise errors.MalformedXML()
    prefix: str | None = None
    tags = sizes = False
    seen: set[str] = set()
    for part in _children(child):
        if part.tag == "Tag":
            _read_tag(part)
            tags = True
            continue
        if part.tag in seen:
            raise errors.MalformedXML()
        seen.add(part.tag)
        if part.tag == "Prefix":
            prefix = _leaf(part)
        elif part.tag in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
            _size(_leaf(part))
            sizes = True
        else:
            raise errors.MalformedXML()
    if prefix is None and not tags and not sizes:
        raise errors.MalformedXML()  # an And of nothing
    return PREFIX_IN_AND, prefix or "", tags, sizes


def _read_tag(element: Element) -> None:
    if set(_leaves(element, ("Key", "Value"))) != {"Key", "Value"}:
        raise errors.MalformedXML()


def _size(text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise errors.MalformedXML()
    return int(text)


# --- checking the values ---


def _check_ids(given: list[_Given]) -> set[str]:
    """The IDs given; ``InvalidArgument`` for one too long or given twice."""
    taken: set[str] = set()
    for rule in given:
        if rule.rule_id is None:
            continue
        if len(rule.rule_id) > MAX_ID_LENGTH:
            raise errors.InvalidArgument(ID_TOO_LONG, ArgumentName="ID",
                                         ArgumentValue=rule.rule_id)
        if rule.rule_id in taken:
            raise errors.InvalidArgument(DUPLICATE_ID, ArgumentName="ID",
                                         ArgumentValue=rule.rule_id)
        taken.add(rule.rule_id)
    return taken


def _checked(rule: _Given, v2: bool, taken: set[str]) -> LifecycleRule:
    """One rule's values checked, with its ID (generated and added to ``taken`` if none)."""
    if not rule.has_action:
        raise errors.InvalidRequest(NO_ACTION)
    days = date = marker = None
    if rule.expiration is not None:
        if len(rule.expiration) != 1:  # none, or more than one, of the three
            raise errors.MalformedXML()
        if "Days" in rule.expiration:
            days = _positive(rule.expiration["Days"], EXPIRATION_DAYS)
        elif "Date" in rule.expiration:
            date = _midnight(rule.expiration["Date"])
        else:
            marker = _boolean(rule.expiration["ExpiredObjectDeleteMarker"])
    noncurrent_days = newer = None
    if rule.noncurrent is not None:
        if "NoncurrentDays" not in rule.noncurrent:
            raise errors.MalformedXML()
        noncurrent_days = _positive(rule.noncurrent["NoncurrentDays"], NONCURRENT_DAYS)
        if "NewerNoncurrentVersions" in rule.noncurrent:
            if not v2:
                raise errors.InvalidRequest(NEWER_IN_V1)
            newer = _positive(rule.noncurrent["NewerNoncurrentVersions"], NEWER_VERSIONS)
    abort_days = None
    if rule.abort is not None:
        if "DaysAfterInitiation" not in rule.abort:
            raise errors.MalformedXML()
        abort_days = _positive(rule.abort["DaysAfterInitiation"], ABORT_DAYS)
    if marker is not None and rule.tags:
        raise errors.InvalidRequest(MARKER_WITH_TAGS)
    if marker is not None and rule.sizes:
        raise errors.InvalidRequest(MARKER_WITH_SIZE)
    if abort_days is not None and rule.tags:
        raise errors.InvalidRequest(ABORT_WITH_TAGS)
    if abort_days is not None and rule.sizes:
        raise errors.InvalidRequest(ABORT_WITH_SIZE)
    rule_id = rule.rule_id
    if rule_id is None:
        rule_id = _generated_id(taken)
        taken.add(rule_id)
    return LifecycleRule(
        rule_id=rule_id, status=rule.status, prefix=rule.prefix, filter_form=rule.filter_form,
        expiration_days=days, expiration_date=date, expired_object_delete_marker=marker,
        noncurrent_days=noncurrent_days, newer_noncurrent_versions=newer,
        abort_days=abort_days)


def _check_overlaps(given: list[_Given]) -> None:
    """Without Filter ("Lifecycle V1"), two rules whose prefixes overlap (one begins the
    other) may not take the same kind of action: S3 would not know which applies.

    In sorted order, a prefix that begins another also begins its successor, so comparing
    neighbours finds every overlap.
    """
    by_kind: dict[str, list[str]] = {}
    for rule in given:
        for kind in rule.action_kinds():
            by_kind.setdefault(kind, []).append(rule.prefix)
    for kind, prefixes in by_kind.items():
        ordered = sorted(prefixes)
        for first, second in itertools.pairwise(ordered):
            if second.startswith(first):
                raise errors.InvalidRequest(f"Found overlapping prefixes '{first}' and "
                                            f"'{second}' for same action type '{kind}'")


def _integer(text: str) -> int:
    """An xsd:int; ``MalformedXML`` for anything else."""
    text = text.strip()
    if not _INT.fullmatch(text) or not -_MAX_INT - 1 <= int(text) <= _MAX_INT:
        raise errors.MalformedXML()
    return int(text)


def _positive(text: str, message: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise errors.InvalidArgument(message)
    return value


def _boolean(text: str) -> bool:
    text = text.strip()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise errors.MalformedXML()


def _midnight(text: str) -> int:
    """A Date's Unix time: ``MalformedXML`` if not an xsd:dateTime, ``InvalidArgument`` if
    not midnight UTC (``2026-01-01T00:00:00Z``, ``...00.000Z`` or ``+00:00``)."""
    text = text.strip()
    if not _DATE_TIME.fullmatch(text):
        raise errors.MalformedXML()
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:  # a month 13, a 25th hour, a year Python cannot hold
        raise errors.MalformedXML() from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp()
    if when.microsecond or seconds % _SECONDS_PER_DAY:
        raise errors.InvalidArgument(NOT_MIDNIGHT)
    return int(seconds)


def _generated_id(taken: set[str]) -> str:
    """A fresh ID like those S3 makes up (48 characters: a UUID, base64-encoded)."""
    while True:
        candidate = base64.b64encode(str(uuid.uuid4()).encode()).decode()
        if candidate not in taken:
            return candidate


# --- writing it back ---


def _iso_date(seconds: int) -> str:
    """A Date as S3 writes it back: ``2026-01-01T00:00:00.000Z``."""
    # Counted from the epoch rather than fromtimestamp/strftime, which fail or drop the
    # zero padding for years before 1000 on some platforms.
    day = _EPOCH + timedelta(seconds=seconds)
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}T00:00:00.000Z"


def _filter_xml(rule: LifecycleRule) -> str:
    prefix = xmlutil.element("Prefix", rule.prefix)
    if rule.filter_form == TOP_LEVEL_PREFIX:
        return prefix
    if rule.filter_form == EMPTY_FILTER:
        return "<Filter></Filter>"
    if rule.filter_form == PREFIX_IN_AND:
        return f"<Filter><And>{prefix}</And></Filter>"
    return f"<Filter>{prefix}</Filter>"


def _rule_xml(rule: LifecycleRule) -> str:
    parts = ["<Rule>", xmlutil.element("ID", rule.rule_id), _filter_xml(rule),
             xmlutil.element("Status", rule.status)]
    if rule.expiration_days is not None:
        parts.append(f"<Expiration><Days>{rule.expiration_days}</Days></Expiration>")
    elif rule.expiration_date is not None:
        parts.append(f"<Expiration><Date>{_iso_date(rule.expiration_date)}</Date>"
                     "</Expiration>")
    elif rule.expired_object_delete_marker is not None:
        flag = "true" if rule.expired_object_delete_marker else "false"
        parts.append(f"<Expiration><ExpiredObjectDeleteMarker>{flag}"
                     "</ExpiredObjectDeleteMarker></Expiration>")
    if rule.noncurrent_days is not None:
        parts.append(f"<NoncurrentVersionExpiration><NoncurrentDays>{rule.noncurrent_days}"
                     "</NoncurrentDays>")
        if rule.newer_noncurrent_versions is not None:
            parts.append(f"<NewerNoncurrentVersions>{rule.newer_noncurrent_versions}"
                         "</NewerNoncurrentVersions>")
        parts.append("</NoncurrentVersionExpiration>")
    if rule.abort_days is not None:
        parts.append(f"<AbortIncompleteMultipartUpload><DaysAfterInitiation>"
                     f"{rule.abort_days}</DaysAfterInitiation>"
                     "</AbortIncompleteMultipartUpload>")
    parts.append("</Rule>")
    return "".join(parts)


def _rule_json(rule: LifecycleRule) -> dict[str, Any]:
    item: dict[str, Any] = {"ID": rule.rule_id, "Status": rule.status}
    if rule.filter_form == TOP_LEVEL_PREFIX:
        item["Prefix"] = rule.prefix
    elif rule.filter_form == EMPTY_FILTER:
        item["Filter"] = {}
    elif rule.filter_form == PREFIX_IN_AND:
        item["Filter"] = {"And": {"Prefix": rule.prefix}}
    else:
        item["Filter"] = {"Prefix": rule.prefix}
    if rule.expiration_days is not None:
        item["Expiration"] = {"Days": rule.expiration_days}
    elif rule.expiration_date is not None:
        item["Expiration"] = {"Date": _iso_date(rule.expiration_date)}
    elif rule.expired_object_delete_marker is not None:
        item["Expiration"] = {"ExpiredObjectDeleteMarker": rule.expired_object_delete_marker}
    if rule.noncurrent_days is not None:
        noncurrent: dict[str, int] = {"NoncurrentDays": rule.noncurrent_days}
        if rule.newer_noncurrent_versions is not None:
            noncurrent["NewerNoncurrentVersions"] = rule.newer_noncurrent_versions
        item["NoncurrentVersionExpiration"] = noncurrent
    if rule.abort_days is not None:
        item["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": rule.abort_days}
    return item


def _rule_from_json(item: dict[str, Any]) -> LifecycleRule:
    if "Prefix" in item:
        form, prefix = TOP_LEVEL_PREFIX, str(item["Prefix"])
    elif "And" in item["Filter"]:
        form, prefix = PREFIX_IN_AND, str(item["Filter"]["And"].get("Prefix", ""))
    elif "Prefix" in item["Filter"]:
        form, prefix = PREFIX_IN_FILTER, str(item["Filter"]["Prefix"])
    else:
        form, prefix = EMPTY_FILTER, ""
    expiration = item.get("Expiration", {})
    noncurrent = item.get("NoncurrentVersionExpiration", {})
    date = expiration.get("Date")
    return LifecycleRule(
        rule_id=str(item["ID"]), status=str(item["Status"]), prefix=prefix, filter_form=form,
        expiration_days=expiration.get("Days"),
        expiration_date=None if date is None else _midnight(date),
        expired_object_delete_marker=expiration.get("ExpiredObjectDeleteMarker"),
        noncurrent_days=noncurrent.get("NoncurrentDays"),
        newer_noncurrent_versions=noncurrent.get("NewerNoncurrentVersions"),
        abort_days=item.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation"),
    )
