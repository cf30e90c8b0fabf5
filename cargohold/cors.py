"""Bucket CORS: the PutBucketCors document and the headers S3 answers with.

Pure: no HTTP framework and no storage. The dispatcher asks :meth:`CorsConfig.preflight`
about an OPTIONS request and :meth:`CorsConfig.actual` about any other request that carries
an ``Origin``; the store keeps :meth:`CorsConfig.to_json`.

What S3 does, as recorded against it (LocalStack's AWS-validated CORS snapshots, ceph
s3-tests) and as AWS documents it:

- The first rule (in document order) whose ``AllowedOrigin``, ``AllowedMethod`` and, when
  headers are requested, ``AllowedHeader`` all match is used; later rules are not consulted.
- Origins match case-sensitively, anchored at both ends; one ``*`` matches any run of
  characters, the empty run included (``http://*.example.com``, ``*``).
- Requested header names match case-insensitively, with the same ``*``; every one must match
  or the rule does not. A rule without ``AllowedHeader`` allows no requested header.
- A match answers ``Access-Control-Allow-Origin`` (``*`` for a ``*`` rule, else the request's
  origin, then with ``Access-Control-Allow-Credentials: true``), ``Access-Control-Allow-Methods``
  (the rule's methods joined by ``", "``), ``Access-Control-Expose-Headers`` and
  ``Access-Control-Max-Age`` when set, and a fixed ``Vary``. A preflight that requested
  headers also gets ``Access-Control-Allow-Headers``: the names, lower-cased, as requested.
  Actual responses carry the same headers, Max-Age included, minus Allow-Headers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element

from cargohold import errors, xmlutil

MAX_RULES = 100
MAX_DOCUMENT_SIZE = 64 * 1024  # "The document is limited to 64 KB in size." (PutBucketCors)
MAX_ID_LENGTH = 255
MAX_AGE_LIMIT = 2**31 - 1  # MaxAgeSeconds is an xsd:int
METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD"})
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"

# S3's messages, verbatim (the misspelt "evalution" included).
NOT_ENABLED = "CORSResponse: CORS is not enabled for this bucket."
NOT_ALLOWED = ("CORSResponse: This CORS request is not allowed. This is usually because the "
               "evalution of Origin, request method / Access-Control-Request-Method or "
               "Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.")
BUCKET_NOT_FOUND = "CORSResponse: Bucket not found"
ORIGIN_NEEDED = "Insufficient information. Origin request header needed."

_RULE_ELEMENTS = ("ID", "AllowedHeader", "AllowedMethod", "AllowedOrigin", "ExposeHeader",
                  "MaxAgeSeconds")


def forbidden(message: str, method: str, resource_type: str) -> errors.S3Error:
    """The 403 ``AccessForbidden`` of a refused OPTIONS, with S3's two extra elements.

    ``message`` is :data:`NOT_ENABLED`, :data:`NOT_ALLOWED` or :data:`BUCKET_NOT_FOUND`;
    ``method`` the Access-Control-Request-Method (``OPTIONS`` when there is none);
    ``resource_type`` ``BUCKET`` or ``OBJECT`` (S3 says ``BUCKET`` whenever no rules were
    evaluated, and for a bucket URL).
    """
    return errors.AccessForbidden(message, Method=method, ResourceType=resource_type)


def origin_needed() -> errors.S3Error:
    """The 400 ``BadRequest`` S3 answers to an OPTIONS request without ``Origin``."""
    return errors.BadRequest(ORIGIN_NEEDED)


def request_header_names(values: Iterable[str]) -> tuple[str, ...]:
    """Lower-cased names from ``Access-Control-Request-Headers`` value(s), in order.

    Accepts the raw header value(s) or names already split; empty list elements are
    dropped, as RFC 9110 asks, so ``"a,,b"`` and ``"a, b"`` give the same names.
    """
    names: list[str] = []
    for value in values:
        names.extend(name for part in value.split(",") if (name := part.strip().lower()))
    return tuple(names)


@dataclass(frozen=True)
class _Patterns:
    """A rule's origin or header patterns, compiled once for matching on every request."""

    exact: frozenset[str]
    wildcards: re.Pattern[str] | None  # every pattern with a `*` but `*` itself, or'ed
    anything: bool  # the pattern `*` itself is present

    @classmethod
    def compile(cls, patterns: Iterable[str], fold_case: bool) -> _Patterns:
        exact: set[str] = set()
        wild: list[str] = []
        anything = False
        for pattern in patterns:
            pattern = pattern.lower() if fold_case else pattern
            if pattern == "*":
                anything = True
            elif "*" in pattern:
                wild.append("(?:" + ".*".join(map(re.escape, pattern.split("*"))) + ")")
            else:
                exact.add(pattern)
        regex = re.compile("|".join(wild), re.DOTALL) if wild else None
        return cls(frozenset(exact), regex, anything)

    def specific(self, value: str) -> bool:
        """Whether a pattern other than the lone ``*`` matches ``value``."""
        return value in self.exact or (
            self.wildcards is not None and self.wildcards.fullmatch(value) is not None)

    def matches(self, value: str) -> bool:
        return self.anything or self.specific(value)


