"""Static websites: the PutBucketWebsite document and the website endpoint's decisions.

Pure: no HTTP framework and no storage. The handlers (:mod:`cargohold.handlers.bucket_config`)
parse, store (:meth:`WebsiteConfig.to_json`) and render the configuration; the website
endpoint (:mod:`cargohold.http.website`) asks it where a request goes.

What S3 does, as AWS documents it and as recorded against it (LocalStack's AWS-validated
website tests, ceph s3-tests' website suite run against AWS):

- A configuration is either ``RedirectAllRequestsTo`` alone (a ``HostName``, an optional
  ``Protocol``), or an ``IndexDocument`` with an optional ``ErrorDocument`` and up to 50
  ``RoutingRules``. ``InvalidArgument`` for a missing or malformed index suffix (empty, or
  with a slash) and for RedirectAllRequestsTo beside anything else; ``InvalidRequest`` for a
  protocol other than http/https, a rule with both ReplaceKeyPrefixWith and ReplaceKeyWith,
  an empty Condition, a redirect code outside 3XX-but-300 or an error code outside
  4XX/5XX; ``MalformedXML`` for any other shape fault.
- Routing rules are tried in document order. A rule without a condition, or whose condition
  is only ``KeyPrefixEquals``, redirects before the object is looked up; a rule with
  ``HttpErrorCodeReturnedEquals`` redirects only a request that failed with that status
  (and whose key starts with the rule's prefix, when it has one).
- A redirect keeps the request's host and protocol unless the rule names its own;
  ``ReplaceKeyWith`` replaces the whole key, ``ReplaceKeyPrefixWith`` the prefix the
  condition matched (so with no prefix it is prepended); the status is ``HttpRedirectCode``,
  301 by default. Redirect bodies are empty.
- ``/`` and any path ending in ``/`` serve ``<path><Suffix>``; ``/dir`` with no object ``dir``
  but an object ``dir/<Suffix>`` answers ``302`` to ``/dir/``.
- Errors are HTML pages (never S3 XML); 403 and 404 serve the ``ErrorDocument`` with that
  status when it is readable, else the default page names what went wrong with it too.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.etree.ElementTree import Element

from cargohold import errors, xmlutil

MAX_DOCUMENT_SIZE = 64 * 1024
MAX_ROUTING_RULES = 50
PROTOCOLS = ("http", "https")
DEFAULT_REDIRECT_CODE = 301
# Statuses for which S3 serves the bucket's ErrorDocument instead of its own page.
ERROR_DOCUMENT_STATUSES = frozenset({403, 404})
# Characters left as they are in a key put into a Location header (RFC 3986 pchar and "/").
_PATH_SAFE = "/!$&'()*+,;=:@~"

# S3's messages, verbatim.
NO_INDEX = "A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty"
BAD_SUFFIX = "The IndexDocument Suffix is not well formed"
REDIRECT_ALL_ALONE = ("RedirectAllRequestsTo cannot be provided in conjunction with other "
                      "Routing Rules.")
BAD_PROTOCOL = ("Invalid protocol, protocol can be http or https. If not defined the protocol "
                "will be selected automatically.")
BOTH_REPLACEMENTS = "You can only define ReplaceKeyPrefix or ReplaceKey but not both."
EMPTY_CONDITION = ("Condition cannot be empty. To redirect all requests without a condition, "
                   "the condition element shouldn't be present.")
BLANK_HOST = ("The HostName cannot be blank. To redirect within the same domain, the element "
              "should not be present.")
NO_HOST = 'A host name must be provided to redirect all requests (e.g. "example.com").'

_ROOT_ELEMENTS = ("RedirectAllRequestsTo", "IndexDocument", "ErrorDocument", "RoutingRules")
_REDIRECT_ELEMENTS = ("HostName", "HttpRedirectCode", "Protocol", "ReplaceKeyPrefixWith",
                      "ReplaceKeyWith")
_CONDITION_ELEMENTS = ("HttpErrorCodeReturnedEquals", "KeyPrefixEquals")


@dataclass(frozen=True)
class Condition:
    """When a routing rule applies: a key prefix, an error status, or both."""

    key_prefix: str | None = None
    error_code: int | None = None


@dataclass(frozen=True)
class Redirect:
    """Where a routing rule sends the request (every member optional)."""

    host_name: str | None = None
    protocol: str | None = None
    http_redirect_code: int | None = None
    replace_key_prefix_with: str | None = None
    replace_key_with: str | None = None


@dataclass(frozen=True)
class RoutingRule:
    redirect: Redirect
    condition: Condition | None = None

    @property
    def before_lookup(self) -> bool:
        """Whether the rule is decided by the key alone (tried before the object is read)."""
        return self.condition is None or self.condition.error_code is None

    def matches(self, key: str, error_code: int | None) -> bool:
        """Whether the rule applies to ``key`` answered with ``error_code`` (None: not yet
        looked up, so only rules without an error-code condition can match)."""
        condition = self.condition
        if condition is None:
            return error_code is None
        if condition.error_code != error_code:
            return False
        return condition.key_prefix is None or key.startswith(condition.key_prefix)

    def location(self, key: str, scheme: str, host: str) -> str:
        """The Location of this rule's redirect for ``key`` requested as scheme://host."""
        redirect = self.redirect
        if redirect.replace_key_with is not None:
            new_key = redirect.replace_key_with
        elif redirect.replace_key_prefix_with is not None:
            prefix = (self.condition.key_prefix if self.condition is not None else None) or ""
            new_key = redirect.replace_key_prefix_with + key[len(prefix):]
        else:
            new_key = key
        return (f"{redirect.protocol or scheme}://{redirect.host_name or host}/"
                f"{quote(new_key, safe=_PATH_SAFE)}")

    @property
    def status(self) -> int:
        return self.redirect.http_redirect_code or DEFAULT_REDIRECT_CODE


