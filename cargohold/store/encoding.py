"""How both metadata stores encode what they keep: keys, JSON columns, manifests, version
ids, and the key-range arithmetic of listings.

Pure functions, shared by :mod:`cargohold.store.sqlite` and :mod:`cargohold.store.postgres`
so the two stores order, page and decode exactly alike.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import cast

from cargohold import errors
from cargohold.store.base import PartRef


def key_bytes(key: str) -> bytes:
    """A key as stored: its UTF-8 bytes (``InvalidArgument`` for unencodable strings)."""
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise errors.InvalidArgument("Object key is not valid UTF-8.") from exc


def successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with ``prefix``.

    Trailing 0xFF bytes cannot be incremented, so they are dropped and the carry moves left;
    ``None`` means no such string exists (empty prefix or all 0xFF), i.e. no upper bound.
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def scan_start(prefix: bytes, delimiter: bytes, marker: bytes) -> bytes | None:
    """The inclusive lower bound of keys after ``marker`` under ``prefix``.

    ``marker + b"\\0"`` is the smallest byte string greater than ``marker``. A marker under
    a common prefix (typically the prefix itself: a previous page's NextMarker) means that
    prefix was already returned, so the bound moves past everything under it. ``None``:
    nothing can follow.
    """
    if marker < prefix:
        return prefix
    if delimiter and marker.startswith(prefix):
        cut = marker.find(delimiter, len(prefix))
        if cut >= 0:
            return successor(marker[: cut + len(delimiter)])
    return marker + b"\x00"


def dumps(value: dict[str, str]) -> str:
    """A string map as a JSON column (``"{}"`` for the common empty case)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if value else "{}"


def loads(text: str) -> dict[str, str]:
    """A JSON column back as a string map."""
    # Most objects have no stored headers/metadata/checksums: skip the JSON parser then.
    if text == "{}":
        return {}
    return cast(dict[str, str], json.loads(text))


def parts_json(parts: Sequence[PartRef]) -> str:
    """A multipart object's manifest as a JSON column."""
    if not parts:
        return "[]"
    return json.dumps(
        [[p.number, p.blob_id, p.size, p.etag, p.checksums] for p in parts],
        separators=(",", ":"),
    )


def parts_from_json(text: str) -> tuple[PartRef, ...]:
    """The manifest :func:`parts_json` wrote."""
    if text == "[]":
        return ()
    return tuple(
        PartRef(number=n, blob_id=b, size=s, etag=e, checksums=c)
        for n, b, s, e, c in json.loads(text)
    )


def new_version_id(seq: int) -> str:
    """16 hex digits of the version's place in its key's history (ids sort by age) and 16
    random ones (ids are not guessable from one another)."""
    return f"{seq:016x}{secrets.token_hex(8)}"