@dataclass(frozen=True)
class CorsRule:
    """One ``<CORSRule>``, as given (GetBucketCors returns the values unnormalized)."""

    allowed_origins: tuple[str, ...]
    allowed_methods: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int | None = None
    rule_id: str | None = None
    _origins: _Patterns = field(init=False, repr=False, compare=False)
    _headers: _Patterns = field(init=False, repr=False, compare=False)
    # The response headers that do not depend on the request, built once.
    _fixed: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_origins", _Patterns.compile(self.allowed_origins, False))
        object.__setattr__(self, "_headers", _Patterns.compile(self.allowed_headers, True))
        fixed = [("Access-Control-Allow-Methods", ", ".join(self.allowed_methods))]
        if self.expose_headers:
            fixed.append(("Access-Control-Expose-Headers", ", ".join(self.expose_headers)))
        if self.max_age_seconds is not None:
            fixed.append(("Access-Control-Max-Age", str(self.max_age_seconds)))
        fixed.append(("Vary", VARY))
        object.__setattr__(self, "_fixed", tuple(fixed))

    def allow_origin(self, origin: str) -> str | None:
        """The Access-Control-Allow-Origin this rule answers ``origin`` with, or None.

        ``*`` only when nothing but the lone ``*`` pattern matches: a rule that also names
        the origin echoes it (and so allows credentials).
        """
        if self._origins.specific(origin):
            return origin
        return "*" if self._origins.anything else None

    def allows_headers(self, names: Sequence[str]) -> bool:
        """Whether every (lower-cased) requested header name matches an AllowedHeader."""
        return all(self._headers.matches(name) for name in names)

    def response_headers(self, allow_origin: str) -> dict[str, str]:
        """The CORS headers of a response this rule matched (without Allow-Headers)."""
        headers = {"Access-Control-Allow-Origin": allow_origin}
        if allow_origin != "*":
            headers["Access-Control-Allow-Credentials"] = "true"
        headers.update(self._fixed)
        return headers


