"""S3 XML in and out.

Untrusted XML is parsed with defusedxml (no entities, no DTDs) after a size check, before
any other work. Output is built as text: listings of a thousand keys are on hot paths, and
string joins are several times cheaper than building an element tree.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from typing import Final
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from cargohold import errors

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'

XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                          "\r": "&#13;", "\n": "&#10;", "\t": "&#9;"})


def escape(text: str) -> str:
    """Escape text for an element or attribute (keys may hold any character)."""
    return text.translate(XML_ESCAPES)


def parse(body: bytes, max_size: int) -> Element:
    """Parse a request body; ``MalformedXML`` for anything not well-formed or too large.

    Namespaces are stripped from tags so handlers match on local names.
    """
    if len(body) > max_size:
        raise errors.MalformedXML("The XML you provided was larger than the maximum allowed.")
    if not body.strip():
        raise errors.MalformedXML()
    try:
        root: Element = DET.fromstring(body)
    except (DefusedXmlException, SyntaxError, ValueError) as exc:
        raise errors.MalformedXML() from exc
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            element.tag = element.tag.split("}", 1)[1]
    return root


def child_text(element: Element, name: str) -> str | None:
    found = element.find(name)
    return None if found is None else (found.text or "")


def element(name: str, text: str) -> str:
    return f"<{name}>{escape(text)}</{name}>"


def document(root: str, parts: Iterable[str]) -> bytes:
    """A complete S3 XML document with the S3 namespace on its root element."""
    return (f'{XML_DECL}<{root} xmlns="{S3_NS}">' + "".join(parts) + f"</{root}>").encode()


def iso_time(timestamp: float) -> str:
    """S3's timestamp form in XML: 2006-02-03T16:45:09.000Z (milliseconds)."""
    whole = int(timestamp)
    return _iso_seconds(whole) + _MILLIS[int((timestamp - whole) * 1000)]


# ".000Z" to ".999Z": a listing page formats a thousand of these (half the cost of a format).
_MILLIS: Final = tuple(f".{n:03d}Z" for n in range(1000))


@functools.lru_cache(maxsize=8192)
def _iso_seconds(whole: int) -> str:
    # A listing page formats a thousand timestamps, mostly from the same few seconds.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


def error_document(code: str, message: str, resource: str, request_id: str,
                   fields: dict[str, str]) -> bytes:
    extra = "".join(element(k, v) for k, v in fields.items())
    return (
        f"{XML_DECL}<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"{extra}<Resource>{escape(resource)}</Resource>"
        f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
    ).encode()
