"""The embedded metadata store: SQLite in WAL mode.

Threads and connections
-----------------------
* **One writer thread** owns the only write connection. Every write is queued as a function
  of that connection plus an asyncio future. The writer drains whatever is queued (up to
  ``batch_limit`` ops), runs each op inside its own ``SAVEPOINT`` within a single
  ``BEGIN IMMEDIATE`` transaction, ``COMMIT``\\ s once and then resolves all the futures with
  ``loop.call_soon_threadsafe``. An op that raises rolls back only its savepoint and its
  error goes to its own future. With ``synchronous=FULL`` a commit is one fsync of the WAL,
  so N concurrent small PUTs cost one fsync, not N (group commit). Nothing waits to
  collect a batch: while one commit is being fsynced, the next batch queues up by itself.
* **Point reads run inline** on the calling (event-loop) thread, on a read-only connection
  owned by that thread (see :data:`_READ_PATH_MEASUREMENT` for why). They are single-row
  primary-key lookups; in WAL mode readers never wait for the writer, so an inline read
  costs microseconds and cannot stall the loop behind a write. Their ``busy_timeout`` is
  small because the only waits left (WAL recovery after a crash) are rare and brief.
* **Listings and other unbounded reads** run on a small pool of read threads, each with its
  own connection.

Key order
---------
Object keys are stored as BLOBs holding their UTF-8 bytes. SQLite compares BLOBs with
``memcmp`` (shorter wins on a common prefix), which is exactly UTF-8 byte order, and UTF-8
byte order is Unicode code point order. Storing BLOBs rather than TEXT keeps the listing's
seek arithmetic on bytes: the successor of a prefix (last byte + 1) is often not valid
UTF-8, which a TEXT parameter could not carry. (TEXT with the default BINARY collation would
also compare with memcmp on UTF-8; the problem is only binding such successors.)

Multipart objects (schema version 2) keep their manifest as JSON on the object row, so a
GET still reads one row, plus one ``object_parts`` row per part blob so the blob GC can ask
"is this blob referenced?" through an index. In-progress uploads live in ``uploads`` and
``upload_parts``; their part blobs count as referenced too.

Versioning (schema version 9): ``objects`` stays the table of current objects, so GET,
PUT and the listings of unversioned buckets read what they always did. Every other version
(noncurrent versions and delete markers) lives in ``object_versions``, newest first per key
by ``seq``, with its inline bytes on the row and its part blobs in ``version_parts``. A write
to a versioned bucket moves the current row over (its blobs move with it, never copied or
freed); deleting the current version moves the newest noncurrent one back (unless that is a
delete marker, which then hides the key). ``seq`` is taken inside the writing transaction
as max(now in ns, the key's newest + 1), so a key's history is totally ordered even across
processes and clock steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar, cast

from cargohold import errors
from cargohold.store.base import (
    NULL_VERSION,
    AccessKey,
    Account,
    Bucket,
    DeleteResult,
    ListEntry,
    ListPage,
    LogRecord,
    MetadataStore,
    ObjectRecord,
    PartRef,
    Upload,
    UploadedPart,
    UploadPage,
    VersionEntry,
    VersionPage,
)
from cargohold.store.encoding import (
    dumps,
    key_bytes,
    loads,
    new_version_id,
    parts_from_json,
    parts_json,
    scan_start,
    successor,
)

log = logging.getLogger("cargohold.store.sqlite")

T = TypeVar("T")

# Read path, measured (2-core dev VM shared with other jobs, Python 3.11.7, SQLite 3.40.1;
# 10,000 objects in one bucket, 20,000 get_object calls after warm-up, per call; process
# CPU counts all threads; script kept with the report as bench material):
#
#   inline, loop thread's own connection (same key)     wall 15-16 us   CPU ~15 us
#   inline, keys spread over the table                  wall 31-37 us   CPU 31-35 us
#   inline, right after another connection committed    wall ~37 us     (WAL snapshot moved)
#   loop.run_in_executor on a 1-thread pool             wall 235-445 us CPU 215-334 us
#   asyncio.to_thread (default executor)                wall 268-425 us CPU 257-311 us
#
# The bare statement (execute + fetchone) is ~10-13 us; the rest is building the record. A
# thread hop costs ~10x the read itself and more than the whole 150 us CPU budget of a hot
# 4 KiB GET, so point reads run inline. Why that does not block the loop meaningfully: the
# read is one B-tree descent in a WAL snapshot, and WAL readers never take a lock the
# writer holds (the writer appends to the WAL; a reader reads the db file plus the WAL
# frames of its snapshot), so a read never waits for a commit or its fsync. busy_timeout is
# kept small (_READ_BUSY_MS) for the rare cases that can still return SQLITE_BUSY to a
# reader (another process recovering the WAL after a crash). mmap_size was tried and made
# reads after a commit slower (~80 us), so it stays off.
_READ_PATH_MEASUREMENT: Final = "inline 15-37 us/call; thread hop 215-334 us CPU/call"

# The point reads every request repeats (its bucket; a hot object on every GET) are
# answered from memory while the database is unchanged. "Unchanged" is the one row of
# ``cache_generation``, which every write transaction that can change what a read returns
# bumps inside itself: this process's writer, another worker's, the admin CLI's (they all
# write through this class). It is exact: a read never returns data older than the last
# commit before the check, so read-after-write holds across workers. Any such commit
# empties the whole cache (no per-key invalidation to get wrong); a mixed workload then
# reads as it did before. Writes that no cached read can see (lease renewals, queued
# access-log records) leave it alone: SQLite's own ``PRAGMA data_version`` moves on every
# commit, and worker 0's lease renewal emptied every worker's cache every few seconds.
#
# One check serves every read until the event loop next turns (it schedules its own expiry
# with call_soon): the reads of one request, and of the other requests that arrived
# together, all happen after those requests were received and before anything they wait
# for, so each still sees every write acknowledged before it was sent. A write always
# waits for its commit, which takes a turn of the loop, so a request reading after its own
# write checks again. (The check costs ~5-6 us here, mostly the two fcntl() calls on the
# -shm file that start a read; the cached lookup ~1 us.)
_CACHE_GENERATION_SCHEMA: Final = 11  # the migration that adds cache_generation
_CACHE_ENTRIES: Final = 4096
_CACHE_INLINE_BYTES: Final = 16 * 1024 * 1024  # small objects' bytes held by the cache


class _ReadCache:
    """One reading connection's cached point reads, valid for one cache generation."""

    __slots__ = ("checked", "entries", "inline_bytes", "version")

    def __init__(self) -> None:
        self.version = -1
        self.checked = False  # the version was read in this turn of the event loop
        self.entries: dict[tuple[str, ...], Any] = {}
        self.inline_bytes = 0

    def refresh(self, conn: sqlite3.Connection) -> None:
        """Forget everything if a write a cached read can see committed since the last
        check (at most one check per turn of the event loop)."""
        if self.checked:
            return
        version = conn.execute("SELECT n FROM cache_generation").fetchone()[0]
        if version != self.version:
            self.version = version
            self.entries.clear()
            self.inline_bytes = 0
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to bound the check by: check on every read
            return
        self.checked = True
        loop.call_soon(self._expire)

    def _expire(self) -> None:
        self.checked = False

    def put(self, key: tuple[str, ...], value: Any, inline_bytes: int = 0) -> None:
        if (len(self.entries) >= _CACHE_ENTRIES
                or self.inline_bytes + inline_bytes > _CACHE_INLINE_BYTES):
            self.entries.clear()  # rare; simpler than LRU bookkeeping on the hot path
            self.inline_bytes = 0
        self.entries[key] = value
        self.inline_bytes += inline_bytes


_WRITE_BUSY_MS: Final = 5000  # another process (admin CLI) may hold the write lock briefly
_READ_BUSY_MS: Final = 20
_IN_CHUNK: Final = 500  # parameters per "IN (...)" query


# ----------------------------------------------------------------------------- schema