@dataclass(frozen=True)
class CorsConfig:
    """A bucket's CORS configuration: rules in document order, the first match wins."""

    rules: tuple[CorsRule, ...]
    # Rules per allowed method, order kept: a request only looks at rules for its method.
    _by_method: dict[str, tuple[CorsRule, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_method: dict[str, list[CorsRule]] = {}
        for rule in self.rules:
            for method in dict.fromkeys(rule.allowed_methods):
                by_method.setdefault(method, []).append(rule)
        object.__setattr__(self, "_by_method",
                           {method: tuple(rules) for method, rules in by_method.items()})

    @classmethod
    def parse(cls, body: bytes, max_size: int) -> CorsConfig:
        """Read and validate a PutBucketCors body, raising the error S3 answers with.

        The shape is checked for every rule before any value, so a document with both kinds
        of fault is ``MalformedXML``: another root or child, no rule or more than
        :data:`MAX_RULES`, a rule without AllowedOrigin or AllowedMethod, an unknown or nested
        element, two IDs or MaxAgeSeconds, a MaxAgeSeconds that is not a non-negative int.
        Then, per rule, ``InvalidRequest`` for a method other than GET PUT POST DELETE HEAD,
        an AllowedOrigin or AllowedHeader with more than one ``*``, or an ExposeHeader with
        any; ``InvalidArgument`` for an ID longer than 255 characters.
        """
        root = xmlutil.parse(body, max_size)
        if root.tag != "CORSConfiguration" or not 0 < len(root) <= MAX_RULES:
            raise errors.MalformedXML()
        rules = tuple(_read_rule(element) for element in root)
        for rule in rules:
            _validate(rule)
        return cls(rules)

    def to_xml(self) -> bytes:
        """The GetBucketCors body: each rule with only the members it has."""
        return xmlutil.document("CORSConfiguration", map(_rule_xml, self.rules))

    def to_json(self) -> str:
        """A compact JSON form for storage, named as S3's API names the members."""
        return json.dumps({"CORSRules": [_rule_json(rule) for rule in self.rules]},
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> CorsConfig:
        """The configuration :meth:`to_json` wrote (trusted: it was validated when put)."""
        return cls(tuple(_rule_from_json(item) for item in json.loads(text)["CORSRules"]))

    def preflight(self, origin: str, method: str,
                  request_headers: Sequence[str]) -> dict[str, str] | None:
        """Response headers for a matching OPTIONS, or None: the caller answers 403.

        ``method`` is Access-Control-Request-Method; ``request_headers`` the
        Access-Control-Request-Headers value(s), raw or split (see
        :func:`request_header_names`). A refusal is ``forbidden(NOT_ALLOWED, ...)``.
        """
        names = request_header_names(request_headers)
        found = self._match(origin, method, names)
        if found is None:
            return None
        rule, allow_origin = found
        headers = rule.response_headers(allow_origin)
        if names:
            headers["Access-Control-Allow-Headers"] = ", ".join(names)
        return headers

    def actual(self, origin: str, method: str,
               request_headers: Sequence[str] = ()) -> dict[str, str] | None:
        """CORS headers to add to a non-OPTIONS response (errors too); None: add none.

        S3 matches an actual request as it matches a preflight when the request carries the
        preflight headers: pass its Access-Control-Request-Method as ``method`` when present
        (else the request's method), and any Access-Control-Request-Headers as
        ``request_headers``. No match never refuses the request; it only goes without CORS
        headers. The request's real headers are not checked.
        """
        found = self._match(origin, method, request_header_names(request_headers))
        return None if found is None else found[0].response_headers(found[1])

    def _match(self, origin: str, method: str,
               names: Sequence[str]) -> tuple[CorsRule, str] | None:
        for rule in self._by_method.get(method, ()):
            allow_origin = rule.allow_origin(origin)
            if allow_origin is not None and rule.allows_headers(names):
                return rule, allow_origin
        return None


def _read_rule(element: Element) -> CorsRule:
    """A ``<CORSRule>``'s members; ``MalformedXML`` for anything but its schema's shape."""
    if element.tag != "CORSRule":
        raise errors.MalformedXML()
    values: dict[str, list[str]] = {name: [] for name in _RULE_ELEMENTS}
    for child in element:
        if child.tag not in values or len(child):
            raise errors.MalformedXML()
        values[child.tag].append(child.text or "")
    if (not values["AllowedOrigin"] or not values["AllowedMethod"]
            or len(values["ID"]) > 1 or len(values["MaxAgeSeconds"]) > 1):
        raise errors.MalformedXML()
    return CorsRule(
        allowed_origins=tuple(values["AllowedOrigin"]),
        allowed_methods=tuple(values["AllowedMethod"]),
        allowed_headers=tuple(values["AllowedHeader"]),
        expose_headers=tuple(values["ExposeHeader"]),
        max_age_seconds=_max_age(values["MaxAgeSeconds"]),
        rule_id=values["ID"][0] if values["ID"] else None,
    )


def _max_age(texts: list[str]) -> int | None:
    if not texts:
        return None
    text = texts[0].strip()  # xsd:int collapses whitespace
    if not text.isascii() or not text.isdigit() or int(text) > MAX_AGE_LIMIT:
        raise errors.MalformedXML()
    return int(text)


def _validate(rule: CorsRule) -> None:
    """The value checks S3 makes once the document has the right shape."""
    for method in rule.allowed_methods:
        if method not in METHODS:  # case-sensitive, like S3's enumeration
            raise errors.InvalidRequest(
                f"Found unsupported HTTP method in CORS config. Unsupported method is {method}")
    for origin in rule.allowed_origins:
        if origin.count("*") > 1:
            raise errors.InvalidRequest(
                f'AllowedOrigin "{origin}" can not have more than one wildcard.')
    for header in rule.allowed_headers:
        if header.count("*") > 1:
            raise errors.InvalidRequest(
                f'AllowedHeader "{header}" can not have more than one wildcard.')
    for header in rule.expose_headers:
        if "*" in header:
            raise errors.InvalidRequest(
                f'ExposeHeader "{header}" contains wildcard. '
                "We currently do not support wildcard for ExposeHeader.")
    if rule.rule_id is not None and len(rule.rule_id) > MAX_ID_LENGTH:
        raise errors.InvalidArgument("ID length should not exceed allowed limit of 255",
                                     ArgumentName="ID", ArgumentValue=rule.rule_id)


def _rule_xml(rule: CorsRule) -> str:
    # Members in the order of S3's API model (botocore's CORSRule shape).
    parts = ["<CORSRule>"]
    if rule.rule_id is not None:
        parts.append(xmlutil.element("ID", rule.rule_id))
    parts.extend(xmlutil.element("AllowedHeader", v) for v in rule.allowed_headers)
    parts.extend(xmlutil.element("AllowedMethod", v) for v in rule.allowed_methods)
    parts.extend(xmlutil.element("AllowedOrigin", v) for v in rule.allowed_origins)
    parts.extend(xmlutil.element("ExposeHeader", v) for v in rule.expose_headers)
    if rule.max_age_seconds is not None:
        parts.append(xmlutil.element("MaxAgeSeconds", str(rule.max_age_seconds)))
    parts.append("</CORSRule>")
    return "".join(parts)


def _rule_json(rule: CorsRule) -> dict[str, Any]:
    item: dict[str, Any] = {"AllowedOrigins": list(rule.allowed_origins),
                            "AllowedMethods": list(rule.allowed_methods)}
    if rule.allowed_headers:
        item["AllowedHeaders"] = list(rule.allowed_headers)
    if rule.expose_headers:
        item["ExposeHeaders"] = list(rule.expose_headers)
    if rule.max_age_seconds is not None:
        item["MaxAgeSeconds"] = rule.max_age_seconds
    if rule.rule_id is not None:
        item["ID"] = rule.rule_id
    return item


def _rule_from_json(item: dict[str, Any]) -> CorsRule:
    max_age = item.get("MaxAgeSeconds")
    rule_id = item.get("ID")
    return CorsRule(
        allowed_origins=tuple(map(str, item["AllowedOrigins"])),
        allowed_methods=tuple(map(str, item["AllowedMethods"])),
        allowed_headers=tuple(map(str, item.get("AllowedHeaders", ()))),
        expose_headers=tuple(map(str, item.get("ExposeHeaders", ()))),
        max_age_seconds=None if max_age is None else int(max_age),
        rule_id=None if rule_id is None else str(rule_id),
    )
