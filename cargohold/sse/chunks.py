"""The at-rest format of an SSE-C blob: independent AES-256-GCM chunks.

A blob holding ``size`` plaintext bytes is::

    header   MAGIC (4 bytes) + blob salt (16 random bytes)
    chunk 0  ciphertext of plaintext[0:C]      + 16-byte GCM tag
    chunk 1  ciphertext of plaintext[C:2C]     + tag
    ...
    chunk n  the last, shorter (never empty) piece + tag

``C`` is the chunk size (64 KiB, recorded with the object). Chunks are independent, so a
range read decrypts only the chunks it touches.

Keys and nonces: the customer key never encrypts data itself. Each blob's AES key is
HKDF-SHA256(customer key, salt = blob salt, info = purpose + object salt); the blob salt is
fresh for every blob, so every blob has its own key, and chunk ``i``'s nonce is simply ``i``
(a key never sees a nonce twice). Each chunk's associated data binds the object salt, the
part number, the blob's plaintext size and the chunk's index: a chunk moved to another
position, another part or another object, or a blob cut short or grown, fails to
authenticate instead of decrypting to wrong bytes.

Everything here is synchronous and CPU-bound: callers run it in worker threads (see
:mod:`cargohold.sse.streams`).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC: Final = b"CHC1"
SALT_SIZE: Final = 16
HEADER_SIZE: Final = len(MAGIC) + SALT_SIZE
TAG_SIZE: Final = 16
CHUNK_SIZE: Final = 64 * 1024
_DATA_INFO: Final = b"cargohold sse-c v1 data key"
# magic, object salt, part number, blob plaintext size, chunk index
_AAD: Final = struct.Struct(f">4s{SALT_SIZE}sIQQ")


class CorruptBlob(Exception):
    """A blob that does not decrypt: wrong format, tampered with, or truncated."""


def hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    """32 bytes of HKDF-SHA256 output."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks holding ``size`` plaintext bytes (an empty blob has none, and no file)."""
    return (size + chunk_size - 1) // chunk_size


@dataclass(frozen=True)
class ObjectCipher:
    """What encrypts and decrypts the blobs of one object (or one multipart upload)."""

    customer_key: bytes = field(repr=False)
    object_salt: bytes
    chunk_size: int = CHUNK_SIZE

    def new_blob(self, part_number: int, size: int) -> BlobCipher:
        """The cipher of a blob about to be written (a fresh random salt)."""
        return self._blob(os.urandom(SALT_SIZE), part_number, size)

    def existing_blob(self, header: bytes, part_number: int, size: int) -> BlobCipher:
        """The cipher of a stored blob, from its header; ``CorruptBlob`` if it is not one."""
        if len(header) != HEADER_SIZE or not header.startswith(MAGIC):
            raise CorruptBlob("not an SSE-C blob")
        return self._blob(header[len(MAGIC):], part_number, size)

    def _blob(self, salt: bytes, part_number: int, size: int) -> BlobCipher:
        key = hkdf(self.customer_key, salt, _DATA_INFO + self.object_salt)
        return BlobCipher(MAGIC + salt, AESGCM(key), self.object_salt, part_number, size,
                          self.chunk_size)


@dataclass(frozen=True)
class BlobCipher:
    """One blob's key and layout: seals and opens its chunks by index."""

    header: bytes
    aead: AESGCM = field(repr=False)
    object_salt: bytes
    part_number: int
    size: int  # plaintext bytes in the blob
    chunk_size: int

    @property
    def chunks(self) -> int:
        """How many chunks the blob has."""
        return chunk_count(self.size, self.chunk_size)

    def chunk_length(self, index: int) -> int:
        """Plaintext bytes in chunk ``index``."""
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def chunk_offset(self, index: int) -> int:
        """Where chunk ``index`` starts in the blob file."""
        return HEADER_SIZE + index * (self.chunk_size + TAG_SIZE)

    def _nonce_aad(self, index: int) -> tuple[bytes, bytes]:
        if not 0 <= index < self.chunks:
            raise CorruptBlob(f"chunk {index} is outside the blob")
        return (index.to_bytes(12, "big"),
                _AAD.pack(MAGIC, self.object_salt, self.part_number, self.size, index))

    def seal(self, index: int, plaintext: bytes) -> bytes:
        """Ciphertext and tag of chunk ``index``; it must be exactly that chunk's length."""
        if len(plaintext) != self.chunk_length(index):
            raise ValueError("chunk length does not match the blob layout")
        nonce, aad = self._nonce_aad(index)
        return self.aead.encrypt(nonce, plaintext, aad)

    def open(self, index: int, sealed: bytes) -> bytes:
        """Plaintext of chunk ``index``; ``CorruptBlob`` if it does not authenticate."""
        if len(sealed) != self.chunk_length(index) + TAG_SIZE:
            raise CorruptBlob(f"chunk {index} is truncated")
        nonce, aad = self._nonce_aad(index)
        try:
            return self.aead.decrypt(nonce, sealed, aad)
        except InvalidTag as exc:
            raise CorruptBlob(f"chunk {index} does not authenticate") from exc

    def seal_run(self, first: int, plaintext: bytes) -> bytes:
        """Seal consecutive chunks from ``first``; ``plaintext`` covers them exactly."""
        out = []
        offset = 0
        index = first
        while offset < len(plaintext):
            length = self.chunk_length(index)
            out.append(self.seal(index, plaintext[offset:offset + length]))
            offset += length
            index += 1
        return b"".join(out)

    def open_run(self, first: int, sealed: bytes) -> bytes:
        """Open consecutive sealed chunks from ``first`` (as read from the file)."""
        out = []
        offset = 0
        index = first
        while offset < len(sealed):
            length = self.chunk_length(index) + TAG_SIZE
            out.append(self.open(index, sealed[offset:offset + length]))
            offset += length
            index += 1
        return b"".join(out)