# Each migration is (version, statements). Append only: never edit a released migration,
# add a new one. Each runs in the same transaction as its schema_version row.
MIGRATIONS: Final[list[tuple[int, tuple[str, ...]]]] = [
    (
        1,
        (
            """CREATE TABLE settings (
                   name TEXT PRIMARY KEY,
                   value TEXT NOT NULL
               ) WITHOUT ROWID""",
            """CREATE TABLE accounts (
                   canonical_id TEXT PRIMARY KEY,
                   name TEXT NOT NULL UNIQUE,
                   display_name TEXT NOT NULL,
                   email TEXT NOT NULL,
                   created REAL NOT NULL
               )""",
            """CREATE TABLE access_keys (
                   access_key TEXT PRIMARY KEY,
                   secret_key TEXT NOT NULL,
                   account_id TEXT NOT NULL
                       REFERENCES accounts(canonical_id) ON DELETE CASCADE,
                   created REAL NOT NULL
               )""",
            "CREATE INDEX access_keys_account ON access_keys(account_id)",
            """CREATE TABLE buckets (
                   name TEXT PRIMARY KEY,
                   owner_id TEXT NOT NULL REFERENCES accounts(canonical_id),
                   region TEXT NOT NULL,
                   created REAL NOT NULL
               )""",
            "CREATE INDEX buckets_owner ON buckets(owner_id, name)",
            # WITHOUT ROWID: rows live in (bucket, key) order, so a point read is one
            # B-tree descent and a listing reads adjacent leaf pages. key is a BLOB of
            # UTF-8 bytes: memcmp order = byte order (see the module docstring).
            """CREATE TABLE objects (
                   bucket TEXT NOT NULL REFERENCES buckets(name),
                   key BLOB NOT NULL,
                   version_id TEXT NOT NULL,
                   blob_id TEXT NOT NULL,
                   size INTEGER NOT NULL,
                   etag TEXT NOT NULL,
                   last_modified REAL NOT NULL,
                   content_type TEXT NOT NULL,
                   headers TEXT NOT NULL DEFAULT '{}',
                   metadata TEXT NOT NULL DEFAULT '{}',
                   checksums TEXT NOT NULL DEFAULT '{}',
                   storage_class TEXT NOT NULL DEFAULT 'STANDARD',
                   PRIMARY KEY (bucket, key)
               ) WITHOUT ROWID""",
            "CREATE INDEX objects_blob ON objects(blob_id)",
            """CREATE TABLE blob_deletions (
                   blob_id TEXT PRIMARY KEY,
                   queued_at REAL NOT NULL
               )""",
        ),
    ),
    (
        2,
        (
            # Multipart objects: the manifest as JSON on the row (GET reads one row) and,
            # for reference checks by the blob GC, one row per part blob.
            "ALTER TABLE objects ADD COLUMN parts TEXT NOT NULL DEFAULT '[]'",
            """CREATE TABLE object_parts (
                   bucket TEXT NOT NULL,
                   key BLOB NOT NULL,
                   number INTEGER NOT NULL,
                   blob_id TEXT NOT NULL,
                   PRIMARY KEY (bucket, key, number)
               ) WITHOUT ROWID""",
            "CREATE INDEX object_parts_blob ON object_parts(blob_id)",
            """CREATE TABLE uploads (
                   upload_id TEXT PRIMARY KEY,
                   bucket TEXT NOT NULL REFERENCES buckets(name),
                   key BLOB NOT NULL,
                   owner_id TEXT NOT NULL,
                   initiated REAL NOT NULL,
                   content_type TEXT NOT NULL,
                   headers TEXT NOT NULL,
                   metadata TEXT NOT NULL,
                   checksum_algorithm TEXT NOT NULL,
                   checksum_type TEXT NOT NULL,
                   storage_class TEXT NOT NULL
               )""",
            "CREATE INDEX uploads_order ON uploads(bucket, key, initiated, upload_id)",
            "CREATE INDEX uploads_initiated ON uploads(initiated)",
            """CREATE TABLE upload_parts (
                   upload_id TEXT NOT NULL REFERENCES uploads(upload_id) ON DELETE CASCADE,
                   number INTEGER NOT NULL,
                   blob_id TEXT NOT NULL,
                   size INTEGER NOT NULL,
                   etag TEXT NOT NULL,
                   last_modified REAL NOT NULL,
                   checksums TEXT NOT NULL,
                   PRIMARY KEY (upload_id, number)
               ) WITHOUT ROWID""",
            "CREATE INDEX upload_parts_blob ON upload_parts(blob_id)",
        ),
    ),
    (
        3,
        (
            # Inline bytes of small objects, apart from the objects table so listings keep
            # reading dense rows (a WITHOUT ROWID row this size would spill into overflow).
            """CREATE TABLE object_data (
                   bucket TEXT NOT NULL,
                   key BLOB NOT NULL,
                   data BLOB NOT NULL,
                   PRIMARY KEY (bucket, key)
               )""",
        ),
    ),
    (
        4,
        (
            # What a listing shows of an object's checksum, as plain columns: decoding
            # the checksums JSON of every row was 40% of a 1000-key listing's cost.
            "ALTER TABLE objects ADD COLUMN checksum_algorithm TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE objects ADD COLUMN checksum_type TEXT NOT NULL DEFAULT ''",
            "UPDATE objects SET checksum_algorithm = CASE "
            + " ".join(f"WHEN json_extract(checksums, '$.{a}') IS NOT NULL THEN '{a}'"
                       for a in ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"))
            + " ELSE '' END "
            "WHERE checksums != '{}'",
            "UPDATE objects SET checksum_type = coalesce(json_extract(checksums, '$.type'), "
            "'FULL_OBJECT') WHERE checksum_algorithm != ''",
        ),
    ),
    (
        5,
        (
            # Object tags as JSON on the row, so GET/HEAD learn the tag count from the row
            # they already read; uploads carry x-amz-tagging to the completed object.
            "ALTER TABLE objects ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE uploads ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'",
        ),
    ),
    (
        6,
        (
            # Spaces-style limited keys: JSON {bucket: permission}; NULL is a full-access key.
            "ALTER TABLE access_keys ADD COLUMN grants TEXT",
        ),
    ),
    (
        7,
        (
            # Access control and CORS, each stored as its module's compact text ('' or NULL
            # when unset): a bucket's are read with the bucket on every request.
            "ALTER TABLE buckets ADD COLUMN acl TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE buckets ADD COLUMN policy TEXT",
            "ALTER TABLE buckets ADD COLUMN cors TEXT",
            "ALTER TABLE objects ADD COLUMN acl TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE uploads ADD COLUMN acl TEXT NOT NULL DEFAULT ''",
        ),
    ),
    (
        8,
        (
            # Static website and access-logging configurations (their modules' text).
            "ALTER TABLE buckets ADD COLUMN website TEXT",
            "ALTER TABLE buckets ADD COLUMN logging TEXT",
            # SSE-C: how an object's (or an upload's parts') blobs are encrypted; '' = plain.
            "ALTER TABLE objects ADD COLUMN sse TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE uploads ADD COLUMN sse TEXT NOT NULL DEFAULT ''",
            # Access-log records waiting for delivery into their target bucket.
            """CREATE TABLE access_log_records (
                   id INTEGER PRIMARY KEY AUTOINCREMENT,
                   target_bucket TEXT NOT NULL,
                   target_prefix TEXT NOT NULL,
                   line TEXT NOT NULL,
                   created REAL NOT NULL
               )""",
            "CREATE INDEX access_log_records_target ON access_log_records(target_bucket, id)",
        ),
    ),
    (
        9,
        (
            # Versioning ('' never enabled, 'Enabled', 'Suspended') and the lifecycle
            # configuration (cargohold.lifecycle's text, NULL when unset).
            "ALTER TABLE buckets ADD COLUMN versioning TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE buckets ADD COLUMN lifecycle TEXT",
            # Each version's place in its key's history (larger is newer); rows written
            # before versioning existed are the oldest (0).
            "ALTER TABLE objects ADD COLUMN seq INTEGER NOT NULL DEFAULT 0",
            # Every version that is not the current object: noncurrent versions and delete
            # markers, newest first per key. `objects` stays the table of current objects,
            # so GET, PUT and listings of unversioned buckets read exactly what they did.
            # noncurrent_since is NULL only for a delete marker that is its key's latest.
            """CREATE TABLE object_versions (
                   bucket TEXT NOT NULL,
                   key BLOB NOT NULL,
                   seq INTEGER NOT NULL,
                   version_id TEXT NOT NULL,
                   delete_marker INTEGER NOT NULL,
                   noncurrent_since REAL,
                   blob_id TEXT NOT NULL,
                   size INTEGER NOT NULL,
                   etag TEXT NOT NULL,
                   last_modified REAL NOT NULL,
                   content_type TEXT NOT NULL,
                   headers TEXT NOT NULL,
                   metadata TEXT NOT NULL,
                   checksums TEXT NOT NULL,
                   storage_class TEXT NOT NULL,
                   parts TEXT NOT NULL,
                   checksum_algorithm TEXT NOT NULL,
                   checksum_type TEXT NOT NULL,
                   tags TEXT NOT NULL,
                   acl TEXT NOT NULL,
                   sse TEXT NOT NULL,
                   data BLOB,
                   PRIMARY KEY (bucket, key, seq DESC)
               )""",
            "CREATE UNIQUE INDEX object_versions_id ON object_versions(bucket, key, version_id)",
            "CREATE INDEX object_versions_blob ON object_versions(blob_id)",
            # Part blobs of noncurrent multipart versions, for the blob GC's reference check.
            """CREATE TABLE version_parts (
                   bucket TEXT NOT NULL,
                   key BLOB NOT NULL,
                   seq INTEGER NOT NULL,
                   number INTEGER NOT NULL,
                   blob_id TEXT NOT NULL,
                   PRIMARY KEY (bucket, key, seq, number)
               ) WITHOUT ROWID""",
            "CREATE INDEX version_parts_blob ON version_parts(blob_id)",
        ),
    ),
    (
        10,
        (
            # Leases for background work that runs once per cluster (expires_at: unix time).
            """CREATE TABLE leases (
                   name TEXT PRIMARY KEY,
                   holder TEXT NOT NULL,
                   expires_at REAL NOT NULL
               ) WITHOUT ROWID""",
        ),
    ),
    (
        11,
        (
            # Bumped by every write that cached reads can see (see _ReadCache).
            """CREATE TABLE cache_generation (
                   id INTEGER PRIMARY KEY CHECK (id = 0),
                   n INTEGER NOT NULL
               )""",
            "INSERT INTO cache_generation (id, n) VALUES (0, 0)",
        ),
    ),
    (
        12,
        (
            # The GC reads the rows past their grace (--freed-blob-grace-seconds): without
            # this, finding none read every row still inside it.
            "CREATE INDEX blob_deletions_due ON blob_deletions (queued_at)",
        ),
    ),
]

_SCHEMA_VERSION_TABLE: Final = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied REAL NOT NULL
)"""

_OBJECT_COLUMNS: Final = (
    "key, version_id, blob_id, size, etag, last_modified, content_type, "
    "headers, metadata, checksums, storage_class, parts, tags, acl, sse"
)
_SELECT_OBJECT: Final = f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?"
_SELECT_OBJECT_WITH_DATA: Final = (
    "SELECT " + ", ".join("o." + c.strip() for c in _OBJECT_COLUMNS.split(","))
    + ", d.data FROM objects o "
    "LEFT JOIN object_data d ON d.bucket = o.bucket AND d.key = o.key "
    "WHERE o.bucket = ? AND o.key = ?"
)
_LIST_COLUMNS: Final = (
    "key, size, etag, last_modified, storage_class, checksum_algorithm, checksum_type, "
    "version_id"
)
_LIST_BOUNDED: Final = (
    f"SELECT {_LIST_COLUMNS} FROM objects "
    "WHERE bucket = ? AND key >= ? AND key < ? ORDER BY key LIMIT ?"
)
_LIST_UNBOUNDED: Final = (
    f"SELECT {_LIST_COLUMNS} FROM objects WHERE bucket = ? AND key >= ? ORDER BY key LIMIT ?"
)
_UPSERT_OBJECT: Final = (
    "INSERT INTO objects (bucket, key, version_id, blob_id, size, etag, last_modified, "
    "content_type, headers, metadata, checksums, storage_class, parts, checksum_algorithm, "
    "checksum_type, tags, acl, sse, seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (bucket, key) DO UPDATE SET version_id = excluded.version_id, seq = excluded.seq, "
    "blob_id = excluded.blob_id, size = excluded.size, etag = excluded.etag, "
    "last_modified = excluded.last_modified, content_type = excluded.content_type, "
    "headers = excluded.headers, metadata = excluded.metadata, "
    "checksums = excluded.checksums, storage_class = excluded.storage_class, "
    "parts = excluded.parts, checksum_algorithm = excluded.checksum_algorithm, "
    "checksum_type = excluded.checksum_type, tags = excluded.tags, acl = excluded.acl, "
    "sse = excluded.sse"
)
# The columns a version shares with a current object (moved as they are between tables).
_SHARED_COLUMNS: Final = (
    "blob_id, size, etag, last_modified, content_type, headers, metadata, checksums, "
    "storage_class, parts, checksum_algorithm, checksum_type, tags, acl, sse"
)
_SELECT_VERSION_ROW: Final = (
    f"SELECT {_OBJECT_COLUMNS}, data, delete_marker FROM object_versions "
    "WHERE bucket = ? AND key = ?"
)
_VERSION_LIST_COLUMNS: Final = (
    "key, seq, version_id, {current} AS current, {marker} AS marker, size, etag, "
    "last_modified, storage_class, checksum_algorithm, checksum_type, {since} AS since"
)
# {where}: the same condition on both tables, after "bucket = ?". Resuming inside a key
# uses "key = ? AND seq < ?" alone: with a "key >= ?" beside it, SQLite seeks on the range
# and reads every later key of the bucket.
_LIST_VERSIONS: Final = (
    "SELECT " + _VERSION_LIST_COLUMNS.format(current=1, marker=0, since="NULL")
    + " FROM objects WHERE bucket = ? AND {where}"
    " UNION ALL SELECT " + _VERSION_LIST_COLUMNS.format(
        current=0, marker="delete_marker", since="noncurrent_since")
    + " FROM object_versions WHERE bucket = ? AND {where}"
    " ORDER BY key, seq DESC LIMIT ?"
)
_UPLOAD_COLUMNS: Final = (
    "upload_id, bucket, key, owner_id, initiated, content_type, headers, metadata, "
    "checksum_algorithm, checksum_type, storage_class, tags, acl, sse"
)
_PART_COLUMNS: Final = "upload_id, number, blob_id, size, etag, last_modified, checksums"
_LIST_UPLOADS_BOUNDED: Final = (
    f"SELECT key, {_UPLOAD_COLUMNS} FROM uploads WHERE bucket = ? AND key >= ? AND key < ? "
    "ORDER BY key, initiated, upload_id LIMIT ?"
)
_LIST_UPLOADS_UNBOUNDED: Final = (
    f"SELECT key, {_UPLOAD_COLUMNS} FROM uploads WHERE bucket = ? AND key >= ? "
    "ORDER BY key, initiated, upload_id LIMIT ?"
)


# ---------------------------------------------------------------------------- helpers


def _record(bucket: str, key: str, row: Sequence[Any]) -> ObjectRecord:
    return ObjectRecord(
        bucket=bucket,
        key=key,
        version_id=row[1],
        blob_id=row[2],
        size=row[3],
        etag=row[4],
        last_modified=row[5],
        content_type=row[6],
        headers=loads(row[7]),
        metadata=loads(row[8]),
        checksums=loads(row[9]),
        storage_class=row[10],
        parts=parts_from_json(row[11]),
        tags=loads(row[12]),
        acl=row[13],
        sse=row[14],
        inline=row[15] if len(row) > 15 else None,
    )


def _version_record(bucket: str, key: str, row: Sequence[Any]) -> ObjectRecord:
    """A row of ``_SELECT_VERSION_ROW`` (object columns, data, delete_marker)."""
    return dataclasses.replace(_record(bucket, key, row[:16]), delete_marker=bool(row[16]))


def _list_entry(key: str, row: Sequence[Any]) -> ListEntry:
    return ListEntry(key, row[1], row[2], row[3], row[4], row[5], row[6], row[7])


def _upload(row: Sequence[Any]) -> Upload:
    return Upload(
        upload_id=row[0], bucket=row[1], key=bytes(row[2]).decode("utf-8"), owner_id=row[3],
        initiated=row[4], content_type=row[5], headers=loads(row[6]), metadata=loads(row[7]),
        checksum_algorithm=row[8], checksum_type=row[9], storage_class=row[10],
        tags=loads(row[11]), acl=row[12], sse=row[13],
    )


def _part(row: Sequence[Any]) -> UploadedPart:
    return UploadedPart(
        upload_id=row[0], number=row[1], blob_id=row[2], size=row[3], etag=row[4],
        last_modified=row[5], checksums=loads(row[6]),
    )


def _account(row: Sequence[Any]) -> Account:
    return Account(
        canonical_id=row[0], name=row[1], display_name=row[2], email=row[3], created=row[4]
    )


_BUCKET_COLUMNS: Final = (
    "name, owner_id, region, created, acl, policy, cors, website, logging, versioning, lifecycle"
)


def _bucket(row: Sequence[Any]) -> Bucket:
    return Bucket(name=row[0], owner_id=row[1], region=row[2], created=row[3], acl=row[4],
                  policy=row[5], cors=row[6], website=row[7], logging=row[8],
                  versioning=row[9], lifecycle=row[10])


_KEY_COLUMNS: Final = "access_key, secret_key, account_id, created, grants"


def _access_key(row: Sequence[Any]) -> AccessKey:
    return AccessKey(access_key=row[0], secret_key=row[1], account_id=row[2], created=row[3],
                     grants=None if row[4] is None else loads(row[4]))


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def _is_full(exc: BaseException) -> bool:
    # The database file or its WAL could not grow: the disk (or max_page_count) is full.
    return (isinstance(exc, sqlite3.Error)
            and getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL)


class _CommitMayHaveLanded(Exception):
    """COMMIT failed with an I/O error after SQLite had ended the transaction itself: the
    WAL frames it was writing or syncing may be on disk all the same, and recovery at the
    next open would replay a complete commit (the cause is the sqlite3 error)."""


def _is_io_error(exc: BaseException) -> bool:
    return (isinstance(exc, sqlite3.Error)
            and getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_IOERR)


def _as_s3_error(exc: BaseException) -> errors.S3Error:
    """A fresh S3 error for a failure that hit a whole batch (one instance per future).

    After a COMMIT that may have landed it is ``outcome_unknown``: whatever the writes
    point at (new blobs) must stay, for the orphan sweep to judge later.
    """
    err: errors.S3Error
    uncertain = isinstance(exc, _CommitMayHaveLanded)
    if uncertain and exc.__cause__ is not None:
        exc = exc.__cause__
    if _is_busy(exc):
        err = errors.SlowDown()
    elif _is_full(exc):
        err = errors.InsufficientStorage()
    else:
        err = errors.InternalError()
    err.__cause__ = exc
    err.outcome_unknown = uncertain
    return err


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_Outcomes = list[tuple[asyncio.Future[Any], BaseException | None, Any]]


def _deliver(outcomes: _Outcomes) -> None:
    """Resolve futures on their own loop (called via ``call_soon_threadsafe``)."""
    for fut, exc, value in outcomes:
        if fut.done():  # cancelled by its awaiter meanwhile
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


# (op, its future, the future's loop, whether cached reads can see what it writes)
_WriteOp = tuple[
    Callable[[sqlite3.Connection], Any], asyncio.Future[Any], asyncio.AbstractEventLoop, bool
]
_STOP: Final = None


# ------------------------------------------------------------------------------ store


class SqliteStore(MetadataStore):
    """:class:`MetadataStore` on one SQLite file (WAL, ``synchronous=FULL``).

    ``open()`` starts the writer thread and the read pool and migrates the schema;
    ``close()`` commits whatever is queued, stops the threads and closes every connection.
    Several processes may open the same file (server workers, the admin CLI).

    Counters for tests and metrics: ``commit_count`` (transactions committed by the
    writer), ``write_count`` (write ops run), ``list_rows_read`` (rows stepped by listings).
    """

    point_reads_inline = True  # see _READ_PATH_MEASUREMENT

    def __init__(
        self, path: str | Path, *, read_threads: int = 4, batch_limit: int = 500,
        lock_timeout: float = _WRITE_BUSY_MS / 1000,
    ) -> None:
        self.path = Path(path)
        self.read_threads = read_threads
        self.batch_limit = batch_limit
        # How long writes wait for another process's writer (as SQLite's busy timeout
        # would) before they are refused with SlowDown (see _take_turn).
        self.lock_timeout = lock_timeout
        self._turn = threading.Lock()  # guards the two fields below
        self._waiting_since: float | None = None  # the writer is blocked on the lock file
        self._waiting_op: _WriteOp | None = None  # the op it holds meanwhile
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()
        self.commit_count = 0
        self.write_count = 0
        self.list_rows_read = 0
        self._queue: queue.SimpleQueue[_WriteOp | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = True
        self._counts_generations = False  # writes bump cache_generation (after open())

    # ------------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Start the writer thread and read pool, create or migrate the schema."""
        if not self._closed:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._local = threading.local()
        self._writer = threading.Thread(
            target=self._writer_main, args=(loop, ready), name="cargohold-sqlite-writer",
            daemon=True,
        )
        self._writer.start()
        try:
            await ready
        except BaseException:
            self._writer = None
            raise
        self._watchdog_stop.clear()
        self._watchdog = threading.Thread(target=self._watch_turns,
                                          name="cargohold-sqlite-watchdog", daemon=True)
        self._watchdog.start()
        self._pool = ThreadPoolExecutor(
            max_workers=self.read_threads, thread_name_prefix="cargohold-sqlite-read"
        )
        self._closed = False
        try:
            version = await self._write(_migrate)
        except BaseException:
            await self.close()
            raise
        # From here on (the table exists from schema 11; tests also open older schemas).
        self._counts_generations = version >= _CACHE_GENERATION_SCHEMA

    async def close(self) -> None:
        """Commit what is queued, stop the threads, close all connections.

        A writer still blocked on the workers' lock file well past ``lock_timeout``
        (another process stopped while holding it) is left behind, with its connection,
        rather than hang the shutdown: its queued writes were refused by the watchdog, and
        it is a daemon thread.
        """
        if self._writer is None:
            return
        self._closed = True
        self._queue.put(_STOP)
        writer, self._writer = self._writer, None
        await asyncio.to_thread(writer.join, 2 * self.lock_timeout + 1)
        abandoned = writer.is_alive()
        if abandoned:
            log.error("sqlite writer still waits for %s-writer.lock held by another process; "
                      "closing without it", self.path.name)
        if self._watchdog is not None:
            self._watchdog_stop.set()
            await asyncio.to_thread(self._watchdog.join)
            self._watchdog = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        # The writer's connection closes last: the last connection to close checkpoints
        # the WAL into the database file and removes it.
        if self._write_conn is not None and not abandoned:
            with contextlib.suppress(sqlite3.Error):
                self._write_conn.execute("PRAGMA optimize")
            self._write_conn.close()
            self._write_conn = None

    async def schema_version(self) -> int:
        """The schema version of the open database."""
        row = self._reader().execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------ connections

    def _connect(self, busy_ms: int) -> sqlite3.Connection:
        # isolation_level=None: the sqlite3 module issues no implicit BEGIN/COMMIT; the
        # writer controls transactions and readers run each SELECT in its own snapshot.
        # check_same_thread=False only so close() can close connections from its thread;
        # each connection is still used by one thread at a time.
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_ms / 1000
        )
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        return conn

    def _cached_reader(self) -> tuple[sqlite3.Connection, _ReadCache]:
        """This thread's read-only connection and its read cache, made current."""
        conn = self._reader()
        cache: _ReadCache = self._local.cache
        cache.refresh(conn)
        return conn, cache

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (created on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("SqliteStore is closed")
            conn = self._connect(_READ_BUSY_MS)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA cache_size = -16384")  # 16 MiB per reader
            self._local.conn = conn
            self._local.cache = _ReadCache()
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run an unbounded read (a listing) on a read-pool thread."""
        if self._pool is None:
            raise RuntimeError("SqliteStore is not open")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._reader()))

    # ---------------------------------------------------------------- writer thread

    async def _write(self, fn: Callable[[sqlite3.Connection], T], *,
                     seen_by_reads: bool = True) -> T:
        """Queue ``fn`` for the writer; it runs in its own savepoint of a group commit.

        Once queued, a write commits even if the awaiting task is cancelled, unless the
        cancellation lands before the writer picks the op up (then it is skipped).
        ``seen_by_reads=False`` only for writes no cached read (a bucket, an object) can
        see: they keep every worker's read cache.
        """
        if self._closed:
            raise RuntimeError("SqliteStore is not open")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, fut, loop, seen_by_reads))
        return await fut

    def _writer_main(
        self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]
    ) -> None:
        try:
            conn = self._connect(_WRITE_BUSY_MS)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"cannot enable WAL on {self.path} (got {mode})")
            conn.execute("PRAGMA synchronous = FULL")  # fsync the WAL on every commit
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_size_limit = 67108864")  # trim WAL after checkpoint
            lock_fd = os.open(self.path.with_name(self.path.name + "-writer.lock"),
                              os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._write_conn = conn
        except BaseException as exc:
            failed: _Outcomes = [(ready, exc, None)]
            loop.call_soon_threadsafe(_deliver, failed)
            return
        started: _Outcomes = [(ready, None, None)]
        loop.call_soon_threadsafe(_deliver, started)
        try:
            self._write_loop(conn, lock_fd)
        finally:
            os.close(lock_fd)

    def _write_loop(self, conn: sqlite3.Connection, lock_fd: int) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            # The writers of all workers take turns through this lock (see _take_turn).
            # Taken before the batch is gathered, so the batch holds everything that
            # arrived while another worker was committing.
            if not self._take_turn(lock_fd, first):
                continue  # the watchdog refused it
            try:
                batch, stopping = self._gather(first)
                # Skip ops whose awaiter is already gone (reading done() from this thread
                # is a plain attribute read, and a future never becomes un-done).
                batch = [op for op in batch if not op[1].done()]
                if not batch:
                    continue
                try:
                    results = self._run_batch(conn, batch)
                except BaseException as exc:  # the transaction as a whole failed
                    log.error("sqlite write transaction failed: %r", exc)
                    if conn.in_transaction:
                        try:
                            conn.execute("ROLLBACK")
                        except sqlite3.Error:
                            log.exception("rollback failed")
                    results = [(_as_s3_error(exc), None) for _ in batch]
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
            self._resolve(batch, results)

    def _take_turn(self, lock_fd: int, first: _WriteOp) -> bool:
        """Take the workers' writer lock for a batch starting with ``first``; ``False`` if
        the watchdog refused ``first`` while this waited (the lock is then not held).

        A blocking ``flock`` wakes the next writer the moment the lock is released
        (SQLite's busy handler sleeps up to 100 ms: 4 KiB PUTs with two workers ran at
        ~1,200 ops/s in bench/ against ~2,200 with the lock; polling it with sleeps of
        0.25-5 ms lost ~30%). It has no timeout, so the watchdog thread refuses the writes
        of a writer blocked longer than ``lock_timeout`` (another worker stopped or hung
        while holding the lock) instead of leaving them to hang.
        """
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        with self._turn:
            self._waiting_since = time.monotonic()
            self._waiting_op = first
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        with self._turn:
            self._waiting_since = None
            mine, self._waiting_op = self._waiting_op is not None, None
        if not mine:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)
        return mine

    def _watch_turns(self) -> None:
        """Watchdog thread: refuse, with SlowDown, the writes queued behind a writer that
        has waited for the lock file longer than ``lock_timeout``.

        Refused ops never reach the writer (it sees its own op taken, and the queue holds
        only later ones), so none of them can also commit.
        """
        while not self._watchdog_stop.wait(self.lock_timeout / 4):
            refused: list[_WriteOp] = []
            with self._turn:
                since = self._waiting_since
                if since is None or time.monotonic() - since < self.lock_timeout:
                    continue
                if self._waiting_op is not None:
                    refused.append(self._waiting_op)
                    self._waiting_op = None
                queued, stop_seen = self._take_queued(None)
                refused += queued
            if stop_seen:
                self._queue.put(_STOP)
            if refused:
                log.error("sqlite writer: another process has held %s-writer.lock for "
                          "over %.1f s; %d writes refused with SlowDown", self.path.name,
                          self.lock_timeout, len(refused))
                self._resolve(refused, [(errors.SlowDown(), None) for _ in refused])

    def _gather(self, first: _WriteOp) -> tuple[list[_WriteOp], bool]:
        """``first`` and what else is queued, up to the batch limit; and whether the stop
        marker came with them."""
        more, stopping = self._take_queued(self.batch_limit - 1)
        return [first, *more], stopping

    def _take_queued(self, limit: int | None) -> tuple[list[_WriteOp], bool]:
        """Up to ``limit`` (``None``: all) queued ops without waiting, and whether the stop
        marker came up (it ends the take)."""
        taken: list[_WriteOp] = []
        while limit is None or len(taken) < limit:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return taken, True
            taken.append(item)
        return taken, False

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_WriteOp]
    ) -> list[tuple[BaseException | None, Any]]:
        """Run ``batch`` in one transaction, each op in its own savepoint; commit once.

        Returns each op's (error, result). Raises if the transaction itself fails (BEGIN,
        savepoint bookkeeping, COMMIT, or an error after which SQLite rolled everything
        back): then no op took effect.
        """
        results: list[tuple[BaseException | None, Any]] = []
        seen = False
        conn.execute("BEGIN IMMEDIATE")
        for fn, _fut, _loop, seen_by_reads in batch:
            conn.execute("SAVEPOINT op")
            try:
                value = fn(conn)
            except Exception as exc:  # goes to this op's future only
                if not conn.in_transaction:
                    # SQLite already rolled back the whole transaction (I/O error, disk
                    # full): the ops before this one are gone too.
                    raise
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                results.append((exc, None))
                continue
            conn.execute("RELEASE op")
            results.append((None, value))
            seen = seen or seen_by_reads
        if seen and self._counts_generations:
            conn.execute("UPDATE cache_generation SET n = n + 1")
        self.write_count += len(batch)
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # Still in the transaction (busy, refused): nothing landed, the caller rolls
            # back. A full disk leaves no complete commit frame in the WAL. An I/O error
            # (a failed write or fsync) may have left one.
            if not conn.in_transaction and _is_io_error(exc):
                raise _CommitMayHaveLanded() from exc
            raise
        self.commit_count += 1
        return results

    @staticmethod
    def _resolve(batch: list[_WriteOp], results: list[tuple[BaseException | None, Any]]) -> None:
        by_loop: dict[
            asyncio.AbstractEventLoop,
            list[tuple[asyncio.Future[Any], BaseException | None, Any]],
        ] = {}
        for (_fn, fut, loop, _seen), (exc, value) in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((fut, exc, value))
        for loop, outcomes in by_loop.items():
            # RuntimeError: the loop was closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, outcomes)

    # --------------------------------------------------------------------- settings

    async def get_setting(self, name: str) -> str | None:
        """The value of a setting, ``None`` if unset."""
        row = self._reader().execute(
            "SELECT value FROM settings WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else str(row[0])

    async def set_setting(self, name: str, value: str) -> None:
        """Create or replace a setting."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

        await self._write(op)

    # ------------------------------------------------------------- accounts & keys

    async def create_account(self, account: Account) -> None:
        """Add an account; ``InvalidArgument`` when the name or canonical id is taken."""

        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    "INSERT INTO accounts (canonical_id, name, display_name, email, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (account.canonical_id, account.name, account.display_name, account.email,
                     account.created),
                )
            except sqlite3.IntegrityError as exc:
                raise errors.InvalidArgument(
                    f"An account named {account.name!r} or with that id already exists."
                ) from exc

        await self._write(op)

    async def get_account(self, canonical_id: str) -> Account | None:
        """The account with this canonical id."""
        row = self._reader().execute(
            "SELECT canonical_id, name, display_name, email, created FROM accounts "
            "WHERE canonical_id = ?",
            (canonical_id,),
        ).fetchone()
        return None if row is None else _account(row)

    async def get_account_by_name(self, name: str) -> Account | None:
        """The account with this name."""
        row = self._reader().execute(
            "SELECT canonical_id, name, display_name, email, created FROM accounts "
            "WHERE name = ?",
            (name,),
        ).fetchone()
        return None if row is None else _account(row)

    async def list_accounts(self) -> list[Account]:
        """All accounts by name."""

        def read(conn: sqlite3.Connection) -> list[Account]:
            rows = conn.execute(
                "SELECT canonical_id, name, display_name, email, created FROM accounts "
                "ORDER BY name"
            ).fetchall()
            return [_account(r) for r in rows]

        return await self._read(read)

    async def delete_account(self, canonical_id: str) -> None:
        """Delete the account and its keys; ``InvalidRequest`` if it owns buckets."""

        def op(conn: sqlite3.Connection) -> None:
            if conn.execute(
                "SELECT 1 FROM buckets WHERE owner_id = ? LIMIT 1", (canonical_id,)
            ).fetchone():
                raise errors.InvalidRequest("The account still owns buckets.")
            # access_keys go with it (ON DELETE CASCADE).
            conn.execute("DELETE FROM accounts WHERE canonical_id = ?", (canonical_id,))

        await self._write(op)

    async def create_key(self, key: AccessKey) -> None:
        """Add an access key; ``InvalidArgument`` if the id exists or the account does not."""

        def op(conn: sqlite3.Connection) -> None:
            if key.grants:
                _refuse_buckets_with_policy(conn, key.grants)
            try:
                conn.execute(
                    "INSERT INTO access_keys (access_key, secret_key, account_id, created, "
                    "grants) VALUES (?, ?, ?, ?, ?)",
                    (key.access_key, key.secret_key, key.account_id, key.created,
                     None if key.grants is None else dumps(key.grants)),
                )
            except sqlite3.IntegrityError as exc:
                if "FOREIGN KEY" in str(exc):
                    raise errors.InvalidArgument("The account does not exist.") from exc
                raise errors.InvalidArgument("The access key id already exists.") from exc

        await self._write(op)

    async def get_key(self, access_key: str) -> AccessKey | None:
        """The access key with this id (hot path of every signed request)."""
        row = self._reader().execute(
            f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE access_key = ?",
            (access_key,),
        ).fetchone()
        return None if row is None else _access_key(row)

    async def list_keys(self, account_id: str | None = None) -> list[AccessKey]:
        """All keys, or one account's keys, by access key id."""

        def read(conn: sqlite3.Connection) -> list[AccessKey]:
            sql = f"SELECT {_KEY_COLUMNS} FROM access_keys"
            if account_id is None:
                rows = conn.execute(sql + " ORDER BY access_key").fetchall()
            else:
                rows = conn.execute(
                    sql + " WHERE account_id = ? ORDER BY access_key", (account_id,)
                ).fetchall()
            return [_access_key(r) for r in rows]

        return await self._read(read)

    async def set_key_grants(self, access_key: str, grants: dict[str, str]) -> AccessKey:
        """Replace the grants of a limited key.

        ``InvalidArgument`` if the key does not exist, ``InvalidRequest`` if it is a
        full-access key (Spaces: a full key never becomes limited).
        """

        def op(conn: sqlite3.Connection) -> AccessKey:
            row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE access_key = ?",
                               (access_key,)).fetchone()
            if row is None:
                raise errors.InvalidArgument(f"The access key {access_key!r} does not exist.")
            if row[4] is None:
                raise errors.InvalidRequest(
                    "A full-access key cannot be limited to buckets; create a new key.")
            _refuse_buckets_with_policy(conn, grants)
            conn.execute("UPDATE access_keys SET grants = ? WHERE access_key = ?",
                         (dumps(grants), access_key))
            return dataclasses.replace(_access_key(row), grants=dict(grants))

        return await self._write(op)

    async def delete_key(self, access_key: str) -> bool:
        """Delete a key; whether it existed."""

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM access_keys WHERE access_key = ?", (access_key,))
            return cur.rowcount > 0

        return await self._write(op)

    # ---------------------------------------------------------------------- buckets

    async def create_bucket(self, bucket: Bucket, max_buckets: int) -> None:
        """Create the bucket (existence and the owner's bucket count checked atomically)."""

        def op(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT owner_id FROM buckets WHERE name = ?", (bucket.name,)
            ).fetchone()
            if row is not None:
                if row[0] == bucket.owner_id:
                    raise errors.BucketAlreadyOwnedByYou(BucketName=bucket.name)
                raise errors.BucketAlreadyExists(BucketName=bucket.name)
            (count,) = conn.execute(
                "SELECT count(*) FROM buckets WHERE owner_id = ?", (bucket.owner_id,)
            ).fetchone()
            if count >= max_buckets:
                raise errors.TooManyBuckets(BucketName=bucket.name)
            try:
                conn.execute(
                    "INSERT INTO buckets (name, owner_id, region, created, acl) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (bucket.name, bucket.owner_id, bucket.region, bucket.created, bucket.acl),
                )
            except sqlite3.IntegrityError as exc:  # the owner account does not exist
                raise errors.InvalidArgument("The bucket owner does not exist.") from exc

        await self._write(op)

    async def get_bucket(self, name: str) -> Bucket | None:
        """The bucket with this name."""
        conn, cache = self._cached_reader()
        cache_key = ("bucket", name)
        try:
            return cast(Bucket | None, cache.entries[cache_key])
        except KeyError:
            pass
        row = conn.execute(
            f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE name = ?", (name,)
        ).fetchone()
        bucket = None if row is None else _bucket(row)
        cache.put(cache_key, bucket)
        return bucket

    async def list_buckets(
        self, owner_id: str, prefix: str = "", start_after: str = "", limit: int = 10000
    ) -> list[Bucket]:
        """The owner's buckets in name order, names > start_after, at most ``limit``."""

        def read(conn: sqlite3.Connection) -> list[Bucket]:
            # substr() counts characters, like len(); buckets_owner orders the scan.
            rows = conn.execute(
                f"SELECT {_BUCKET_COLUMNS} FROM buckets "
                "WHERE owner_id = ? AND name > ? AND substr(name, 1, ?) = ? "
                "ORDER BY name LIMIT ?",
                (owner_id, start_after, len(prefix), prefix, max(limit, 0)),
            ).fetchall()
            return [_bucket(r) for r in rows]

        return await self._read(read)

    async def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket; ``NoSuchBucket`` or ``BucketNotEmpty``."""

        def op(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM buckets WHERE name = ?", (name,)).fetchone() is None:
                raise errors.NoSuchBucket(BucketName=name)
            if not _bucket_is_empty(conn, name):
                raise errors.BucketNotEmpty(BucketName=name)
            # In-progress multipart uploads do not keep a bucket alive (as in S3): they go
            # with it, and their part blobs are queued for deletion.
            for (upload_id,) in conn.execute(
                "SELECT upload_id FROM uploads WHERE bucket = ?", (name,)
            ).fetchall():
                _drop_upload(conn, upload_id)
            conn.execute("DELETE FROM buckets WHERE name = ?", (name,))

        await self._write(op)

    async def set_bucket_acl(self, name: str, acl: str) -> None:
        """Replace the bucket's ACL (stored text); ``NoSuchBucket`` if it is gone."""
        await self._set_bucket_column(name, "acl", acl)

    async def set_bucket_policy(self, name: str, policy: str | None) -> None:
        """Set (or with ``None`` remove) the bucket policy document.

        Spaces' rule, checked in the same transaction: a bucket that a limited access key
        is granted cannot get a policy (``InvalidRequest``).
        """
        if policy is None:
            await self._set_bucket_column(name, "policy", None)
            return

        def op(conn: sqlite3.Connection) -> None:
            for (grants,) in conn.execute(
                    "SELECT grants FROM access_keys k JOIN buckets b ON b.owner_id = "
                    "k.account_id WHERE b.name = ? AND k.grants IS NOT NULL", (name,)):
                if name in loads(grants):
                    raise errors.InvalidRequest(
                        "A bucket that a limited access key is granted cannot have a bucket "
                        "policy; remove the bucket from the key's grants first.")
            _update_bucket(conn, name, "policy", policy)

        await self._write(op)

    async def set_bucket_cors(self, name: str, cors: str | None) -> None:
        """Set (or with ``None`` remove) the bucket's CORS configuration (stored text)."""
        await self._set_bucket_column(name, "cors", cors)

    async def set_bucket_website(self, name: str, website: str | None) -> None:
        """Set (or with ``None`` remove) the bucket's website configuration (stored text)."""
        await self._set_bucket_column(name, "website", website)

    async def set_bucket_logging(self, name: str, logging: str | None) -> None:
        """Set (or with ``None`` remove) the bucket's access-logging configuration."""
        await self._set_bucket_column(name, "logging", logging)

    async def set_bucket_lifecycle(self, name: str, lifecycle: str | None) -> None:
        """Set or remove the lifecycle configuration text; ``NoSuchBucket`` if gone."""
        await self._set_bucket_column(name, "lifecycle", lifecycle)

    async def set_bucket_versioning(self, name: str, status: str) -> None:
        """Set the versioning state ("Enabled" or "Suspended"); ``NoSuchBucket`` if gone."""
        assert status in ("Enabled", "Suspended")
        await self._set_bucket_column(name, "versioning", status)

    async def _set_bucket_column(self, name: str, column: str, value: str | None) -> None:
        await self._write(lambda conn: _update_bucket(conn, name, column, value))

    async def bucket_is_empty(self, bucket: str) -> bool:
        """Whether the bucket holds no objects (one index probe)."""
        return _bucket_is_empty(self._reader(), bucket)

    # ---------------------------------------------------------------------- objects

    async def get_object(self, bucket: str, key: str) -> ObjectRecord | None:
        """The current object at (bucket, key); ``None`` if absent (bucket not checked)."""
        conn, cache = self._cached_reader()
        cache_key = ("object", bucket, key)
        try:
            return cast(ObjectRecord | None, cache.entries[cache_key])
        except KeyError:
            pass
        row = conn.execute(_SELECT_OBJECT_WITH_DATA, (bucket, key_bytes(key))).fetchone()
        record = None if row is None else _record(bucket, key, row)
        cache.put(cache_key, record, len(record.inline or b"") if record is not None else 0)
        return record

    async def put_object(
        self,
        record: ObjectRecord,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Make ``record`` current; conditions and the deletion queue in the same transaction.

        ``if_match`` compares ETags without quotes; ``"*"`` means "any current object".
        """
        kb = key_bytes(record.key)

        def op(conn: sqlite3.Connection) -> str:
            return _store_object(conn, record, kb, if_match, if_none_match)

        return await self._write(op)

    async def get_version(self, bucket: str, key: str,
                          version_id: str | None) -> ObjectRecord | None:
        """The named version or the latest one, delete markers included (inline reads)."""
        kb = key_bytes(key)
        conn = self._reader()
        # One snapshot: a write between the two SELECTs may move the version from
        # `objects` to `object_versions` (a put archiving it) or back (deleting the current
        # version promotes it), and two snapshots would then miss it in both tables.
        with _snapshot(conn):
            row = conn.execute(_SELECT_OBJECT_WITH_DATA, (bucket, kb)).fetchone()
            if row is not None and (version_id is None or row[1] == version_id):
                return _record(bucket, key, row)
            if version_id is None:
                found = conn.execute(_SELECT_VERSION_ROW + " ORDER BY seq DESC LIMIT 1",
                                     (bucket, kb)).fetchone()
                # Only a delete marker can be the latest version without being current.
                return _version_record(bucket, key, found) if found is not None and found[16] \
                    else None
            found = conn.execute(_SELECT_VERSION_ROW + " AND version_id = ?",
                                 (bucket, kb, version_id)).fetchone()
            return None if found is None else _version_record(bucket, key, found)

    async def set_object_tags(self, bucket: str, key: str, tags: dict[str, str],
                              version_id: str | None = None) -> ObjectRecord:
        """Replace the tags of the current object or of one version, nothing else; return
        the version as it now is.

        ``NoSuchBucket`` if the bucket is gone, ``NoSuchKey`` / ``NoSuchVersion`` if the
        object or version is, ``MethodNotAllowed`` for a delete marker.
        """
        kb = key_bytes(key)
        encoded = dumps(tags)

        def op(conn: sqlite3.Connection) -> ObjectRecord:
            if _update_object(conn, bucket, key, kb, "tags", encoded, version_id):
                row = conn.execute(_SELECT_OBJECT_WITH_DATA, (bucket, kb)).fetchone()
                return _record(bucket, key, row)
            row = conn.execute(_SELECT_VERSION_ROW + " AND version_id = ?",
                               (bucket, kb, version_id)).fetchone()
            return _version_record(bucket, key, row)

        return await self._write(op)

    async def set_object_acl(self, bucket: str, key: str, acl: str,
                             version_id: str | None = None) -> None:
        """Replace the ACL (stored text) of the current object or of one version only.

        Errors as :meth:`set_object_tags`.
        """
        kb = key_bytes(key)

        await self._write(
            lambda conn: _update_object(conn, bucket, key, kb, "acl", acl, version_id))

    async def delete_object(self, bucket: str, key: str, version_id: str | None = None, *,
                            older_than: float | None = None) -> DeleteResult:
        """Delete as the bucket's versioning says (see the contract); one transaction."""
        kb = key_bytes(key)

        def op(conn: sqlite3.Connection) -> DeleteResult:
            return _delete(conn, bucket, key, kb, version_id, older_than)

        return await self._write(op)

    async def delete_objects(self, bucket: str,
                             items: list[tuple[str, str | None]]) -> list[DeleteResult]:
        """Delete several (key, version) in one transaction; results aligned with ``items``."""
        encoded = [(k, key_bytes(k), v) for k, v in items]

        def op(conn: sqlite3.Connection) -> list[DeleteResult]:
            versioning = _versioning_of(conn, bucket)  # one transaction: read it once
            return [_delete(conn, bucket, k, kb, v, None, versioning) for k, kb, v in encoded]

        return await self._write(op)

    async def remove_expired_delete_marker(self, bucket: str, key: str) -> str | None:
        """Remove the key's latest delete marker when no other version is left."""
        kb = key_bytes(key)

        def op(conn: sqlite3.Connection) -> str | None:
            _versioning_of(conn, bucket)
            if conn.execute("SELECT 1 FROM objects WHERE bucket = ? AND key = ?",
                            (bucket, kb)).fetchone() is not None:
                return None
            rows = conn.execute(
                "SELECT seq, version_id, delete_marker FROM object_versions "
                "WHERE bucket = ? AND key = ? ORDER BY seq DESC LIMIT 2", (bucket, kb)
            ).fetchall()
            if len(rows) != 1 or not rows[0][2]:
                return None
            conn.execute("DELETE FROM object_versions WHERE bucket = ? AND key = ? AND seq = ?",
                         (bucket, kb, rows[0][0]))
            return str(rows[0][1])

        return await self._write(op)

    async def list_object_versions(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionPage:
        """Versions and delete markers by key, newest first (read thread)."""
        p, d, km = key_bytes(prefix), key_bytes(delimiter), key_bytes(key_marker)

        def read(conn: sqlite3.Connection) -> VersionPage:
            _require_bucket(conn, bucket)
            return _list_versions(conn, bucket, p, d, km, version_id_marker, max_keys)

        return await self._read(read)

    async def buckets_with_lifecycle(self) -> list[Bucket]:
        """Buckets with a lifecycle configuration, by name."""

        def read(conn: sqlite3.Connection) -> list[Bucket]:
            rows = conn.execute(f"SELECT {_BUCKET_COLUMNS} FROM buckets "
                                "WHERE lifecycle IS NOT NULL ORDER BY name").fetchall()
            return [_bucket(r) for r in rows]

        return await self._read(read)

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        """List in byte order, rolling up and seeking past common prefixes (read thread)."""
        p, d, sa = key_bytes(prefix), key_bytes(delimiter), key_bytes(start_after)

        def read(conn: sqlite3.Connection) -> ListPage:
            _require_bucket(conn, bucket)
            page, rows = _list(conn, bucket, p, d, sa, max_keys)
            self.list_rows_read += rows
            return page

        return await self._read(read)

    # ------------------------------------------------------------ multipart uploads

    async def create_upload(self, upload: Upload) -> None:
        """Record a new multipart upload; ``NoSuchBucket`` if the bucket is gone."""
        params = (
            upload.upload_id, upload.bucket, key_bytes(upload.key), upload.owner_id,
            upload.initiated, upload.content_type, dumps(upload.headers),
            dumps(upload.metadata), upload.checksum_algorithm, upload.checksum_type,
            upload.storage_class, dumps(upload.tags), upload.acl, upload.sse,
        )

        def op(conn: sqlite3.Connection) -> None:
            _require_bucket(conn, upload.bucket)
            conn.execute(f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) VALUES "
                         "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", params)

        await self._write(op)

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> Upload | None:
        """The upload, if it exists and belongs to (bucket, key)."""
        row = self._reader().execute(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE upload_id = ?", (upload_id,)
        ).fetchone()
        if row is None or row[1] != bucket or bytes(row[2]) != key_bytes(key):
            return None
        return _upload(row)

    async def put_part(self, part: UploadedPart) -> None:
        """Record a part, queueing the blob of a part it replaces; ``NoSuchUpload``."""
        params = (
            part.upload_id, part.number, part.blob_id, part.size, part.etag,
            part.last_modified, dumps(part.checksums),
        )

        def op(conn: sqlite3.Connection) -> None:
            if conn.execute(
                "SELECT 1 FROM uploads WHERE upload_id = ?", (part.upload_id,)
            ).fetchone() is None:
                raise errors.NoSuchUpload(UploadId=part.upload_id)
            old = conn.execute(
                "SELECT blob_id FROM upload_parts WHERE upload_id = ? AND number = ?",
                (part.upload_id, part.number),
            ).fetchone()
            conn.execute(
                f"INSERT OR REPLACE INTO upload_parts ({_PART_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                params,
            )
            if old is not None and old[0] and old[0] != part.blob_id:
                _queue_deletion(conn, old[0])
            _unqueue(conn, [part.blob_id])

        await self._write(op)

    async def list_parts(
        self, upload_id: str, number_marker: int = 0, max_parts: int = 1000
    ) -> tuple[list[UploadedPart], bool]:
        """Parts numbered above ``number_marker``, at most ``max_parts``; and is_truncated."""

        def read(conn: sqlite3.Connection) -> tuple[list[UploadedPart], bool]:
            limit = max(max_parts, 0)
            rows = conn.execute(
                f"SELECT {_PART_COLUMNS} FROM upload_parts WHERE upload_id = ? AND number > ? "
                "ORDER BY number LIMIT ?",
                (upload_id, number_marker, limit + 1),
            ).fetchall()
            return [_part(r) for r in rows[:limit]], len(rows) > limit

        return await self._read(read)

    async def complete_upload(
        self,
        upload_id: str,
        record: ObjectRecord,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Make ``record`` current and drop the upload, in one transaction.

        The manifest is checked against the upload's parts as they are inside the
        transaction (see :func:`_current_manifest`). Blobs of parts the manifest does not
        use, and of the replaced object, are queued.
        """
        kb = key_bytes(record.key)

        def op(conn: sqlite3.Connection) -> str:
            if conn.execute(
                "SELECT 1 FROM uploads WHERE upload_id = ?", (upload_id,)
            ).fetchone() is None:
                raise errors.NoSuchUpload(UploadId=upload_id)
            final = _current_manifest(conn, upload_id, record)
            version_id = _store_object(conn, final, kb, if_match, if_none_match)
            _drop_upload(conn, upload_id, keep=set(final.blob_ids()))
            return version_id

        return await self._write(op)

    async def abort_upload(self, upload_id: str) -> bool:
        """Drop the upload and queue its part blobs; whether it existed."""

        def op(conn: sqlite3.Connection) -> bool:
            return _drop_upload(conn, upload_id)

        return await self._write(op)

    async def list_uploads(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadPage:
        """In-progress uploads by (key bytes, initiated, upload id), rolled up like objects.

        With ``upload_id_marker`` (and ``key_marker``), the listing resumes after that
        upload among the uploads of ``key_marker``, then continues with later keys.
        """
        p, d, km = key_bytes(prefix), key_bytes(delimiter), key_bytes(key_marker)

        def read(conn: sqlite3.Connection) -> UploadPage:
            _require_bucket(conn, bucket)
            return _list_uploads(conn, bucket, p, d, km, upload_id_marker, max_uploads)

        return await self._read(read)

    async def uploads_initiated_before(self, cutoff: float, limit: int = 1000) -> list[Upload]:
        """Uploads initiated before ``cutoff``, oldest first (abandoned-upload expiry)."""

        def read(conn: sqlite3.Connection) -> list[Upload]:
            rows = conn.execute(
                f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE initiated < ? "
                "ORDER BY initiated LIMIT ?",
                (cutoff, max(limit, 0)),
            ).fetchall()
            return [_upload(r) for r in rows]

        return await self._read(read)

    # ------------------------------------------------------------ blob collection

    async def pending_blob_deletions(self, limit: int = 1000,
                                     queued_before: float | None = None) -> list[str]:
        """Blob ids queued by committed transactions, oldest first (optionally only those
        queued no later than ``queued_before``)."""
        cutoff = math.inf if queued_before is None else queued_before

        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT blob_id FROM blob_deletions WHERE queued_at <= ? "
                "ORDER BY queued_at LIMIT ?", (cutoff, max(limit, 0)),
            ).fetchall()
            return [r[0] for r in rows]

        return await self._read(read)

    async def forget_blob_deletions(self, blob_ids: list[str]) -> None:
        """Drop ids from the deletion queue."""
        ids = list(blob_ids)

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM blob_deletions WHERE blob_id = ?", [(i,) for i in ids])

        if ids:
            await self._write(op)

    async def referenced_blobs(self, blob_ids: list[str],
                               include_queued: bool = False) -> set[str]:
        """Which of ``blob_ids`` a committed object or version, or an in-progress upload's
        part, uses (and, with ``include_queued``, which wait in the deletion queue)."""
        ids = list(blob_ids)
        tables = ("objects", "object_parts", "upload_parts", "object_versions",
                  "version_parts", *(("blob_deletions",) if include_queued else ()))

        def read(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            # One snapshot for every SELECT. References move between these tables
            # (deleting the current version or a marker promotes a version's blob and parts
            # back into objects/object_parts; a completion moves part blobs from
            # upload_parts to object_parts): with a snapshot per SELECT, a move between two
            # of them hides the blob from both, and the orphan sweeper deletes a live blob.
            with _snapshot(conn):
                for chunk in _chunks(ids):
                    marks = ",".join("?" * len(chunk))
                    for table in tables:
                        found.update(
                            r[0]
                            for r in conn.execute(
                                f"SELECT DISTINCT blob_id FROM {table} "
                                f"WHERE blob_id IN ({marks})",
                                tuple(chunk),
                            )
                        )
            return found

        if not ids:
            return set()
        return await self._read(read)

    # ----------------------------------------------------------- access-log records

    async def append_log_records(self, records: list[LogRecord]) -> None:
        """Queue records for delivery (one write op, so one share of a group commit)."""
        rows = [(r.target_bucket, r.target_prefix, r.line, r.created) for r in records]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO access_log_records (target_bucket, target_prefix, line, created) "
                "VALUES (?, ?, ?, ?)", rows)

        if rows:
            await self._write(op, seen_by_reads=False)

    async def pending_log_targets(self) -> list[str]:
        """Target buckets with queued records (the (target_bucket, id) index, no scan)."""

        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT DISTINCT target_bucket FROM access_log_records ORDER BY target_bucket"
            ).fetchall()
            return [r[0] for r in rows]

        return await self._read(read)

    async def take_log_batch(self, target_bucket: str,
                             limit: int) -> list[tuple[int, str, str]]:
        """The oldest queued records of one target, ``(id, prefix, line)``, in id order."""

        def read(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
            rows = conn.execute(
                "SELECT id, target_prefix, line FROM access_log_records "
                "WHERE target_bucket = ? ORDER BY id LIMIT ?",
                (target_bucket, max(limit, 0)),
            ).fetchall()
            return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

        return await self._read(read)

    async def deliver_log_object(self, record: ObjectRecord, record_ids: list[int],
                                 owner_id: str) -> bool:
        """Store the log object and delete its records in one transaction (exactly once).

        False (records dropped, nothing stored) when the target bucket is gone or has
        another owner now; ``ConditionalRequestConflict`` (nothing changes) when a record
        was already delivered.
        """
        kb = key_bytes(record.key)
        ids = [(i,) for i in record_ids]

        def op(conn: sqlite3.Connection) -> bool:
            # executemany's rowcount is the total over all its rows.
            deleted = conn.executemany("DELETE FROM access_log_records WHERE id = ?",
                                       ids).rowcount
            if deleted != len(ids):
                # Raising rolls this op's savepoint back: the object is not stored either.
                raise errors.ConditionalRequestConflict(
                    "Some access-log records were already delivered.")
            row = conn.execute("SELECT owner_id FROM buckets WHERE name = ?",
                               (record.bucket,)).fetchone()
            if row is None or row[0] != owner_id:
                return False
            _store_object(conn, record, kb, None, False)
            return True

        return await self._write(op)

    # ----------------------------------------------------------------------- leases

    async def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take or renew the lease until ``ttl_seconds`` from now; ``False`` while another
        holder's has not run out. One upsert on the single writer, so racing callers
        (other processes on the file included) get it at most once."""

        def op(conn: sqlite3.Connection) -> bool:
            now = time.time()
            rows = conn.execute(  # fetchall: a RETURNING statement must run to its end
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at <= ? "
                "RETURNING holder",
                (name, holder, now + ttl_seconds, now),
            ).fetchall()
            return bool(rows)

        return await self._write(op, seen_by_reads=False)

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up early if ``holder`` holds it."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

        await self._write(op, seen_by_reads=False)


# ------------------------------------------------------------------ ops (writer side)


def _migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations newer than the database; return the resulting version."""
    conn.execute(_SCHEMA_VERSION_TABLE)
    (current,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    latest = MIGRATIONS[-1][0]
    if current > latest:
        raise RuntimeError(
            f"database schema version {current} is newer than this cargohold ({latest})"
        )
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for statement in statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_version (version, applied) VALUES (?, ?)", (version, time.time())
        )
        log.info("metadata schema migrated to version %d", version)
    return max(int(current), latest)


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Run a reader's SELECTs in one read transaction, so they all see one commit.

    A reader connection has no implicit transaction (``isolation_level=None``): each
    statement otherwise reads its own, newer snapshot.
    """
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")  # a read transaction: ends it, writes nothing


def _require_bucket(conn: sqlite3.Connection, bucket: str) -> None:
    if conn.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone() is None:
        raise errors.NoSuchBucket(BucketName=bucket)


def _refuse_buckets_with_policy(conn: sqlite3.Connection, grants: dict[str, str]) -> None:
    """Spaces' rule: a bucket with a bucket policy cannot be granted to a limited key."""
    for name in grants:
        row = conn.execute("SELECT policy FROM buckets WHERE name = ?", (name,)).fetchone()
        if row is not None and row[0] is not None:
            raise errors.InvalidRequest(
                f"Bucket {name!r} has a bucket policy, so it cannot be granted to a limited "
                "access key; delete the policy first.")


def _bucket_is_empty(conn: sqlite3.Connection, bucket: str) -> bool:
    """No current object, noncurrent version or delete marker (two index probes).

    One statement, so one snapshot even on a reader outside a transaction: probing the
    tables separately could see `objects` before a delete promotes a version into it and
    `object_versions` after, and call a bucket holding that version empty.
    """
    (found,) = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = ?) "
        "OR EXISTS (SELECT 1 FROM object_versions WHERE bucket = ?)", (bucket, bucket)
    ).fetchone()
    return not found