@dataclass(frozen=True)
class RedirectAll:
    host_name: str
    protocol: str | None = None

    def location(self, raw_path: str, scheme: str) -> str:
        """Where a request for ``raw_path`` (as received, with its leading slash) goes."""
        return f"{self.protocol or scheme}://{self.host_name}{raw_path or '/'}"


@dataclass(frozen=True)
class WebsiteConfig:
    """A bucket's website configuration: a redirect of everything, or a site."""

    index_suffix: str = ""
    error_key: str | None = None
    routing_rules: tuple[RoutingRule, ...] = ()
    redirect_all: RedirectAll | None = None

    @classmethod
    def parse(cls, body: bytes, max_size: int = MAX_DOCUMENT_SIZE) -> WebsiteConfig:
        """Read and validate a PutBucketWebsite body, raising the error S3 answers with."""
        root = xmlutil.parse(body, max_size)
        if root.tag != "WebsiteConfiguration":
            raise errors.MalformedXML()
        parts = _single_children(root, _ROOT_ELEMENTS)
        redirect_all = parts.get("RedirectAllRequestsTo")
        if redirect_all is not None:
            if len(parts) > 1:
                raise errors.InvalidArgument(REDIRECT_ALL_ALONE,
                                             ArgumentName="RedirectAllRequestsTo",
                                             ArgumentValue="not null")
            return cls(redirect_all=_read_redirect_all(redirect_all))
        index = parts.get("IndexDocument")
        if index is None:
            raise errors.InvalidArgument(NO_INDEX, ArgumentName="IndexDocument",
                                         ArgumentValue="null")
        suffix = _leaf_texts(index, ("Suffix",)).get("Suffix", "")
        if not suffix or "/" in suffix:
            fields = {"ArgumentName": "IndexDocument"}
            if suffix:
                fields["ArgumentValue"] = suffix
            raise errors.InvalidArgument(BAD_SUFFIX, **fields)
        error_key = None
        error_document = parts.get("ErrorDocument")
        if error_document is not None:
            error_key = _leaf_texts(error_document, ("Key",)).get("Key")
            if not error_key:
                raise errors.MalformedXML()
        rules: tuple[RoutingRule, ...] = ()
        rules_element = parts.get("RoutingRules")
        if rules_element is not None:
            if len(rules_element) == 0 or (rules_element.text or "").strip():
                raise errors.MalformedXML()
            if len(rules_element) > MAX_ROUTING_RULES:
                raise errors.InvalidRequest(
                    f"The number of routing rules must not exceed {MAX_ROUTING_RULES}.")
            rules = tuple(_read_rule(element) for element in rules_element)
        return cls(index_suffix=suffix, error_key=error_key, routing_rules=rules)

    def to_xml(self) -> bytes:
        """The GetBucketWebsite body, members in the order of S3's API model."""
        parts: list[str] = []
        if self.redirect_all is not None:
            parts.append("<RedirectAllRequestsTo>"
                         + xmlutil.element("HostName", self.redirect_all.host_name)
                         + _optional("Protocol", self.redirect_all.protocol)
                         + "</RedirectAllRequestsTo>")
            return xmlutil.document("WebsiteConfiguration", parts)
        parts.append(f"<IndexDocument>{xmlutil.element('Suffix', self.index_suffix)}"
                     "</IndexDocument>")
        if self.error_key is not None:
            parts.append(f"<ErrorDocument>{xmlutil.element('Key', self.error_key)}"
                         "</ErrorDocument>")
        if self.routing_rules:
            parts.append("<RoutingRules>")
            parts.extend(map(_rule_xml, self.routing_rules))
            parts.append("</RoutingRules>")
        return xmlutil.document("WebsiteConfiguration", parts)

    def to_json(self) -> str:
        """A compact JSON form for storage, named as S3's API names the members."""
        item: dict[str, Any] = {}
        if self.redirect_all is not None:
            item["RedirectAllRequestsTo"] = _drop_none(
                {"HostName": self.redirect_all.host_name,
                 "Protocol": self.redirect_all.protocol})
        else:
            item["IndexDocument"] = {"Suffix": self.index_suffix}
            if self.error_key is not None:
                item["ErrorDocument"] = {"Key": self.error_key}
            if self.routing_rules:
                item["RoutingRules"] = [_rule_json(rule) for rule in self.routing_rules]
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> WebsiteConfig:
        """The configuration :meth:`to_json` wrote (trusted: it was validated when put)."""
        item = json.loads(text)
        if "RedirectAllRequestsTo" in item:
            redirect_all = item["RedirectAllRequestsTo"]
            return cls(redirect_all=RedirectAll(str(redirect_all["HostName"]),
                                                redirect_all.get("Protocol")))
        error = item.get("ErrorDocument")
        return cls(index_suffix=str(item["IndexDocument"]["Suffix"]),
                   error_key=None if error is None else str(error["Key"]),
                   routing_rules=tuple(map(_rule_from_json, item.get("RoutingRules", ()))))

    # --- the website endpoint's decisions ---

    def rule_for(self, key: str, error_code: int | None = None) -> RoutingRule | None:
        """The first routing rule that redirects ``key``: before the lookup with
        ``error_code`` None, after a failed one with its HTTP status."""
        for rule in self.routing_rules:
            if rule.matches(key, error_code):
                return rule
        return None

    def index_key(self, key: str) -> str:
        """The object a request for ``key`` reads: a folder (``""`` or ending in ``/``)
        reads its index document."""
        return key + self.index_suffix if key == "" or key.endswith("/") else key

    def folder_index_key(self, key: str) -> str:
        """The index document that makes ``key`` (without a trailing slash) a folder."""
        return f"{key}/{self.index_suffix}"


