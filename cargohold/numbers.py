"""Reading decimal numbers out of headers, query parameters and documents."""

from __future__ import annotations


def decimal(text: str) -> int | None:
    """``text`` as a non-negative integer when it is ASCII digits only, else ``None``.

    ``str.isdigit()`` alone also accepts "²" (``int()`` then raises: a 500 instead of the
    S3 error) and "٣" (read as 3), so every number a client sends goes through here.
    """
    return int(text) if text.isascii() and text.isdigit() else None