def _versioning_of(conn: sqlite3.Connection, bucket: str) -> str:
    """The bucket's versioning state, read in the caller's transaction; ``NoSuchBucket``."""
    row = conn.execute("SELECT versioning FROM buckets WHERE name = ?", (bucket,)).fetchone()
    if row is None:
        raise errors.NoSuchBucket(BucketName=bucket)
    return str(row[0])


def _update_object(conn: sqlite3.Connection, bucket: str, key: str, kb: bytes, column: str,
                   value: str, version_id: str | None = None) -> bool:
    """Set one attribute column of the current object (``True``) or of the noncurrent
    version ``version_id`` (``False``); data, ETag and Last-Modified stay."""
    assert column in ("tags", "acl")  # never from input: column names are code
    _require_bucket(conn, bucket)
    if version_id is None:
        cur = conn.execute(f"UPDATE objects SET {column} = ? WHERE bucket = ? AND key = ?",
                           (value, bucket, kb))
        if cur.rowcount == 0:
            raise errors.NoSuchKey(Key=key)
        return True
    cur = conn.execute(f"UPDATE objects SET {column} = ? WHERE bucket = ? AND key = ? "
                       "AND version_id = ?", (value, bucket, kb, version_id))
    if cur.rowcount:
        return True
    row = conn.execute("SELECT delete_marker FROM object_versions "
                       "WHERE bucket = ? AND key = ? AND version_id = ?",
                       (bucket, kb, version_id)).fetchone()
    if row is None:
        raise errors.NoSuchVersion(Key=key, VersionId=version_id)
    if row[0]:
        raise errors.MethodNotAllowed(
            "The specified method is not allowed against this resource.",
            Method="PUT", ResourceType="DeleteMarker")
    conn.execute(f"UPDATE object_versions SET {column} = ? WHERE bucket = ? AND key = ? "
                 "AND version_id = ?", (value, bucket, kb, version_id))
    return False