def folder_location(key: str) -> str:
    """The Location of the ``302`` from ``/dir`` to ``/dir/`` (relative, as S3 sends it)."""
    return "/" + quote(key, safe=_PATH_SAFE) + "/"


def error_page(status: int, reason: str, code: str, message: str, details: dict[str, str],
               request_id: str, error_document: tuple[str, str, str] | None = None) -> bytes:
    """S3's HTML error page: ``details`` (``Key``, ``BucketName`` ...) listed after the
    message; ``error_document`` is (code, message, key) of a failure to read the bucket's
    ErrorDocument, listed in a second section as S3 does."""
    items = [f"<li>Code: {html.escape(code)}</li>",
             f"<li>Message: {html.escape(message)}</li>"]
    items.extend(f"<li>{html.escape(name)}: {html.escape(value)}</li>"
                 for name, value in details.items())
    items.append(f"<li>RequestId: {html.escape(request_id)}</li>")
    items.append(f"<li>HostId: {html.escape(request_id)}</li>")
    nested = ""
    if error_document is not None:
        doc_code, doc_message, doc_key = error_document
        nested = ("<h3>An Error Occurred While Attempting to Retrieve a Custom Error Document"
                  "</h3>\n<ul>\n"
                  f"<li>Code: {html.escape(doc_code)}</li>\n"
                  f"<li>Message: {html.escape(doc_message)}</li>\n"
                  f"<li>Key: {html.escape(doc_key)}</li>\n</ul>\n")
    title = f"{status} {html.escape(reason)}"
    return (f"<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n"
            "<ul>\n" + "\n".join(items) + "\n</ul>\n" + nested + "<hr/>\n</body>\n</html>\n"
            ).encode()


def _single_children(element: Element, allowed: tuple[str, ...]) -> dict[str, Element]:
    """An element's children by name; ``MalformedXML`` for an unknown, repeated or text one."""
    found: dict[str, Element] = {}
    if (element.text or "").strip():
        raise errors.MalformedXML()
    for child in element:
        if child.tag not in allowed or child.tag in found or (child.tail or "").strip():
            raise errors.MalformedXML()
        found[child.tag] = child
    return found


def _leaf_texts(element: Element, allowed: tuple[str, ...]) -> dict[str, str]:
    """Text children by name (each at most once, no nested elements)."""
    children = _single_children(element, allowed)
    if any(len(child) for child in children.values()):
        raise errors.MalformedXML()
    return {name: child.text or "" for name, child in children.items()}


