"""Streaming ``multipart/form-data``: the body of a browser upload (S3 POST Object).

The form is read the way S3 reads it:

- Fields come first and are small: everything before the file's content (fields, part
  headers, boundaries) may total :data:`MAX_PRE_FILE_BYTES`, S3's 20 KB, or the request is
  ``MaxPostPreDataLengthExceeded``. Only they are held in memory.
- The part named ``file`` (a ``form-data`` part of that name, whether or not it has a
  ``filename``) holds the object. Its content is streamed out in pieces as it arrives and
  never held whole.
- Anything after the file is ignored (S3: "Any fields below it are ignored"), so a field
  placed after the file is a missing field.

The framing is RFC 2046 section 5.1 as RFC 7578 uses it: every delimiter is CRLF, ``--`` and
the boundary (the body may also start with the delimiter, without the CRLF), followed by
optional transport padding (spaces, tabs) and CRLF; the close delimiter adds ``--``. Part
headers end at an empty line. Field names compare without case (S3: "post parameters are case
insensitive"); values are kept as sent, decoded as UTF-8.
"""

from __future__ import annotations

import email.message
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from cargohold import errors

# S3: "The form data and boundaries (excluding the contents of the file) cannot exceed 20 KB";
# its error names 20480 bytes.
MAX_PRE_FILE_BYTES: Final = 20 * 1024
MAX_BOUNDARY: Final = 70  # RFC 2046: "no longer than 70 characters"
FILE_FIELD: Final = "file"
NOT_MULTIPART: Final = "Bucket POST must be of the enclosure-type multipart/form-data"

_CRLF: Final = b"\r\n"
_PADDING: Final = b" \t"
# A Content-Disposition parameter: name "=" (quoted string | token). Quoted strings are
# HTML's, not RFC 822's: browsers escape a quote as %22 and never use backslash escapes, and
# a backslash must survive in a Windows path ("C:\\dir\\file.txt", as S3 documents).
_PARAM: Final = re.compile(r'\s*;\s*([^\s=;]+)\s*=\s*("[^"]*"|[^;]*)', re.DOTALL)


@dataclass(frozen=True)
class FilePart:
    """What the ``file`` part's headers say about the upload."""

    filename: str | None  # the ``filename`` parameter as sent; None when it has none
    content_type: str | None  # the part's own Content-Type header


@dataclass(frozen=True)
class FormHead:
    """The form up to the file's content."""

    fields: list[tuple[str, str]]  # (name in lower case, value) in form order
    file: FilePart | None  # None when the form ended without a ``file`` part


def malformed() -> errors.S3Error:
    return errors.MalformedPOSTRequest()


def boundary_of(content_type: str | None) -> bytes:
    """The multipart boundary of a POST's ``Content-Type``.

    Anything but ``multipart/form-data`` is S3's 412 ``PreconditionFailed``; a form without a
    usable boundary is ``MalformedPOSTRequest``.
    """
    if content_type is None:
        raise errors.PreconditionFailed(Condition=NOT_MULTIPART)
    header = email.message.Message()
    header["Content-Type"] = content_type
    if header.get_content_type() != "multipart/form-data":
        raise errors.PreconditionFailed(Condition=NOT_MULTIPART)
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= MAX_BOUNDARY:
        raise malformed()
    try:
        encoded = boundary.encode("ascii")
    except UnicodeEncodeError as exc:
        raise malformed() from exc
    if b"\r" in encoded or b"\n" in encoded:
        raise malformed()
    return encoded