def _update_bucket(conn: sqlite3.Connection, name: str, column: str,
                   value: str | None) -> None:
    # Never from input: column names are code.
    assert column in ("acl", "policy", "cors", "website", "logging", "versioning", "lifecycle")
    cur = conn.execute(f"UPDATE buckets SET {column} = ? WHERE name = ?", (value, name))
    if cur.rowcount == 0:
        raise errors.NoSuchBucket(BucketName=name)


def _queue_deletion(conn: sqlite3.Connection, blob_id: str) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO blob_deletions (blob_id, queued_at) VALUES (?, ?)",
        (blob_id, time.time()),
    )


def _unqueue(conn: sqlite3.Connection, blob_ids: Iterable[str]) -> None:
    # A blob that is referenced again must not be deleted by a stale queue entry.
    conn.executemany(
        "DELETE FROM blob_deletions WHERE blob_id = ?", [(b,) for b in blob_ids if b]
    )


def _store_object(
    conn: sqlite3.Connection,
    record: ObjectRecord,
    kb: bytes,
    if_match: str | None,
    if_none_match: bool,
) -> str:
    """Make ``record`` current at its key: the heart of PUT, copy and multipart completion.

    Checks the bucket and the conditions (``if_match`` without quotes; ``"*"`` means "any
    current object"), keeps the current object as a noncurrent version when versioning
    says so, upserts the row and its manifest rows, and queues every blob of a replaced
    object that the new one does not use. Returns the new version id.
    """
    versioning = _versioning_of(conn, record.bucket)
    entry = ListEntry.of(record)
    current = conn.execute(
        "SELECT blob_id, etag, parts, version_id, seq FROM objects WHERE bucket = ? AND key = ?",
        (record.bucket, kb),
    ).fetchone()
    if if_none_match and current is not None:
        raise errors.PreconditionFailed(Condition="If-None-Match")
    if if_match is not None:
        wanted = if_match.strip().strip('"')
        if current is None:
            raise errors.NoSuchKey(Key=record.key)
        if wanted != "*" and current[1] != wanted:
            raise errors.PreconditionFailed(Condition="If-Match")
    replaced = current  # the current object, when this write replaces it for good
    version_id = NULL_VERSION
    if not versioning:
        # Never versioned: no history to order, only the clock (kept for a later Enable).
        seq = max(time.time_ns(), current[4] + 1 if current is not None else 0)
    else:
        seq, top = _next_seq(conn, record.bucket, kb, current[4] if current is not None else 0)
        now = time.time()
        if current is None:  # only then can a delete marker be the latest version
            _end_latest_marker(conn, record.bucket, kb, top, now)
        if versioning == "Enabled":
            version_id = new_version_id(seq)
        else:  # Suspended: this write is the null version; an older null one goes
            _discard_noncurrent_null(conn, record.bucket, kb)
        if current is not None and (versioning == "Enabled" or current[3] != NULL_VERSION):
            _archive_current(conn, record.bucket, kb, current[4], now)
            replaced = None
    conn.execute(
        _UPSERT_OBJECT,
        (
            record.bucket, kb, version_id, record.blob_id, record.size,
            record.etag, record.last_modified, record.content_type, dumps(record.headers),
            dumps(record.metadata), dumps(record.checksums), record.storage_class,
            parts_json(record.parts), entry.checksum_algorithm, entry.checksum_type,
            dumps(record.tags), record.acl, record.sse, seq,
        ),
    )
    if record.inline is not None:
        conn.execute("INSERT OR REPLACE INTO object_data (bucket, key, data) VALUES (?, ?, ?)",
                     (record.bucket, kb, record.inline))
    elif replaced is not None:
        conn.execute("DELETE FROM object_data WHERE bucket = ? AND key = ?", (record.bucket, kb))
    new_ids = record.blob_ids()
    if replaced is not None:
        old_parts = parts_from_json(replaced[2])
        if old_parts:
            conn.execute(
                "DELETE FROM object_parts WHERE bucket = ? AND key = ?", (record.bucket, kb)
            )
        old_ids = [p.blob_id for p in old_parts] if old_parts else [replaced[0]]
        keep = set(new_ids)
        for blob_id in old_ids:
            if blob_id and blob_id not in keep:
                _queue_deletion(conn, blob_id)
    if record.parts:
        conn.executemany(
            "INSERT OR REPLACE INTO object_parts (bucket, key, number, blob_id) "
            "VALUES (?, ?, ?, ?)",
            [(record.bucket, kb, p.number, p.blob_id) for p in record.parts],
        )
    _unqueue(conn, new_ids)
    return version_id