def _read_redirect_all(element: Element) -> RedirectAll:
    values = _leaf_texts(element, ("HostName", "Protocol"))
    if "HostName" not in values:
        raise errors.MalformedXML()
    if not values["HostName"]:
        raise errors.InvalidRequest(NO_HOST)
    protocol = values.get("Protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        raise errors.InvalidRequest(BAD_PROTOCOL)
    return RedirectAll(values["HostName"], protocol)


def _read_rule(element: Element) -> RoutingRule:
    if element.tag != "RoutingRule":
        raise errors.MalformedXML()
    parts = _single_children(element, ("Condition", "Redirect"))
    if "Redirect" not in parts:
        raise errors.MalformedXML()
    redirect = _leaf_texts(parts["Redirect"], _REDIRECT_ELEMENTS)
    condition = (_leaf_texts(parts["Condition"], _CONDITION_ELEMENTS)
                 if "Condition" in parts else None)
    # Checked in the order S3 reports them.
    if "ReplaceKeyPrefixWith" in redirect and "ReplaceKeyWith" in redirect:
        raise errors.InvalidRequest(BOTH_REPLACEMENTS)
    if condition is not None and not condition:
        raise errors.InvalidRequest(EMPTY_CONDITION)
    protocol = redirect.get("Protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        raise errors.InvalidRequest(BAD_PROTOCOL)
    host = redirect.get("HostName")
    if host is not None and not host:
        raise errors.InvalidRequest(BLANK_HOST)
    code = _status(redirect.get("HttpRedirectCode"))
    if code is not None and not 300 < code < 400:
        raise errors.InvalidRequest(f"The provided HTTP redirect code ({code}) is not valid. "
                                    "Valid codes are 3XX except 300.")
    error_code = _status(condition.get("HttpErrorCodeReturnedEquals")) if condition else None
    if error_code is not None and not 400 <= error_code < 600:
        raise errors.InvalidRequest(f"The provided HTTP error code ({error_code}) is not "
                                    "valid. Valid codes are 4XX or 5XX.")
    return RoutingRule(
        redirect=Redirect(host_name=host, protocol=protocol, http_redirect_code=code,
                          replace_key_prefix_with=redirect.get("ReplaceKeyPrefixWith"),
                          replace_key_with=redirect.get("ReplaceKeyWith")),
        condition=None if condition is None else Condition(
            key_prefix=condition.get("KeyPrefixEquals"), error_code=error_code),
    )


def _status(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise errors.MalformedXML()
    return int(text)


def _optional(name: str, value: str | int | None) -> str:
    return "" if value is None else xmlutil.element(name, str(value))


def _rule_xml(rule: RoutingRule) -> str:
    parts = ["<RoutingRule>"]
    if rule.condition is not None:
        parts.append("<Condition>"
                     + _optional("HttpErrorCodeReturnedEquals", rule.condition.error_code)
                     + _optional("KeyPrefixEquals", rule.condition.key_prefix)
                     + "</Condition>")
    redirect = rule.redirect
    parts.append("<Redirect>"
                 + _optional("HostName", redirect.host_name)
                 + _optional("HttpRedirectCode", redirect.http_redirect_code)
                 + _optional("Protocol", redirect.protocol)
                 + _optional("ReplaceKeyPrefixWith", redirect.replace_key_prefix_with)
                 + _optional("ReplaceKeyWith", redirect.replace_key_with)
                 + "</Redirect></RoutingRule>")
    return "".join(parts)


def _drop_none(item: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in item.items() if value is not None}


def _rule_json(rule: RoutingRule) -> dict[str, Any]:
    redirect = rule.redirect
    item: dict[str, Any] = {"Redirect": _drop_none({
        "HostName": redirect.host_name, "HttpRedirectCode": redirect.http_redirect_code,
        "Protocol": redirect.protocol,
        "ReplaceKeyPrefixWith": redirect.replace_key_prefix_with,
        "ReplaceKeyWith": redirect.replace_key_with})}
    if rule.condition is not None:
        item["Condition"] = _drop_none({"HttpErrorCodeReturnedEquals": rule.condition.error_code,
                                        "KeyPrefixEquals": rule.condition.key_prefix})
    return item


def _rule_from_json(item: dict[str, Any]) -> RoutingRule:
    redirect = item["Redirect"]
    condition = item.get("Condition")
    return RoutingRule(
        redirect=Redirect(host_name=redirect.get("HostName"), protocol=redirect.get("Protocol"),
                          http_redirect_code=redirect.get("HttpRedirectCode"),
                          replace_key_prefix_with=redirect.get("ReplaceKeyPrefixWith"),
                          replace_key_with=redirect.get("ReplaceKeyWith")),
        condition=None if condition is None else Condition(
            key_prefix=condition.get("KeyPrefixEquals"),
            error_code=condition.get("HttpErrorCodeReturnedEquals")),
    )