class FormReader:
    """Reads one ``multipart/form-data`` body from an async iterator of its raw bytes.

    Call :meth:`read_head`, then (when it found a file) iterate :meth:`file_content` once,
    then :meth:`skip_rest`. Every malformation is ``MalformedPOSTRequest``, including a body
    that ends before the file's closing delimiter: a truncated upload is never complete.
    """

    def __init__(self, chunks: AsyncIterator[bytes], boundary: bytes,
                 max_pre_file: int = MAX_PRE_FILE_BYTES) -> None:
        self._chunks = chunks
        self._delimiter = _CRLF + b"--" + boundary
        self._max_pre_file = max_pre_file
        # The body may open with the delimiter itself: a CRLF in front makes every
        # delimiter look alike (it is not counted against the limit).
        self._buffer = _CRLF
        self._consumed = -len(_CRLF)  # bytes taken from the buffer before the file content
        self._eof = False
        self._file_done = False

    async def _fill(self) -> bool:
        """Append the next piece of the body to the buffer; False at its end."""
        if self._eof:
            return False
        chunk = await anext(self._chunks, None)
        if chunk is None:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def _take(self, length: int) -> bytes:
        """Remove and return the first ``length`` buffered bytes of the form head."""
        taken, self._buffer = self._buffer[:length], self._buffer[length:]
        self._consumed += length
        if self._consumed > self._max_pre_file:
            raise self._too_large()
        return taken

    def _too_large(self) -> errors.S3Error:
        return errors.MaxPostPreDataLengthExceeded(
            MaxPostPreDataLengthBytes=str(self._max_pre_file))

    async def _find(self, needle: bytes, start: int = 0) -> int:
        """The buffer index of ``needle`` (reading more as needed); it is all form head."""
        while True:
            index = self._buffer.find(needle, start)
            if index >= 0:
                return index
            if self._consumed + len(self._buffer) - len(needle) > self._max_pre_file:
                raise self._too_large()
            start = max(0, len(self._buffer) - len(needle) + 1)
            if not await self._fill():
                raise malformed()

    async def read_head(self) -> FormHead:
        """The fields before the file and the file part's headers.

        Stops right before the file's content, or at the close delimiter when the form has
        no file part.
        """
        fields: list[tuple[str, str]] = []
        index = await self._find(self._delimiter)  # skips any preamble
        self._take(index + len(self._delimiter))
        while True:
            if await self._after_delimiter():
                return FormHead(fields, None)
            disposition, name, params, content_type = await self._part_headers()
            if disposition == "form-data" and name.lower() == FILE_FIELD:
                return FormHead(fields, FilePart(params.get("filename"), content_type))
            end = await self._find(self._delimiter)
            value = self._take(end)
            self._take(len(self._delimiter))
            try:
                fields.append((name.lower(), value.decode("utf-8")))
            except UnicodeDecodeError as exc:
                raise malformed() from exc

    async def _after_delimiter(self) -> bool:
        """Consume what follows a delimiter: True for the close delimiter, False for CRLF."""
        while len(self._buffer) < 2 and await self._fill():
            pass
        if self._buffer.startswith(b"--"):
            return True  # the close delimiter (it may end the body without a CRLF)
        end = await self._find(_CRLF)
        line = self._take(end + len(_CRLF))[:-len(_CRLF)]
        if line.strip(_PADDING):
            raise malformed()  # the boundary must not prefix a line of content
        return False

    async def _part_headers(self) -> tuple[str, str, dict[str, str], str | None]:
        """(disposition type, name, disposition parameters, Content-Type) of one part."""
        if len(self._buffer) < len(_CRLF):
            await self._find(_CRLF)
        if self._buffer.startswith(_CRLF):  # a part without headers
            raise malformed()
        end = await self._find(_CRLF + _CRLF)
        raw = self._take(end + 2 * len(_CRLF))[:-2 * len(_CRLF)]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # legacy clients; names must still be ASCII
        headers: dict[str, str] = {}
        last = ""
        for line in text.split("\r\n"):
            if line[:1] in (" ", "\t") and last:  # obsolete line folding
                headers[last] += " " + line.strip()
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise malformed()
            last = name.strip().lower()
            headers[last] = value.strip()
        disposition = headers.get("content-disposition")
        if disposition is None:
            raise malformed()
        kind, params = _disposition(disposition)
        field = params.get("name")
        if not field:
            raise malformed()
        return kind, field, params, headers.get("content-type")

    async def file_content(self) -> AsyncIterator[bytes]:
        """The file's bytes as they arrive, up to (not including) the delimiter after them."""
        delimiter = self._delimiter
        keep = len(delimiter) - 1  # a delimiter may straddle two pieces
        while True:
            index = self._buffer.find(delimiter)
            if index >= 0:
                piece, self._buffer = self._buffer[:index], self._buffer[index:]
                self._file_done = True
                if piece:
                    yield piece
                return
            if len(self._buffer) > keep:
                cut = len(self._buffer) - keep
                piece, self._buffer = self._buffer[:cut], self._buffer[cut:]
                yield piece
            if not await self._fill():
                raise malformed()

    async def skip_rest(self) -> None:
        """Read and discard the rest of the body (S3 ignores whatever follows the file)."""
        if not self._file_done:
            raise RuntimeError("the file content has not been read to its end")
        self._buffer = b""
        while await self._fill():
            self._buffer = b""


def _disposition(value: str) -> tuple[str, dict[str, str]]:
    """The disposition type (lower case) and parameters (lower-case names) of a header."""
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    rest = ";" + rest if rest else ""
    position = 0
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None:
            if rest[position:].strip(" \t;"):
                raise malformed()
            break
        name, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"'):
            if len(raw) < 2 or not raw.endswith('"'):
                raise malformed()  # an unterminated quoted string
            raw = raw[1:-1]
        params.setdefault(name, raw)
        position = match.end()
    return kind.strip().lower(), params