def _next_seq(conn: sqlite3.Connection, bucket: str, kb: bytes,
              current_seq: int) -> tuple[int, int | None]:
    """A place after every version of the key (the clock unless it stepped back), and the
    place of the key's newest noncurrent version or marker (``None`` if it has none)."""
    (top,) = conn.execute("SELECT max(seq) FROM object_versions WHERE bucket = ? AND key = ?",
                          (bucket, kb)).fetchone()
    return max(time.time_ns(), current_seq + 1, (top or 0) + 1), top


def _end_latest_marker(conn: sqlite3.Connection, bucket: str, kb: bytes, top: int | None,
                       now: float) -> None:
    """A newer version is coming: a delete marker that was the latest becomes noncurrent.

    Only the key's newest row (``top``, from :func:`_next_seq`) can be that marker, so it
    is named by its primary key: one row touched, whatever the bucket holds.
    """
    if top is None:
        return
    conn.execute("UPDATE object_versions SET noncurrent_since = ? WHERE bucket = ? AND key = ? "
                 "AND seq = ? AND noncurrent_since IS NULL", (now, bucket, kb, top))


def _archive_current(conn: sqlite3.Connection, bucket: str, kb: bytes, seq: int,
                     now: float) -> None:
    """Move the current object to the noncurrent versions, bytes and blobs with it."""
    conn.execute(
        "INSERT INTO object_versions (bucket, key, seq, version_id, delete_marker, "
        f"noncurrent_since, {_SHARED_COLUMNS}, data) "
        "SELECT o.bucket, o.key, o.seq, o.version_id, 0, ?, "
        + ", ".join("o." + c.strip() for c in _SHARED_COLUMNS.split(","))
        + ", d.data FROM objects o "
        "LEFT JOIN object_data d ON d.bucket = o.bucket AND d.key = o.key "
        "WHERE o.bucket = ? AND o.key = ?", (now, bucket, kb))
    conn.execute("INSERT INTO version_parts (bucket, key, seq, number, blob_id) "
                 "SELECT bucket, key, ?, number, blob_id FROM object_parts "
                 "WHERE bucket = ? AND key = ?", (seq, bucket, kb))
    for table in ("object_parts", "object_data", "objects"):
        conn.execute(f"DELETE FROM {table} WHERE bucket = ? AND key = ?", (bucket, kb))


def _promote_latest(conn: sqlite3.Connection, bucket: str, kb: bytes) -> None:
    """After the latest version went: the newest remaining one becomes current (a delete
    marker stays where it is, now hiding the key)."""
    row = conn.execute("SELECT seq, delete_marker FROM object_versions "
                       "WHERE bucket = ? AND key = ? ORDER BY seq DESC LIMIT 1",
                       (bucket, kb)).fetchone()
    if row is None:
        return
    seq, marker = row
    where = (bucket, kb, seq)
    if marker:
        conn.execute("UPDATE object_versions SET noncurrent_since = NULL "
                     "WHERE bucket = ? AND key = ? AND seq = ?", where)
        return
    conn.execute(f"INSERT INTO objects (bucket, key, seq, version_id, {_SHARED_COLUMNS}) "
                 f"SELECT bucket, key, seq, version_id, {_SHARED_COLUMNS} FROM object_versions "
                 "WHERE bucket = ? AND key = ? AND seq = ?", where)
    conn.execute("INSERT INTO object_data (bucket, key, data) SELECT bucket, key, data "
                 "FROM object_versions WHERE bucket = ? AND key = ? AND seq = ? "
                 "AND data IS NOT NULL", where)
    conn.execute("INSERT INTO object_parts (bucket, key, number, blob_id) "
                 "SELECT bucket, key, number, blob_id FROM version_parts "
                 "WHERE bucket = ? AND key = ? AND seq = ?", where)
    for table in ("version_parts", "object_versions"):
        conn.execute(f"DELETE FROM {table} WHERE bucket = ? AND key = ? AND seq = ?", where)


def _discard_version(conn: sqlite3.Connection, bucket: str, key: str, kb: bytes,
                     where: str, args: tuple[Any, ...]) -> tuple[ObjectRecord, bool] | None:
    """Delete one noncurrent version (or marker) for good, queueing its blobs: the removed
    version and whether it was the latest; ``None`` if no row matched."""
    row = conn.execute(
        _SELECT_VERSION_ROW + f" AND {where}", (bucket, kb, *args)).fetchone()
    if row is None:
        return None
    removed = _version_record(bucket, key, row)
    seq, since = conn.execute(
        "SELECT seq, noncurrent_since FROM object_versions WHERE bucket = ? AND key = ? "
        f"AND {where}", (bucket, kb, *args)).fetchone()
    for table in ("version_parts", "object_versions"):
        conn.execute(f"DELETE FROM {table} WHERE bucket = ? AND key = ? AND seq = ?",
                     (bucket, kb, seq))
    for blob_id in removed.blob_ids():
        _queue_deletion(conn, blob_id)
    return removed, since is None


def _discard_noncurrent_null(conn: sqlite3.Connection, bucket: str, kb: bytes) -> None:
    """A Suspended write or delete replaces the null version wherever it is."""
    _discard_version(conn, bucket, "", kb, "version_id = ?", (NULL_VERSION,))


def _insert_marker(conn: sqlite3.Connection, bucket: str, kb: bytes, seq: int,
                   version_id: str, now: float) -> None:
    conn.execute(
        "INSERT INTO object_versions (bucket, key, seq, version_id, delete_marker, "
        f"noncurrent_since, {_SHARED_COLUMNS}, data) VALUES (?, ?, ?, ?, 1, NULL, '', 0, '', ?, "
        "'', '{}', '{}', '{}', 'STANDARD', '[]', '', '', '{}', '', '', NULL)",
        (bucket, kb, seq, version_id, now))


def _delete(conn: sqlite3.Connection, bucket: str, key: str, kb: bytes,
            version_id: str | None, older_than: float | None,
            versioning: str | None = None) -> DeleteResult:
    """DeleteObject inside one transaction (see ``MetadataStore.delete_object``);
    ``versioning``: the bucket's state if the caller read it in this transaction."""
    if versioning is None:
        versioning = _versioning_of(conn, bucket)
    if not versioning and version_id is None and older_than is None:
        # The plain delete of a bucket that never had versioning: one read of the row.
        return DeleteResult(None, False, _delete_one(conn, bucket, key, kb))
    current = conn.execute(
        "SELECT version_id, seq, last_modified FROM objects WHERE bucket = ? AND key = ?",
        (bucket, kb)).fetchone()
    if version_id is not None:
        if current is not None and current[0] == version_id:
            if older_than is not None:  # lifecycle never removes a current version
                return DeleteResult(version_id, False, None)
            removed = _delete_one(conn, bucket, key, kb)
            _promote_latest(conn, bucket, kb)
            return DeleteResult(version_id, False, removed)
        where = "version_id = ?"
        args: tuple[Any, ...] = (version_id,)
        if older_than is not None:
            where, args = "version_id = ? AND noncurrent_since < ?", (version_id, older_than)
        found = _discard_version(conn, bucket, key, kb, where, args)
        if found is None:
            return DeleteResult(version_id, False, None)
        gone, was_latest = found
        if was_latest:
            _promote_latest(conn, bucket, kb)
        return DeleteResult(version_id, gone.delete_marker,
                            None if gone.delete_marker else gone)
    if older_than is not None and (current is None or current[2] >= older_than):
        return DeleteResult(None, False, None)
    if not versioning:
        return DeleteResult(None, False, _delete_one(conn, bucket, key, kb))
    now = time.time()
    seq, top = _next_seq(conn, bucket, kb, current[1] if current is not None else 0)
    if current is None:  # only then can a delete marker be the latest version
        _end_latest_marker(conn, bucket, kb, top, now)
    removed = None
    if versioning == "Enabled":
        marker_id = new_version_id(seq)
        if current is not None:
            _archive_current(conn, bucket, kb, current[1], now)
    else:  # Suspended: the null version (current or not) gives way to a null marker
        marker_id = NULL_VERSION
        _discard_noncurrent_null(conn, bucket, kb)
        if current is not None:
            if current[0] == NULL_VERSION:
                removed = _delete_one(conn, bucket, key, kb)
            else:
                _archive_current(conn, bucket, kb, current[1], now)
    _insert_marker(conn, bucket, kb, seq, marker_id, now)
    return DeleteResult(marker_id, True, removed)


def _delete_one(
    conn: sqlite3.Connection, bucket: str, key: str, kb: bytes
) -> ObjectRecord | None:
    row = conn.execute(_SELECT_OBJECT, (bucket, kb)).fetchone()
    if row is None:
        return None
    removed = _record(bucket, key, row)
    conn.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, kb))
    conn.execute("DELETE FROM object_data WHERE bucket = ? AND key = ?", (bucket, kb))
    if removed.parts:
        conn.execute("DELETE FROM object_parts WHERE bucket = ? AND key = ?", (bucket, kb))
    for blob_id in removed.blob_ids():
        _queue_deletion(conn, blob_id)
    return removed


def _current_manifest(conn: sqlite3.Connection, upload_id: str,
                      record: ObjectRecord) -> ObjectRecord:
    """``record`` with its manifest checked against the upload's parts as they are now.

    The completion read the parts before this transaction. A part re-uploaded since then
    has a new blob, and the one the manifest names is queued for deletion (the GC may
    already have removed it): naming it would make an object with a missing part. The same
    ETag and size mean the same bytes, so the current blob takes its place; anything else
    is ``InvalidPart``, as if the completion had read the new part.
    """
    if not record.parts:
        return record
    current = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT number, blob_id, size, etag, checksums FROM upload_parts "
            "WHERE upload_id = ?", (upload_id,))
    }
    parts: list[PartRef] = []
    for ref in record.parts:
        now = current.get(ref.number)
        if now is None or now[1] != ref.size or now[2] != ref.etag:
            raise errors.InvalidPart(
                "One or more of the specified parts could not be found. The part may not "
                "have been uploaded, or the specified entity tag may not match the part's "
                "entity tag.", UploadId=upload_id, PartNumber=str(ref.number), ETag=ref.etag)
        parts.append(ref if now[0] == ref.blob_id else
                     dataclasses.replace(ref, blob_id=now[0], checksums=loads(now[3])))
    return dataclasses.replace(record, parts=tuple(parts))


def _drop_upload(conn: sqlite3.Connection, upload_id: str, keep: set[str] | None = None) -> bool:
    """Delete an upload and its parts, queueing part blobs not in ``keep``."""
    for (blob_id,) in conn.execute(
        "SELECT blob_id FROM upload_parts WHERE upload_id = ?", (upload_id,)
    ).fetchall():
        if blob_id and (keep is None or blob_id not in keep):
            _queue_deletion(conn, blob_id)
    # upload_parts rows go with it (ON DELETE CASCADE).
    cur = conn.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
    return cur.rowcount > 0


# -------------------------------------------------------------------------- listing


_Row = Sequence[Any]
_Query = Callable[[bytes, int], sqlite3.Cursor]


def _seek_scan(
    query: _Query, prefix: bytes, delimiter: bytes, low: bytes, budget: int
) -> tuple[list[tuple[bytes, _Row | None]], bool, int]:
    """Walk keys >= ``low`` under ``prefix``: ``(items, is_truncated, rows stepped)``.

    ``query(low, limit)`` returns a cursor over rows (key bytes first) in key order. Items
    are ``(key, row)`` for entries and ``(common_prefix, None)`` for rollups, at most
    ``budget`` of them; one more is looked for so ``is_truncated`` is exact. The cursor is
    stepped lazily, so the query that meets a common prefix is abandoned right there and
    the next one seeks to the prefix's successor: keys under a common prefix are never read
    beyond the first.
    """
    items: list[tuple[bytes, _Row | None]] = []
    rows_read = 0
    plen = len(prefix)
    while True:
        want = budget - len(items) + 1  # one more than fits: exact is_truncated
        cursor = query(low, want)
        seek_to: bytes | None = None
        try:
            for row in cursor:
                rows_read += 1
                if len(items) == budget:
                    return items, True, rows_read
                key: bytes = row[0]
                cut = key.find(delimiter, plen) if delimiter else -1
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    items.append((common, None))
                    seek_to = successor(common)
                    if seek_to is None:  # nothing sorts after this prefix
                        return items, False, rows_read
                    break  # abandon this cursor: seek past the common prefix
                items.append((key, row))
        finally:
            cursor.close()
        if seek_to is None:
            # Ran dry: fewer rows than `want` (with `want` rows the budget check above
            # returns), so nothing is left in the range.
            return items, False, rows_read
        low = seek_to


def _range_query(
    conn: sqlite3.Connection, bounded_sql: str, unbounded_sql: str, bucket: str, prefix: bytes
) -> _Query:
    high = successor(prefix) if prefix else None

    def query(low: bytes, limit: int) -> sqlite3.Cursor:
        if high is None:
            return conn.execute(unbounded_sql, (bucket, low, limit))
        return conn.execute(bounded_sql, (bucket, low, high, limit))

    return query


def _list(
    conn: sqlite3.Connection,
    bucket: str,
    prefix: bytes,
    delimiter: bytes,
    start_after: bytes,
    max_keys: int,
) -> tuple[ListPage, int]:
    """One page of objects and the number of rows stepped (see :func:`_seek_scan`)."""
    low = scan_start(prefix, delimiter, start_after)
    if max_keys <= 0 or low is None:
        return ListPage([], [], False, None), 0
    query = _range_query(conn, _LIST_BOUNDED, _LIST_UNBOUNDED, bucket, prefix)
    if not delimiter:
        # Nothing to roll up: one fetch of a page and one more row (exact IsTruncated);
        # ~30% less CPU than stepping the rows one by one for a 1000-key page.
        rows = query(low, max_keys + 1).fetchall()
        truncated = len(rows) > max_keys
        listed = [_list_entry(r[0].decode("utf-8"), r) for r in rows[:max_keys]]
        marker = listed[-1].key if truncated else None
        return ListPage(listed, [], truncated, marker), len(rows)
    items, truncated, rows_read = _seek_scan(query, prefix, delimiter, low, max_keys)
    entries: list[ListEntry] = []
    prefixes: list[str] = []
    for key, row in items:
        if row is None:
            prefixes.append(key.decode("utf-8"))
        else:
            entries.append(_list_entry(key.decode("utf-8"), row))
    next_marker = items[-1][0].decode("utf-8") if truncated else None
    return ListPage(entries, prefixes, truncated, next_marker), rows_read


def _list_uploads(
    conn: sqlite3.Connection,
    bucket: str,
    prefix: bytes,
    delimiter: bytes,
    key_marker: bytes,
    upload_id_marker: str,
    max_uploads: int,
) -> UploadPage:
    """One page of uploads: the marker key's later uploads first, then later keys."""
    empty = UploadPage([], [], False, None, None)
    low = scan_start(prefix, delimiter, key_marker)
    if max_uploads <= 0:
        return empty
    items: list[tuple[bytes, _Row | None]] = []
    truncated = False
    if upload_id_marker and low == key_marker + b"\x00" and key_marker.startswith(prefix):
        # Uploads of the marker key after the marker upload, in (initiated, id) order. If
        # that upload is gone, fall back to S3's rule: upload ids greater than the marker.
        # (A marker key outside the prefix has no uploads to show here.)
        mark = conn.execute(
            "SELECT initiated FROM uploads WHERE upload_id = ?", (upload_id_marker,)
        ).fetchone()
        if mark is not None:
            after = "(initiated > ? OR (initiated = ? AND upload_id > ?))"
            args: tuple[Any, ...] = (mark[0], mark[0], upload_id_marker)
        else:
            after, args = "upload_id > ?", (upload_id_marker,)
        same_key = conn.execute(
            f"SELECT key, {_UPLOAD_COLUMNS} FROM uploads WHERE bucket = ? AND key = ? "
            f"AND {after} ORDER BY initiated, upload_id LIMIT ?",
            (bucket, key_marker, *args, max_uploads + 1),
        ).fetchall()
        truncated = len(same_key) > max_uploads
        items = [(bytes(r[0]), r) for r in same_key[:max_uploads]]
    if not truncated and low is not None:
        query = _range_query(conn, _LIST_UPLOADS_BOUNDED, _LIST_UPLOADS_UNBOUNDED, bucket, prefix)
        more, truncated, _ = _seek_scan(query, prefix, delimiter, low, max_uploads - len(items))
        items += more
    uploads = [_upload(row[1:]) for _, row in items if row is not None]
    prefixes = [key.decode("utf-8") for key, row in items if row is None]
    if not truncated or not items:
        return UploadPage(uploads, prefixes, False, None, None)
    last_key, last_row = items[-1]
    return UploadPage(
        uploads, prefixes, True, last_key.decode("utf-8"),
        None if last_row is None else str(last_row[1]),
    )


def _list_versions(
    conn: sqlite3.Connection,
    bucket: str,
    prefix: bytes,
    delimiter: bytes,
    key_marker: bytes,
    version_id_marker: str,
    max_keys: int,
) -> VersionPage:
    """One page of versions: the marker key's older versions first, then later keys."""
    low = scan_start(prefix, delimiter, key_marker)
    if max_keys <= 0:
        return VersionPage([], [], False, None, None)
    items: list[tuple[bytes, _Row | None]] = []
    truncated = False
    if version_id_marker and low == key_marker + b"\x00" and key_marker.startswith(prefix):
        mark = conn.execute(
            "SELECT seq FROM objects WHERE bucket = ? AND key = ? AND version_id = ? "
            "UNION ALL SELECT seq FROM object_versions WHERE bucket = ? AND key = ? "
            "AND version_id = ?",
            (bucket, key_marker, version_id_marker) * 2).fetchone()
        if mark is not None:  # a vanished marker version: the key is simply done
            same_key = conn.execute(
                _LIST_VERSIONS.format(where="key = ? AND seq < ?"),
                (bucket, key_marker, mark[0]) * 2 + (max_keys + 1,)).fetchall()
            truncated = len(same_key) > max_keys
            items = [(bytes(r[0]), r) for r in same_key[:max_keys]]
    if not truncated and low is not None:
        high = successor(prefix) if prefix else None
        bounded = _LIST_VERSIONS.format(where="key >= ? AND key < ?")
        unbounded = _LIST_VERSIONS.format(where="key >= ?")

        def query(start: bytes, limit: int) -> sqlite3.Cursor:
            if high is None:
                return conn.execute(unbounded, (bucket, start, bucket, start, limit))
            return conn.execute(bounded, (bucket, start, high, bucket, start, high, limit))

        more, truncated, _ = _seek_scan(query, prefix, delimiter, low, max_keys - len(items))
        items += more
    entries = [
        VersionEntry(key.decode("utf-8"), row[2], bool(row[3]) or row[11] is None,
                     bool(row[4]), row[5], row[6], row[7], row[8], row[9], row[10], row[11])
        for key, row in items if row is not None
    ]
    prefixes = [key.decode("utf-8") for key, row in items if row is None]
    if not truncated or not items:
        return VersionPage(entries, prefixes, False, None, None)
    last_key, last_row = items[-1]
    return VersionPage(entries, prefixes, True, last_key.decode("utf-8"),
                       None if last_row is None else str(last_row[2]))
