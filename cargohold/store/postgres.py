"""The shared metadata store: PostgreSQL through asyncpg.

Several gateway processes, on several machines, share one database. The semantics are
:class:`cargohold.store.sqlite.SqliteStore`'s, statement for statement where they can be;
the contract tests (``tests/test_store_contract.py``) run against both.

Connections
-----------
One ``asyncpg`` pool per process. A point read is one statement on a pooled connection
(asyncpg prepares and caches it per connection, so a repeat costs one round trip); the pool
does not reset a connection on release (nothing here leaves session state behind), which
would cost a second round trip per read. Listings use one connection for their few queries.

Transactions and concurrency
----------------------------
Every write is one transaction in READ COMMITTED. Correctness under concurrency from many
processes rests on transaction-scoped advisory locks taken (in the round trip of ``BEGIN``)
before anything is read, so every statement that follows sees what the previous holder
committed (each READ COMMITTED statement takes a fresh snapshot). Shared locks are taken
before exclusive ones, each kind in ascending id order, and no advisory lock is taken later
in a transaction, so these locks cannot deadlock. A transaction holds a bounded number of
them (at most ``_KEY_LOCKS_MAX`` key locks plus two): PostgreSQL keeps advisory locks in a
shared table sized for about ``max_locks_per_transaction`` (64) per connection, and when it
is full every transaction on the server fails with "out of shared memory".

* **Key locks.** A write that touches a key's rows (current object, versions, parts, inline
  bytes) holds an exclusive lock on a 64-bit hash of (bucket, key). So two racing
  ``If-None-Match: *`` PUTs of a missing key have exactly one winner, the conditions are
  checked against what is current, and a key's versions get strictly increasing ``seq``
  (max of the database clock in ns, the current version's + 1 and the newest noncurrent
  one's + 1). DeleteObjects locks its keys up front, in transactions of at most
  ``_KEY_LOCKS_MAX`` keys.
* **Bucket locks.** Every write under a bucket (object writes, tags and ACLs, delete
  markers, new uploads) holds an advisory lock on the bucket *shared*; ``delete_bucket``
  takes it exclusively, so it waits for the writes in flight and
  then sees them, and writes that come later find the bucket gone. (Not a row lock on
  ``buckets`` nor a foreign key: those share-lock one hot row on every write, which writes
  a MultiXact and WAL.)
* **Upload locks.** ``put_part`` holds its upload's advisory lock shared, plus an exclusive
  one on (upload, part number) that orders re-uploads of one part; completion and abort
  take the upload's lock exclusively before they read its parts. So of a completion and an
  abort exactly one finds the upload, and no part recorded meanwhile is dropped without its
  blob being queued. ``delete_bucket`` locks its uploads' rows ``FOR UPDATE`` instead (a
  bucket may have thousands), which ``put_part``'s ``FOR KEY SHARE`` on its upload's row
  waits for, and then finds the upload gone.
* **Grants vs. policies**, **one owner's bucket count**: an advisory lock each.
* **Leases** are one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` on the database clock.

Deadlocks and serialization failures (SQLSTATE 40P01/40001) are retried with a short
jittered backoff; a connection lost before ``COMMIT`` was sent is retried too (the server
rolled the transaction back). A statement unanswered for ``_COMMAND_TIMEOUT`` (a database
host gone without a reset) is ``SlowDown`` at once, and its connection is dropped. What is
left becomes ``SlowDown`` (overload: no connection, too many clients, retries exhausted) or
``InternalError``.

Key order
---------
Keys are ``bytea`` holding their UTF-8 bytes, compared as bytes exactly as SQLite compares
its BLOBs, so listings agree to the byte. Names that are ordered (buckets, accounts, access
keys, upload ids) are ``text COLLATE "C"``. Listings seek past common prefixes like SQLite's
(see :func:`_seek_scan`), fetching small batches while common prefixes come thick and
larger ones while plain keys do.

Schema
------
``MIGRATIONS`` is append-only, like SQLite's; version 1 is the whole current schema. They
are applied at :meth:`PostgresStore.open` under a transaction-level advisory lock, so
gateways starting together migrate once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, NamedTuple, TypeVar, cast

import asyncpg

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

log = logging.getLogger("cargohold.store.postgres")

T = TypeVar("T")
_Conn = Any  # asyncpg.Connection (asyncpg ships no type information)
_Row = Any  # asyncpg.Record

_ATTEMPTS: Final = 5  # tries of a transaction that hit a deadlock or a lost connection
_ACQUIRE_TIMEOUT: Final = 60.0  # seconds to wait for a pooled connection (then SlowDown)
# Seconds a statement may go unanswered (then SlowDown, and the connection is dropped): a
# database host gone without a reset, or a dead network path, otherwise holds a request until
# TCP gives up, a quarter of an hour later. Statements here are point reads and writes, index
# range scans and lock waits; migrations run on a connection of their own without it.
_COMMAND_TIMEOUT = 30.0
_IN_CHUNK: Final = 5000  # ids per "= ANY($1)" statement
_FIRST_CHUNK: Final = 4  # rows a delimited listing asks for first (see _seek_scan)
_CHUNK_GROWTH: Final = 16
# At most this many key locks in one transaction (PostgreSQL's lock table holds about
# max_locks_per_transaction, 64 by default, per connection); DeleteObjects with more keys
# locks the whole bucket instead.
_KEY_LOCKS_MAX: Final = 32


# ----------------------------------------------------------------------------- schema

_OBJECT_TABLE_COLUMNS: Final = """
    blob_id text NOT NULL,
    size bigint NOT NULL,
    etag text NOT NULL,
    last_modified double precision NOT NULL,
    content_type text NOT NULL,
    headers text NOT NULL,
    metadata text NOT NULL,
    checksums text NOT NULL,
    storage_class text NOT NULL,
    parts text NOT NULL,
    checksum_algorithm text NOT NULL,
    checksum_type text NOT NULL,
    tags text NOT NULL,
    acl text NOT NULL,
    sse text NOT NULL"""

# Each migration is (version, statements). Append only: never edit a released migration,
# add a new one. Each runs in the same transaction as its schema_version row.
MIGRATIONS: Final[list[tuple[int, tuple[str, ...]]]] = [
    (
        1,
        (
            """CREATE TABLE settings (
                   name text COLLATE "C" PRIMARY KEY,
                   value text NOT NULL
               )""",
            """CREATE TABLE accounts (
                   canonical_id text COLLATE "C" PRIMARY KEY,
                   name text COLLATE "C" NOT NULL UNIQUE,
                   display_name text NOT NULL,
                   email text NOT NULL,
                   created double precision NOT NULL
               )""",
            # grants: JSON {bucket: permission}; NULL is a full-access key.
            """CREATE TABLE access_keys (
                   access_key text COLLATE "C" PRIMARY KEY,
                   secret_key text NOT NULL,
                   account_id text COLLATE "C" NOT NULL
                       REFERENCES accounts (canonical_id) ON DELETE CASCADE,
                   created double precision NOT NULL,
                   grants text
               )""",
            "CREATE INDEX access_keys_account ON access_keys (account_id, access_key)",
            # Configurations as their modules' text (NULL or '' when unset); versioning is
            # '' (never enabled), 'Enabled' or 'Suspended'.
            """CREATE TABLE buckets (
                   name text COLLATE "C" PRIMARY KEY,
                   owner_id text COLLATE "C" NOT NULL REFERENCES accounts (canonical_id),
                   region text NOT NULL,
                   created double precision NOT NULL,
                   acl text NOT NULL DEFAULT '',
                   policy text,
                   cors text,
                   website text,
                   logging text,
                   versioning text NOT NULL DEFAULT '',
                   lifecycle text
               )""",
            "CREATE INDEX buckets_owner ON buckets (owner_id, name)",
            "CREATE INDEX buckets_lifecycle ON buckets (name) WHERE lifecycle IS NOT NULL",
            # The current objects: what GET, PUT and ListObjects read. key: UTF-8 bytes,
            # ordered as bytes. The manifest of a multipart object is JSON in `parts`, its
            # part blobs also rows of object_parts for the blob GC's reference checks.
            # No foreign key to buckets: its check would share-lock the bucket row on every
            # insert (a MultiXact and a WAL record on one hot row); writers hold the bucket's
            # shared advisory lock instead, which delete_bucket takes exclusively.
            f"""CREATE TABLE objects (
                   bucket text COLLATE "C" NOT NULL,
                   key bytea NOT NULL,
                   seq bigint NOT NULL,
                   version_id text NOT NULL,{_OBJECT_TABLE_COLUMNS},
                   PRIMARY KEY (bucket, key)
               )""",
            "CREATE INDEX objects_blob ON objects (blob_id) WHERE blob_id <> ''",
            """CREATE TABLE object_parts (
                   bucket text COLLATE "C" NOT NULL,
                   key bytea NOT NULL,
                   number integer NOT NULL,
                   blob_id text NOT NULL,
                   PRIMARY KEY (bucket, key, number)
               )""",
            "CREATE INDEX object_parts_blob ON object_parts (blob_id)",
            # Inline bytes of small current objects, apart so listings read dense rows.
            """CREATE TABLE object_data (
                   bucket text COLLATE "C" NOT NULL,
                   key bytea NOT NULL,
                   data bytea NOT NULL,
                   PRIMARY KEY (bucket, key)
               )""",
            # Every version that is not current: noncurrent versions and delete markers,
            # newest first per key by seq; noncurrent_since is NULL only for a delete marker
            # that is its key's latest version. Inline bytes travel on the row.
            f"""CREATE TABLE object_versions (
                   bucket text COLLATE "C" NOT NULL,
                   key bytea NOT NULL,
                   seq bigint NOT NULL,
                   version_id text NOT NULL,
                   delete_marker boolean NOT NULL,
                   noncurrent_since double precision,{_OBJECT_TABLE_COLUMNS},
                   data bytea
               )""",
            # (key, seq DESC): the version listing's order, read straight off the index.
            "CREATE UNIQUE INDEX object_versions_order "
            "ON object_versions (bucket, key, seq DESC)",
            "CREATE UNIQUE INDEX object_versions_id ON object_versions (bucket, key, version_id)",
            "CREATE INDEX object_versions_blob ON object_versions (blob_id) WHERE blob_id <> ''",
            """CREATE TABLE version_parts (
                   bucket text COLLATE "C" NOT NULL,
                   key bytea NOT NULL,
                   seq bigint NOT NULL,
                   number integer NOT NULL,
                   blob_id text NOT NULL,
                   PRIMARY KEY (bucket, key, seq, number)
               )""",
            "CREATE INDEX version_parts_blob ON version_parts (blob_id)",
            """CREATE TABLE uploads (
                   upload_id text COLLATE "C" PRIMARY KEY,
                   bucket text COLLATE "C" NOT NULL,
                   key bytea NOT NULL,
                   owner_id text NOT NULL,
                   initiated double precision NOT NULL,
                   content_type text NOT NULL,
                   headers text NOT NULL,
                   metadata text NOT NULL,
                   checksum_algorithm text NOT NULL,
                   checksum_type text NOT NULL,
                   storage_class text NOT NULL,
                   tags text NOT NULL DEFAULT '{}',
                   acl text NOT NULL DEFAULT '',
                   sse text NOT NULL DEFAULT ''
               )""",
            "CREATE INDEX uploads_order ON uploads (bucket, key, initiated, upload_id)",
            "CREATE INDEX uploads_initiated ON uploads (initiated, upload_id)",
            """CREATE TABLE upload_parts (
                   upload_id text COLLATE "C" NOT NULL
                       REFERENCES uploads (upload_id) ON DELETE CASCADE,
                   number integer NOT NULL,
                   blob_id text NOT NULL,
                   size bigint NOT NULL,
                   etag text NOT NULL,
                   last_modified double precision NOT NULL,
                   checksums text NOT NULL,
                   PRIMARY KEY (upload_id, number)
               )""",
            "CREATE INDEX upload_parts_blob ON upload_parts (blob_id)",
            # Blobs to delete, queued by the transaction that stopped referencing them.
            """CREATE TABLE blob_deletions (
                   id bigint GENERATED ALWAYS AS IDENTITY,
                   blob_id text COLLATE "C" PRIMARY KEY,
                   queued_at double precision NOT NULL
               )""",
            "CREATE INDEX blob_deletions_order ON blob_deletions (id)",
            """CREATE TABLE access_log_records (
                   id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                   target_bucket text COLLATE "C" NOT NULL,
                   target_prefix text NOT NULL,
                   line text NOT NULL,
                   created double precision NOT NULL
               )""",
            "CREATE INDEX access_log_records_target ON access_log_records (target_bucket, id)",
            # Background work that runs once per cluster (by the database's clock).
            """CREATE TABLE leases (
                   name text COLLATE "C" PRIMARY KEY,
                   holder text NOT NULL,
                   expires_at timestamptz NOT NULL
               )""",
        ),
    ),
    (
        2,
        (
            # The GC reads the rows past their grace (--freed-blob-grace-seconds): without
            # this, finding none read every row still inside it.
            "CREATE INDEX blob_deletions_due ON blob_deletions (queued_at)",
        ),
    ),
]

_SCHEMA_VERSION_TABLE: Final = """CREATE TABLE IF NOT EXISTS schema_version (
    version integer PRIMARY KEY,
    applied double precision NOT NULL
)"""


def _lock_id(*parts: bytes) -> int:
    """A signed 64-bit advisory lock id: the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b(b"\0".join(parts), digest_size=8, person=b"cargohold").digest()
    return int.from_bytes(digest, "big", signed=True)


_MIGRATION_LOCK: Final = _lock_id(b"migrate")
_GRANTS_LOCK: Final = _lock_id(b"grants")  # limited keys' grants vs bucket policies


def _key_lock(bucket: str, kb: bytes) -> int:
    return _lock_id(b"key", bucket.encode("utf-8"), kb)


def _upload_lock(upload_id: str) -> int:
    """Held shared by ``put_part``, exclusively by completion and abort: the parts an
    upload is completed or dropped with are all there is. (``delete_bucket`` locks the
    uploads' rows instead.)"""
    return _lock_id(b"upload", upload_id.encode("utf-8"))


def _bucket_lock(bucket: str) -> int:
    """Held shared by every write under the bucket, exclusively by ``delete_bucket`` and a
    DeleteObjects of many keys: a bucket is never deleted under a write, nor written once
    gone, and a bulk delete has every key of the bucket to itself."""
    return _lock_id(b"bucket", bucket.encode("utf-8"))


# ------------------------------------------------------------------------- statements

_OBJECT_COLUMNS: Final = (
    "key, version_id, blob_id, size, etag, last_modified, content_type, "
    "headers, metadata, checksums, storage_class, parts, tags, acl, sse"
)
# The columns a version shares with a current object (moved as they are between tables).
_SHARED_COLUMNS: Final = (
    "blob_id, size, etag, last_modified, content_type, headers, metadata, checksums, "
    "storage_class, parts, checksum_algorithm, checksum_type, tags, acl, sse"
)


def _prefixed(columns: str, alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


_SELECT_OBJECT_WITH_DATA: Final = (
    f"SELECT {_prefixed(_OBJECT_COLUMNS, 'o')}, d.data FROM objects o "
    "LEFT JOIN object_data d ON d.bucket = o.bucket AND d.key = o.key "
    "WHERE o.bucket = $1 AND o.key = $2"
)
# Rows: the object columns, data, delete_marker, src (0 current, 1 noncurrent): one
# statement, so one snapshot, even while a write moves the version between the tables.
_GET_VERSION: Final = (
    f"SELECT {_prefixed(_OBJECT_COLUMNS, 'o')}, d.data, false, 0 AS src FROM objects o "
    "LEFT JOIN object_data d ON d.bucket = o.bucket AND d.key = o.key "
    "WHERE o.bucket = $1 AND o.key = $2 AND o.version_id = $3 "
    f"UNION ALL SELECT {_OBJECT_COLUMNS}, data, delete_marker, 1 FROM object_versions "
    "WHERE bucket = $1 AND key = $2 AND version_id = $3 ORDER BY src LIMIT 1"
)
_GET_LATEST: Final = (
    f"(SELECT {_prefixed(_OBJECT_COLUMNS, 'o')}, d.data, false, 0 AS src FROM objects o "
    "LEFT JOIN object_data d ON d.bucket = o.bucket AND d.key = o.key "
    "WHERE o.bucket = $1 AND o.key = $2) "
    f"UNION ALL (SELECT {_OBJECT_COLUMNS}, data, delete_marker, 1 FROM object_versions "
    "WHERE bucket = $1 AND key = $2 ORDER BY seq DESC LIMIT 1) ORDER BY src LIMIT 1"
)
# What a write needs to know of a key, read once it holds the key's lock (and the bucket's
# shared one): the bucket, the current object, the newest noncurrent version (its seq, and
# whether it is a delete marker that is the latest version: only the newest can be) and the
# database clock in ns. Three primary-key probes.
_STATE: Final = (
    "SELECT b.versioning, b.owner_id, o.seq, o.version_id, o.blob_id, o.etag, o.parts, "
    "o.last_modified, v.seq, v.noncurrent_since IS NULL AND v.seq IS NOT NULL, "
    "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint * 1000 "
    "FROM buckets b LEFT JOIN objects o ON o.bucket = $1 AND o.key = $2 "
    "LEFT JOIN LATERAL (SELECT seq, noncurrent_since FROM object_versions "
    "  WHERE bucket = $1 AND key = $2 ORDER BY seq DESC LIMIT 1) v ON b.versioning <> '' "
    "WHERE b.name = $1"
)
# Make a record current, in one statement: upsert the row, replace the manifest rows,
# queue the replaced blobs, unqueue the new ones, and write or drop the inline bytes.
_WRITE_CURRENT: Final = (
    "WITH cur AS (INSERT INTO objects (bucket, key, seq, version_id, "
    f"{_SHARED_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
    "$14, $15, $16, $17, $18, $19) ON CONFLICT (bucket, key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in
                ["seq", "version_id"] + [c.strip() for c in _SHARED_COLUMNS.split(",")])
    + "), old_parts AS (DELETE FROM object_parts WHERE bucket = $1 AND key = $2 "
    "AND NOT (number = ANY($20::integer[]))), "
    "new_parts AS (INSERT INTO object_parts (bucket, key, number, blob_id) "
    "SELECT $1, $2, n, b FROM unnest($20::integer[], $21::text[]) AS p(n, b) "
    "ON CONFLICT (bucket, key, number) DO UPDATE SET blob_id = excluded.blob_id), "
    "queued AS (INSERT INTO blob_deletions (blob_id, queued_at) "
    "SELECT b, $23 FROM unnest($22::text[]) WITH ORDINALITY AS q(b, n) ORDER BY n "
    "ON CONFLICT (blob_id) DO NOTHING), "
    "unqueued AS (DELETE FROM blob_deletions WHERE blob_id = ANY($24::text[])), "
    "{data} SELECT 1"
)
_WRITE_CURRENT_INLINE: Final = _WRITE_CURRENT.format(
    data="data AS (INSERT INTO object_data (bucket, key, data) VALUES ($1, $2, $25) "
         "ON CONFLICT (bucket, key) DO UPDATE SET data = excluded.data)")
_WRITE_CURRENT_PLAIN: Final = _WRITE_CURRENT.format(
    data="data AS (DELETE FROM object_data WHERE bucket = $1 AND key = $2)")
# Move the current object to the noncurrent versions, bytes and part rows with it.
_ARCHIVE_CURRENT: Final = (
    "WITH cur AS (DELETE FROM objects WHERE bucket = $1 AND key = $2 RETURNING *), "
    "dat AS (DELETE FROM object_data WHERE bucket = $1 AND key = $2 RETURNING data), "
    "prt AS (DELETE FROM object_parts WHERE bucket = $1 AND key = $2 "
    "RETURNING number, blob_id), "
    "moved AS (INSERT INTO version_parts (bucket, key, seq, number, blob_id) "
    "SELECT $1, $2, cur.seq, prt.number, prt.blob_id FROM cur, prt) "
    "INSERT INTO object_versions (bucket, key, seq, version_id, delete_marker, "
    f"noncurrent_since, {_SHARED_COLUMNS}, data) "
    f"SELECT bucket, key, seq, version_id, false, $3, {_SHARED_COLUMNS}, "
    "(SELECT data FROM dat) FROM cur"
)
# A newer version is coming: the delete marker that was the latest (the newest noncurrent
# row, seq $3) becomes noncurrent.
_END_LATEST_MARKER: Final = (
    "UPDATE object_versions SET noncurrent_since = $4 "
    "WHERE bucket = $1 AND key = $2 AND seq = $3 AND noncurrent_since IS NULL"
)
# After the latest version went: the newest remaining one becomes current, or, if it is a
# delete marker, stays where it is, now the latest (hiding the key).
_PROMOTE_LATEST: Final = (
    "WITH top AS (SELECT seq, delete_marker FROM object_versions "
    "WHERE bucket = $1 AND key = $2 ORDER BY seq DESC LIMIT 1), "
    "marker AS (UPDATE object_versions SET noncurrent_since = NULL "
    "WHERE bucket = $1 AND key = $2 AND seq = (SELECT seq FROM top WHERE delete_marker)), "
    "ver AS (DELETE FROM object_versions WHERE bucket = $1 AND key = $2 "
    "AND seq = (SELECT seq FROM top WHERE NOT delete_marker) RETURNING *), "
    "prt AS (DELETE FROM version_parts WHERE bucket = $1 AND key = $2 "
    "AND seq = (SELECT seq FROM top WHERE NOT delete_marker) RETURNING number, blob_id), "
    "parts_back AS (INSERT INTO object_parts (bucket, key, number, blob_id) "
    "SELECT $1, $2, number, blob_id FROM prt), "
    "data_back AS (INSERT INTO object_data (bucket, key, data) "
    "SELECT bucket, key, data FROM ver WHERE data IS NOT NULL) "
    f"INSERT INTO objects (bucket, key, seq, version_id, {_SHARED_COLUMNS}) "
    f"SELECT bucket, key, seq, version_id, {_SHARED_COLUMNS} FROM ver"
)
# Delete one noncurrent version (or marker) for good and queue its blobs. Rows: the object
# columns, data, delete_marker, seq, noncurrent_since.
_DISCARD_VERSION: Final = (
    "WITH gone AS (DELETE FROM object_versions WHERE bucket = $1 AND key = $2 "
    "AND version_id = $3 {older} "
    f"RETURNING {_OBJECT_COLUMNS}, data, delete_marker, seq, noncurrent_since), "
    "prt AS (DELETE FROM version_parts p USING gone WHERE p.bucket = $1 AND p.key = $2 "
    "AND p.seq = gone.seq RETURNING p.number, p.blob_id), "
    "queued AS (INSERT INTO blob_deletions (blob_id, queued_at) SELECT b, $4 FROM "
    "(SELECT 0 AS n, blob_id AS b FROM gone UNION ALL SELECT number, blob_id FROM prt) s "
    "WHERE b <> '' ORDER BY n ON CONFLICT (blob_id) DO NOTHING) "
    "SELECT * FROM gone"
)
_DISCARD_ANY_VERSION: Final = _DISCARD_VERSION.format(older="")
_DISCARD_OLD_VERSION: Final = _DISCARD_VERSION.format(older="AND noncurrent_since < $5")
# Delete the current objects of keys ($2, a bytea[]) with their inline bytes and manifest
# rows, queueing their blobs: one statement for one key or a chunk of a DeleteObjects.
_DELETE_CURRENTS: Final = (
    "WITH cur AS (DELETE FROM objects WHERE bucket = $1 AND key = ANY($2::bytea[]) "
    f"RETURNING {_OBJECT_COLUMNS}), "
    "dat AS (DELETE FROM object_data WHERE bucket = $1 AND key = ANY($2::bytea[])), "
    "prt AS (DELETE FROM object_parts WHERE bucket = $1 AND key = ANY($2::bytea[]) "
    "RETURNING key, number, blob_id), "
    "queued AS (INSERT INTO blob_deletions (blob_id, queued_at) SELECT b, $3 FROM "
    "(SELECT key AS k, 0 AS n, blob_id AS b FROM cur UNION ALL "
    "SELECT key, number, blob_id FROM prt) s "
    "WHERE b <> '' ORDER BY k, n ON CONFLICT (blob_id) DO NOTHING) "
    "SELECT * FROM cur"
)
_INSERT_MARKER: Final = (
    "INSERT INTO object_versions (bucket, key, seq, version_id, delete_marker, "
    f"noncurrent_since, {_SHARED_COLUMNS}, data) VALUES ($1, $2, $3, $4, true, NULL, '', 0, "
    "'', $5, '', '{}', '{}', '{}', 'STANDARD', '[]', '', '', '{}', '', '', NULL)"
)
_QUEUE: Final = (
    "INSERT INTO blob_deletions (blob_id, queued_at) "
    "SELECT b, $2 FROM unnest($1::text[]) WITH ORDINALITY AS q(b, n) WHERE b <> '' "
    "ORDER BY n ON CONFLICT (blob_id) DO NOTHING"
)

# The orphan sweep's question: which of these blob ids does anything still use.
_REFERENCED_BLOBS: Final = (
    "SELECT blob_id FROM objects WHERE blob_id = ANY($1::text[]) AND blob_id <> '' "
    "UNION SELECT blob_id FROM object_parts WHERE blob_id = ANY($1::text[]) "
    "UNION SELECT blob_id FROM upload_parts WHERE blob_id = ANY($1::text[]) "
    "UNION SELECT blob_id FROM object_versions WHERE blob_id = ANY($1::text[]) "
    "AND blob_id <> '' "
    "UNION SELECT blob_id FROM version_parts WHERE blob_id = ANY($1::text[])"
)
_OR_QUEUED: Final = " UNION SELECT blob_id FROM blob_deletions WHERE blob_id = ANY($1::text[])"
_LIST_COLUMNS: Final = (
    "key, size, etag, last_modified, storage_class, checksum_algorithm, checksum_type, "
    "version_id"
)
_VERSION_LIST_COLUMNS: Final = (
    "key, seq, version_id, {current} AS current, {marker} AS marker, size, etag, "
    "last_modified, storage_class, checksum_algorithm, checksum_type, {since} AS since"
)
_UPLOAD_COLUMNS: Final = (
    "upload_id, bucket, key, owner_id, initiated, content_type, headers, metadata, "
    "checksum_algorithm, checksum_type, storage_class, tags, acl, sse"
)
_PART_COLUMNS: Final = "upload_id, number, blob_id, size, etag, last_modified, checksums"
_BUCKET_COLUMNS: Final = (
    "name, owner_id, region, created, acl, policy, cors, website, logging, versioning, lifecycle"
)
_KEY_COLUMNS: Final = "access_key, secret_key, account_id, created, grants"
_ACCOUNT_COLUMNS: Final = "canonical_id, name, display_name, email, created"


def _list_objects_sql(bounded: bool) -> str:
    bound, limit = ("AND key < $3", "$4") if bounded else ("", "$3")
    return (f"SELECT {_LIST_COLUMNS} FROM objects WHERE bucket = $1 AND key >= $2 {bound} "
            f"ORDER BY key LIMIT {limit}")


def _walk_prefixes_sql(tables: Sequence[str], bounded: bool) -> str:
    """Keys of ``tables`` from ``$2`` on (below ``$3`` when ``bounded``), one per common
    prefix, each found by one index probe per table past the last prefix (``$4`` the
    delimiter, ``$5`` one past the listing prefix's length), until the first key that is
    no common prefix (included) or ``limit`` keys: many common prefixes in one round trip
    instead of one each.

    A key's common prefix ends after the first delimiter past the listing prefix; every
    key starting with it sorts before it plus a 0xFF byte (UTF-8 has none), so the next
    probe starts above that. With several tables (a version listing's keys are in
    ``objects`` and ``object_versions``) each step takes the least of their next keys.
    """
    if bounded:
        bound, delimiter, start, limit = "AND key < $3", "$4", "$5", "$6"
    else:
        bound, delimiter, start, limit = "", "$3", "$4", "$5"

    def least_key(condition: str) -> str:
        probes = [f"(SELECT key FROM {table} WHERE bucket = $1 AND {condition} {bound} "
                  "ORDER BY key LIMIT 1)" for table in tables]
        if len(probes) == 1:
            return probes[0]
        return f"(SELECT key FROM ({' UNION ALL '.join(probes)}) AS probe ORDER BY key LIMIT 1)"

    def plain(column: str) -> str:
        return f"position({delimiter} IN substring({column} FROM {start})) = 0"

    past_prefix = (f"key > substring(walk.key FROM 1 FOR {start} - 2 + "
                   f"position({delimiter} IN substring(walk.key FROM {start})) + "
                   f"length({delimiter})) || '\\xff'::bytea")
    return (
        "WITH RECURSIVE walk(key, n, plain) AS ("
        f"(SELECT first.key, 1, {plain('first.key')} FROM {least_key('key >= $2')} AS first) "
        "UNION ALL "
        f"(SELECT nxt.key, walk.n + 1, {plain('nxt.key')} "
        f"FROM walk CROSS JOIN LATERAL {least_key(past_prefix)} AS nxt "
        f"WHERE NOT walk.plain AND walk.n < {limit})) "
        "SELECT key FROM walk ORDER BY n"
    )


# A listed version as one row shape, whichever table it comes from.
_CURRENT_VERSION_COLUMNS: Final = _VERSION_LIST_COLUMNS.format(
    current="true", marker="false", since="NULL::double precision")
_NONCURRENT_VERSION_COLUMNS: Final = _VERSION_LIST_COLUMNS.format(
    current="false", marker="delete_marker", since="noncurrent_since")


def _list_versions_sql(bounded: bool, after: bool) -> str:
    """Versions and markers from ``$2`` on (after the version of key $2 with seq $n when
    ``after``), below ``$3`` when ``bounded``: by key, newest first."""
    args = 3
    bound = ""
    if bounded:
        bound, args = "AND key < $3", 4
    if after:
        bound += f" AND (key > $2 OR seq < ${args})"
        args += 1
    limit = f"${args}"
    return (f"(SELECT {_CURRENT_VERSION_COLUMNS} FROM objects WHERE bucket = $1 "
            f"AND key >= $2 {bound} ORDER BY key LIMIT {limit}) UNION ALL "
            f"(SELECT {_NONCURRENT_VERSION_COLUMNS} FROM object_versions WHERE bucket = $1 "
            "AND key >= $2 "
            f"{bound} ORDER BY key, seq DESC LIMIT {limit}) ORDER BY key, seq DESC "
            f"LIMIT {limit}")


def _list_uploads_sql(bounded: bool, after: bool) -> str:
    args = 3
    bound = ""
    if bounded:
        bound, args = "AND key < $3", 4
    if after:
        bound += f" AND (key, initiated, upload_id) > ($2, ${args}, ${args + 1})"
        args += 2
    return (f"SELECT key, {_UPLOAD_COLUMNS} FROM uploads WHERE bucket = $1 AND key >= $2 "
            f"{bound} ORDER BY key, initiated, upload_id LIMIT ${args}")


# ---------------------------------------------------------------------------- helpers


def _record(bucket: str, key: str, row: _Row, *, data: bool = True) -> ObjectRecord:
    """A row that starts with the object columns, then (``data``) the inline bytes."""
    return ObjectRecord(
        bucket=bucket, key=key, version_id=row[1], blob_id=row[2], size=row[3], etag=row[4],
        last_modified=row[5], content_type=row[6], headers=loads(row[7]),
        metadata=loads(row[8]), checksums=loads(row[9]), storage_class=row[10],
        parts=parts_from_json(row[11]), tags=loads(row[12]), acl=row[13], sse=row[14],
        inline=row[15] if data else None,
    )


def _version_record(bucket: str, key: str, row: _Row) -> ObjectRecord:
    """A row of object columns, data, delete_marker."""
    return dataclasses.replace(_record(bucket, key, row), delete_marker=bool(row[16]))


def _upload(row: _Row, offset: int = 0) -> Upload:
    r = [row[i] for i in range(offset, offset + 14)]
    return Upload(
        upload_id=r[0], bucket=r[1], key=bytes(r[2]).decode("utf-8"), owner_id=r[3],
        initiated=r[4], content_type=r[5], headers=loads(r[6]), metadata=loads(r[7]),
        checksum_algorithm=r[8], checksum_type=r[9], storage_class=r[10],
        tags=loads(r[11]), acl=r[12], sse=r[13],
    )


def _part(row: _Row) -> UploadedPart:
    return UploadedPart(upload_id=row[0], number=row[1], blob_id=row[2], size=row[3],
                        etag=row[4], last_modified=row[5], checksums=loads(row[6]))


def _account(row: _Row) -> Account:
    return Account(canonical_id=row[0], name=row[1], display_name=row[2], email=row[3],
                   created=row[4])


def _bucket(row: _Row) -> Bucket:
    return Bucket(name=row[0], owner_id=row[1], region=row[2], created=row[3], acl=row[4],
                  policy=row[5], cors=row[6], website=row[7], logging=row[8],
                  versioning=row[9], lifecycle=row[10])


def _access_key(row: _Row) -> AccessKey:
    return AccessKey(access_key=row[0], secret_key=row[1], account_id=row[2], created=row[3],
                     grants=None if row[4] is None else loads(row[4]))


def _count(status: str) -> int:
    """The row count of a command status such as ``"DELETE 3"``."""
    return int(status.rsplit(" ", 1)[-1])


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


_SERVER_SETTINGS: Final = {"application_name": "cargohold", "jit": "off"}


async def _no_reset(conn: _Conn) -> None:
    """The pool's reset on release: nothing to undo (no session state, no LISTEN, no
    session locks); asyncpg still rolls back a transaction left open (a cancelled write)."""


# Failures worth another try of the whole transaction: it was rolled back. (A prepared
# statement gone stale under a migration another gateway ran: asyncpg has dropped it.)
_RETRY: Final = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError,
                 asyncpg.InvalidCachedStatementError, asyncpg.OutdatedSchemaCacheError)
# The connection is gone (or never came): retry if COMMIT was not sent.
_LOST: Final = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.AdminShutdownError, asyncpg.CannotConnectNowError)
# Overload, not failure: the client should slow down and retry.
_BUSY: Final = (asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError,
                asyncpg.QueryCanceledError, asyncpg.LockNotAvailableError,
                asyncpg.TransactionRollbackError, TimeoutError, ConnectionRefusedError)


def _as_s3_error(exc: BaseException, committing: bool = False) -> errors.S3Error:
    """The S3 error for a driver failure; ``committing``: it came with COMMIT in flight
    (or after it was sent), so the transaction may have landed."""
    err: errors.S3Error
    if isinstance(exc, _BUSY):
        err = errors.SlowDown()
    elif isinstance(exc, asyncpg.DiskFullError):  # the database server's disk
        err = errors.InsufficientStorage()
    else:
        err = errors.InternalError()
    err.__cause__ = exc
    err.outcome_unknown = committing
    return err


class _State(NamedTuple):
    """What a write knows of its key (``_STATE``), read under the key's lock."""

    versioning: str
    owner_id: str
    seq: int | None  # the current object's; None when there is none
    version_id: str
    blob_id: str
    etag: str
    parts: str
    last_modified: float
    top: int  # the newest noncurrent version's seq (0: none)
    marker_latest: bool  # a delete marker is the latest version
    now_ns: int  # the database clock

    @property
    def current(self) -> bool:
        return self.seq is not None


async def _state(conn: _Conn, bucket: str, kb: bytes) -> _State | None:
    row = await conn.fetchrow(_STATE, bucket, kb)
    if row is None:
        return None
    return _State(row[0], row[1], row[2], row[3] or "", row[4] or "", row[5] or "",
                  row[6] or "[]", row[7] or 0.0, row[8] or 0, bool(row[9]), row[10])


async def _require_state(conn: _Conn, bucket: str, kb: bytes) -> _State:
    st = await _state(conn, bucket, kb)
    if st is None:
        raise errors.NoSuchBucket(BucketName=bucket)
    return st


async def _require_bucket(conn: _Conn, bucket: str) -> None:
    if await conn.fetchval("SELECT 1 FROM buckets WHERE name = $1", bucket) is None:
        raise errors.NoSuchBucket(BucketName=bucket)


# ------------------------------------------------------------------------------ store


class PostgresStore(MetadataStore):
    """:class:`MetadataStore` on a PostgreSQL database shared by any number of gateways.

    ``open()`` creates the connection pool and migrates the schema; ``close()`` waits for
    the connections in use and closes them. ``list_rows_read`` counts the rows listings
    fetched (tests and metrics).
    """

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self._dsn = dsn  # may hold a password: not a public attribute, never logged
        self.min_size = min_size
        self.max_size = max(max_size, 1)
        self.list_rows_read = 0
        self.list_queries = 0  # round trips of listings (tests prove the prefix walk)
        self._pool: Any = None

    # ------------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Create the pool, then create or migrate the schema (once, across gateways)."""
        if self._pool is not None:
            return
        # Migrations first, on a connection of their own: no statement timeout for them.
        conn = await asyncpg.connect(self._dsn, server_settings=_SERVER_SETTINGS)
        try:
            await _migrate(conn)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=min(self.min_size, self.max_size), max_size=self.max_size,
            reset=_no_reset, statement_cache_size=256, command_timeout=_COMMAND_TIMEOUT,
            server_settings=_SERVER_SETTINGS,
        )

    async def close(self) -> None:
        """Close the pool (waiting briefly for connections still in use)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except TimeoutError:
            log.warning("postgres connections still busy after 10 s: terminated")
            pool.terminate()
        except asyncio.CancelledError:
            pool.terminate()
            raise

    async def schema_version(self) -> int:
        """The schema version of the database."""
        return int(await self._fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))

    # ------------------------------------------------------------------ connections

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Conn]:
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open")
        async with self._pool.acquire(timeout=_ACQUIRE_TIMEOUT) as conn:
            try:
                yield conn
            except TimeoutError:
                # A statement went unanswered: the server is gone or stuck. Drop the
                # connection (the server rolls back what it had) rather than let the pool
                # wait, on release, for it to acknowledge the cancellation.
                conn.terminate()
                raise

    async def _read(self, fn: Callable[[_Conn], Awaitable[T]]) -> T:
        """Run reads on one pooled connection; a lost connection is retried."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._connection() as conn:
                    return await fn(conn)
            except errors.S3Error:
                raise
            except TimeoutError as exc:  # no pooled connection came free in time
                raise _as_s3_error(exc) from exc
            except _LOST as exc:
                if attempt == _ATTEMPTS:
                    raise _as_s3_error(exc) from exc
                await _backoff(attempt)
            except Exception as exc:
                raise _as_s3_error(exc) from exc
        raise AssertionError("unreachable")

    async def _fetchrow(self, sql: str, *args: Any) -> _Row:
        return await self._read(lambda conn: conn.fetchrow(sql, *args))

    async def _fetch(self, sql: str, *args: Any) -> list[_Row]:
        return await self._read(lambda conn: conn.fetch(sql, *args))

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        return await self._read(lambda conn: conn.fetchval(sql, *args))

    async def _write(self, fn: Callable[[_Conn], Awaitable[T]], *,
                     locks: Iterable[int] = (), shared: Iterable[int] = ()) -> T:
        """Run ``fn`` in one transaction, after taking the advisory locks, all in the round
        trip of BEGIN: the ``shared`` ones, then the exclusive ``locks``, each ascending
        (one order for every transaction, so they never deadlock on these).

        Deadlocks, serialization failures and connections lost before COMMIT was sent are
        retried from the start (the server rolled the transaction back); an S3 error from
        ``fn`` rolls back and passes; anything else becomes ``SlowDown`` or
        ``InternalError`` with the driver's exception as ``__cause__``.
        """
        begin = "BEGIN" + "".join(
            [f"; SELECT pg_advisory_xact_lock_shared({lock})" for lock in sorted(set(shared))]
            + [f"; SELECT pg_advisory_xact_lock({lock})" for lock in sorted(set(locks))])
        for attempt in range(1, _ATTEMPTS + 1):
            committing = False
            try:
                async with self._connection() as conn:
                    try:
                        # Inside the try: a BEGIN whose lock failed (lock_timeout, out of
                        # shared memory) leaves an aborted transaction to roll back too.
                        await conn.execute(begin)
                        result = await fn(conn)
                        committing = True
                        await conn.execute("COMMIT")
                    except Exception as exc:
                        # (After a timeout, a ROLLBACK would wait for the cancellation:
                        # the connection is dropped instead, see _connection.)
                        if (not committing and not conn.is_closed()
                                and not isinstance(exc, TimeoutError)):
                            with contextlib.suppress(Exception):
                                await conn.execute("ROLLBACK")
                        raise
                    return result
            except errors.S3Error:
                raise
            except TimeoutError as exc:
                raise _as_s3_error(exc, committing) from exc
            except _RETRY as exc:
                if attempt == _ATTEMPTS:
                    raise _as_s3_error(exc) from exc
                log.info("postgres transaction retried after %r", exc)
                await _backoff(attempt)
            except _LOST as exc:
                if committing or attempt == _ATTEMPTS:  # a COMMIT in flight may have landed
                    raise _as_s3_error(exc, committing) from exc
                await _backoff(attempt)
            except Exception as exc:
                raise _as_s3_error(exc) from exc
        raise AssertionError("unreachable")

    async def _autocommit(self, method: str, sql: str, *args: Any) -> Any:
        """One statement, its own transaction (one round trip): ``conn.<method>(sql)``.

        Retried like :meth:`_write`, except after a connection lost once the statement was
        sent (it may have committed). Errors map as in :meth:`_write`.
        """
        for attempt in range(1, _ATTEMPTS + 1):
            sent = False
            try:
                async with self._connection() as conn:
                    sent = True
                    return await getattr(conn, method)(sql, *args)
            except TimeoutError as exc:
                raise _as_s3_error(exc, sent) from exc
            except _RETRY as exc:
                if attempt == _ATTEMPTS:
                    raise _as_s3_error(exc) from exc
                await _backoff(attempt)
            except _LOST as exc:
                if sent or attempt == _ATTEMPTS:
                    raise _as_s3_error(exc, sent) from exc
                await _backoff(attempt)
            except Exception as exc:
                raise _as_s3_error(exc) from exc
        raise AssertionError("unreachable")

    # --------------------------------------------------------------------- settings

    async def get_setting(self, name: str) -> str | None:
        """The value of a setting, ``None`` if unset."""
        value = await self._fetchval("SELECT value FROM settings WHERE name = $1", name)
        return None if value is None else str(value)

    async def set_setting(self, name: str, value: str) -> None:
        """Create or replace a setting."""
        await self._autocommit("execute",
            "INSERT INTO settings (name, value) VALUES ($1, $2) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value", name, value)

    # ------------------------------------------------------------- accounts & keys

    async def create_account(self, account: Account) -> None:
        """Add an account; ``InvalidArgument`` when the name or canonical id is taken."""
        try:
            await self._autocommit("execute",
                f"INSERT INTO accounts ({_ACCOUNT_COLUMNS}) VALUES ($1, $2, $3, $4, $5)",
                account.canonical_id, account.name, account.display_name, account.email,
                account.created)
        except errors.InternalError as exc:
            if isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                raise errors.InvalidArgument(
                    f"An account named {account.name!r} or with that id already exists."
                ) from exc
            raise

    async def get_account(self, canonical_id: str) -> Account | None:
        """The account with this canonical id."""
        row = await self._fetchrow(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE canonical_id = $1", canonical_id)
        return None if row is None else _account(row)

    async def get_account_by_name(self, name: str) -> Account | None:
        """The account with this name."""
        row = await self._fetchrow(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE name = $1", name)
        return None if row is None else _account(row)

    async def list_accounts(self) -> list[Account]:
        """All accounts by name."""
        rows = await self._fetch(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY name")
        return [_account(r) for r in rows]

    async def delete_account(self, canonical_id: str) -> None:
        """Delete the account and its keys; ``InvalidRequest`` if it owns buckets."""
        try:
            owns = await self._autocommit(
                "fetchval",
                "WITH owns AS (SELECT EXISTS (SELECT 1 FROM buckets WHERE owner_id = $1) AS o), "
                "gone AS (DELETE FROM accounts WHERE canonical_id = $1 "
                "AND NOT (SELECT o FROM owns)) SELECT o FROM owns", canonical_id)
        except errors.InternalError as exc:
            # A bucket created meanwhile: its foreign key refuses the delete.
            if isinstance(exc.__cause__, asyncpg.ForeignKeyViolationError):
                owns = True
            else:
                raise
        if owns:
            raise errors.InvalidRequest("The account still owns buckets.")

    async def create_key(self, key: AccessKey) -> None:
        """Add an access key; ``InvalidArgument`` if the id exists or the account does not."""
        grants = None if key.grants is None else dumps(key.grants)

        async def op(conn: _Conn) -> None:
            if key.grants:
                await _refuse_buckets_with_policy(conn, key.grants)
            await conn.execute(
                f"INSERT INTO access_keys ({_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5)",
                key.access_key, key.secret_key, key.account_id, key.created, grants)

        try:
            await self._write(op, locks=[_GRANTS_LOCK] if key.grants else [])
        except errors.InternalError as exc:
            if isinstance(exc.__cause__, asyncpg.ForeignKeyViolationError):
                raise errors.InvalidArgument("The account does not exist.") from exc
            if isinstance(exc.__cause__, asyncpg.UniqueViolationError):
                raise errors.InvalidArgument("The access key id already exists.") from exc
            raise

    async def get_key(self, access_key: str) -> AccessKey | None:
        """The access key with this id (hot path of every signed request)."""
        row = await self._fetchrow(
            f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE access_key = $1", access_key)
        return None if row is None else _access_key(row)

    async def list_keys(self, account_id: str | None = None) -> list[AccessKey]:
        """All keys, or one account's keys, by access key id."""
        sql = f"SELECT {_KEY_COLUMNS} FROM access_keys"
        if account_id is None:
            rows = await self._fetch(sql + " ORDER BY access_key")
        else:
            rows = await self._fetch(sql + " WHERE account_id = $1 ORDER BY access_key",
                                     account_id)
        return [_access_key(r) for r in rows]

    async def set_key_grants(self, access_key: str, grants: dict[str, str]) -> AccessKey:
        """Replace the grants of a limited key (``InvalidArgument`` for an unknown key,
        ``InvalidRequest`` for a full-access one)."""

        async def op(conn: _Conn) -> AccessKey:
            row = await conn.fetchrow(
                f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE access_key = $1 FOR UPDATE",
                access_key)
            if row is None:
                raise errors.InvalidArgument(f"The access key {access_key!r} does not exist.")
            if row[4] is None:
                raise errors.InvalidRequest(
                    "A full-access key cannot be limited to buckets; create a new key.")
            await _refuse_buckets_with_policy(conn, grants)
            await conn.execute("UPDATE access_keys SET grants = $2 WHERE access_key = $1",
                               access_key, dumps(grants))
            return dataclasses.replace(_access_key(row), grants=dict(grants))

        return await self._write(op, locks=[_GRANTS_LOCK])

    async def delete_key(self, access_key: str) -> bool:
        """Delete a key; whether it existed."""
        status = await self._autocommit("execute", "DELETE FROM access_keys WHERE access_key = $1",
                                        access_key)
        return _count(status) > 0

    # ---------------------------------------------------------------------- buckets

    async def create_bucket(self, bucket: Bucket, max_buckets: int) -> None:
        """Create the bucket (existence and the owner's bucket count checked atomically:
        one owner's creations are serialized by an advisory lock)."""

        async def op(conn: _Conn) -> None:
            owner, count = await conn.fetchrow(
                "SELECT (SELECT owner_id FROM buckets WHERE name = $1), "
                "(SELECT count(*) FROM buckets WHERE owner_id = $2)",
                bucket.name, bucket.owner_id)
            if owner is not None:
                _refuse_existing(bucket, owner)
            if count >= max_buckets:
                raise errors.TooManyBuckets(BucketName=bucket.name)
            inserted = await conn.fetchval(
                "INSERT INTO buckets (name, owner_id, region, created, acl) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING 1",
                bucket.name, bucket.owner_id, bucket.region, bucket.created, bucket.acl)
            if inserted is None:  # another owner's creation won the race for the name
                owner = await conn.fetchval("SELECT owner_id FROM buckets WHERE name = $1",
                                            bucket.name)
                _refuse_existing(bucket, owner)

        try:
            await self._write(op, locks=[_lock_id(b"owner", bucket.owner_id.encode())])
        except errors.InternalError as exc:
            if isinstance(exc.__cause__, asyncpg.ForeignKeyViolationError):
                raise errors.InvalidArgument("The bucket owner does not exist.") from exc
            raise

    async def get_bucket(self, name: str) -> Bucket | None:
        """The bucket with this name."""
        row = await self._fetchrow(f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE name = $1",
                                   name)
        return None if row is None else _bucket(row)

    async def list_buckets(
        self, owner_id: str, prefix: str = "", start_after: str = "", limit: int = 10000
    ) -> list[Bucket]:
        """The owner's buckets in name order, names > start_after, at most ``limit``."""
        rows = await self._fetch(
            f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE owner_id = $1 AND name > $2 "
            "AND starts_with(name, $3) ORDER BY name LIMIT $4",
            owner_id, start_after, prefix, max(limit, 0))
        return [_bucket(r) for r in rows]

    async def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket; ``NoSuchBucket`` or ``BucketNotEmpty``. Its in-progress
        uploads go with it (their part blobs are queued)."""

        async def op(conn: _Conn) -> None:
            # The bucket's exclusive lock (with BEGIN) waited for the writes in flight and
            # keeps new ones out, so the checks below see everything they committed.
            if await conn.fetchval("SELECT 1 FROM buckets WHERE name = $1", name) is None:
                raise errors.NoSuchBucket(BucketName=name)
            if not await _bucket_is_empty(conn, name):
                raise errors.BucketNotEmpty(BucketName=name)
            # Its uploads go too: lock their rows (waiting for parts being recorded, which
            # hold their upload's row FOR KEY SHARE; no new upload can start under the
            # bucket's lock), then drop them. Row locks, not an advisory lock per upload:
            # those fill the server's shared lock table when a bucket has thousands.
            uploads = [r[0] for r in await conn.fetch(
                "SELECT upload_id FROM uploads WHERE bucket = $1 ORDER BY upload_id "
                "FOR UPDATE", name)]
            if uploads:
                await _drop_uploads(conn, uploads)
            await conn.execute("DELETE FROM buckets WHERE name = $1", name)

        await self._write(op, locks=[_bucket_lock(name)])

    async def set_bucket_acl(self, name: str, acl: str) -> None:
        """Replace the bucket's ACL (stored text); ``NoSuchBucket`` if it is gone."""
        await self._set_bucket_column(name, "acl", acl)

    async def set_bucket_policy(self, name: str, policy: str | None) -> None:
        """Set (or with ``None`` remove) the bucket policy; ``InvalidRequest`` if a limited
        access key is granted the bucket (checked under the grants lock)."""
        if policy is None:
            await self._set_bucket_column(name, "policy", None)
            return

        async def op(conn: _Conn) -> None:
            for (grants,) in await conn.fetch(
                    "SELECT k.grants FROM access_keys k JOIN buckets b "
                    "ON b.owner_id = k.account_id WHERE b.name = $1 AND k.grants IS NOT NULL",
                    name):
                if name in loads(grants):
                    raise errors.InvalidRequest(
                        "A bucket that a limited access key is granted cannot have a bucket "
                        "policy; remove the bucket from the key's grants first.")
            status = await conn.execute("UPDATE buckets SET policy = $2 WHERE name = $1",
                                        name, policy)
            if _count(status) == 0:
                raise errors.NoSuchBucket(BucketName=name)

        await self._write(op, locks=[_GRANTS_LOCK])

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
        # Never from input: column names are code.
        assert column in ("acl", "policy", "cors", "website", "logging", "versioning",
                          "lifecycle")
        status = await self._autocommit(
            "execute", f"UPDATE buckets SET {column} = $2 WHERE name = $1", name, value)
        if _count(status) == 0:
            raise errors.NoSuchBucket(BucketName=name)

    async def bucket_is_empty(self, bucket: str) -> bool:
        """Whether the bucket holds no object, version or marker (one statement)."""
        return await self._read(lambda conn: _bucket_is_empty(conn, bucket))

    async def buckets_with_lifecycle(self) -> list[Bucket]:
        """Buckets with a lifecycle configuration, by name."""
        rows = await self._fetch(f"SELECT {_BUCKET_COLUMNS} FROM buckets "
                                 "WHERE lifecycle IS NOT NULL ORDER BY name")
        return [_bucket(r) for r in rows]

    # ---------------------------------------------------------------------- objects

    async def get_object(self, bucket: str, key: str) -> ObjectRecord | None:
        """The current object at (bucket, key); ``None`` if absent (bucket not checked)."""
        row = await self._fetchrow(_SELECT_OBJECT_WITH_DATA, bucket, key_bytes(key))
        return None if row is None else _record(bucket, key, row)

    async def put_object(
        self,
        record: ObjectRecord,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Make ``record`` current under the key's lock; conditions, versioning and the
        deletion queue in the same transaction."""
        kb = key_bytes(record.key)
        return await self._write(
            lambda conn: _store_object(conn, record, kb, if_match, if_none_match),
            locks=[_key_lock(record.bucket, kb)], shared=[_bucket_lock(record.bucket)])

    async def get_version(self, bucket: str, key: str,
                          version_id: str | None) -> ObjectRecord | None:
        """The named version or the latest one, delete markers included (one statement)."""
        kb = key_bytes(key)
        if version_id is None:
            row = await self._fetchrow(_GET_LATEST, bucket, kb)
            # Only a delete marker can be the latest version without being current.
            if row is None or (row[17] == 1 and not row[16]):
                return None
        else:
            row = await self._fetchrow(_GET_VERSION, bucket, kb, version_id)
            if row is None:
                return None
        return _version_record(bucket, key, row)

    async def set_object_tags(self, bucket: str, key: str, tags: dict[str, str],
                              version_id: str | None = None) -> ObjectRecord:
        """Replace the tags of the current object or of one version, nothing else; return
        the version as it now is."""
        kb = key_bytes(key)
        row = await self._write(
            lambda conn: _update_object(conn, bucket, key, kb, "tags", dumps(tags),
                                        version_id),
            locks=[_key_lock(bucket, kb)], shared=[_bucket_lock(bucket)])
        return _version_record(bucket, key, row)

    async def set_object_acl(self, bucket: str, key: str, acl: str,
                             version_id: str | None = None) -> None:
        """Replace the ACL (stored text) of the current object or of one version only."""
        kb = key_bytes(key)
        await self._write(
            lambda conn: _update_object(conn, bucket, key, kb, "acl", acl, version_id),
            locks=[_key_lock(bucket, kb)], shared=[_bucket_lock(bucket)])

    async def delete_object(self, bucket: str, key: str, version_id: str | None = None, *,
                            older_than: float | None = None) -> DeleteResult:
        """Delete as the bucket's versioning says (see the contract); one transaction."""
        kb = key_bytes(key)
        return await self._write(
            lambda conn: _delete(conn, bucket, key, kb, version_id, older_than),
            locks=[_key_lock(bucket, kb)], shared=[_bucket_lock(bucket)])

    async def delete_objects(self, bucket: str,
                             items: list[tuple[str, str | None]]) -> list[DeleteResult]:
        """Delete several (key, version), results aligned with ``items``: in transactions
        of at most ``_KEY_LOCKS_MAX`` keys, each locking its keys up front in lock id order.

        A lock per key of a 1000-key request would put 1000 entries in the server's shared
        lock table (max_locks_per_transaction x max_connections: 6400 by default), and a
        few bulk deletes at once would fill it, failing every transaction on the server
        with "out of shared memory"; the bucket's lock held exclusively instead would stall
        every other write to the bucket for the whole request. S3 deletes each key on its
        own (a DeleteObjects is not atomic), so each chunk commits by itself. In a bucket
        that never had versioning a chunk is one statement (1000 keys: ~200 ms here, ~700
        key by key; SQLite ~55).
        """
        encoded = [(k, key_bytes(k), v) for k, v in items]
        results: list[DeleteResult] = []
        start = 0
        while start < len(encoded):
            chunk: list[tuple[str, bytes, str | None]] = []
            keys: set[int] = set()
            for item in encoded[start:]:
                lock = _key_lock(bucket, item[1])
                if lock not in keys and len(keys) == _KEY_LOCKS_MAX:
                    break
                keys.add(lock)
                chunk.append(item)
            start += len(chunk)

            async def op(conn: _Conn, chunk: list[tuple[str, bytes, str | None]] = chunk,
                         ) -> list[DeleteResult]:
                if all(v is None for _, _, v in chunk):
                    versioning = await conn.fetchval(
                        "SELECT versioning FROM buckets WHERE name = $1", bucket)
                    if versioning is None:
                        raise errors.NoSuchBucket(BucketName=bucket)
                    if versioning == "":  # plain deletes: all keys in one statement
                        return await _delete_currents(conn, bucket, chunk)
                return [await _delete(conn, bucket, k, kb, v, None) for k, kb, v in chunk]

            results += await self._write(op, locks=keys, shared=[_bucket_lock(bucket)])
        return results

    async def remove_expired_delete_marker(self, bucket: str, key: str) -> str | None:
        """Remove the key's latest delete marker when no other version is left."""
        kb = key_bytes(key)

        async def op(conn: _Conn) -> str | None:
            st = await _require_state(conn, bucket, kb)
            if st.current:
                return None
            rows = await conn.fetch(
                "SELECT seq, version_id, delete_marker FROM object_versions "
                "WHERE bucket = $1 AND key = $2 ORDER BY seq DESC LIMIT 2", bucket, kb)
            if len(rows) != 1 or not rows[0][2]:
                return None
            await conn.execute("DELETE FROM object_versions WHERE bucket = $1 AND key = $2 "
                               "AND seq = $3", bucket, kb, rows[0][0])
            return str(rows[0][1])

        return await self._write(op, locks=[_key_lock(bucket, kb)],
                                 shared=[_bucket_lock(bucket)])

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        """List in byte order, rolling up and seeking past common prefixes."""
        p, d, sa = key_bytes(prefix), key_bytes(delimiter), key_bytes(start_after)

        async def read(conn: _Conn) -> ListPage:
            page, fetched, queries = await _list(conn, bucket, p, d, sa, max_keys)
            self.list_rows_read += fetched
            self.list_queries += queries
            if fetched == 0:  # rows mean the bucket exists; none: make sure it does
                await _require_bucket(conn, bucket)
            return page

        return await self._read(read)

    async def list_object_versions(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionPage:
        """Versions and delete markers by key, newest first."""
        p, d, km = key_bytes(prefix), key_bytes(delimiter), key_bytes(key_marker)

        async def read(conn: _Conn) -> VersionPage:
            trips = _Trips()
            page, fetched = await _list_versions(conn, bucket, p, d, km, version_id_marker,
                                                 max_keys, trips)
            self.list_rows_read += fetched
            self.list_queries += trips.count
            if fetched == 0:
                await _require_bucket(conn, bucket)
            return page

        return await self._read(read)

    # ------------------------------------------------------------ multipart uploads

    async def create_upload(self, upload: Upload) -> None:
        """Record a new multipart upload; ``NoSuchBucket`` if the bucket is gone."""
        args = (upload.upload_id, upload.bucket, key_bytes(upload.key), upload.owner_id,
                upload.initiated, upload.content_type, dumps(upload.headers),
                dumps(upload.metadata), upload.checksum_algorithm, upload.checksum_type,
                upload.storage_class, dumps(upload.tags), upload.acl, upload.sse)

        async def op(conn: _Conn) -> None:
            status = await conn.execute(
                f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) SELECT $1, $2::text, $3::bytea, "
                "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 "
                "WHERE EXISTS (SELECT 1 FROM buckets WHERE name = $2)", *args)
            if _count(status) == 0:
                raise errors.NoSuchBucket(BucketName=upload.bucket)

        await self._write(op, shared=[_bucket_lock(upload.bucket)])

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> Upload | None:
        """The upload, if it exists and belongs to (bucket, key)."""
        row = await self._fetchrow(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE upload_id = $1", upload_id)
        if row is None or row[1] != bucket or bytes(row[2]) != key_bytes(key):
            return None
        return _upload(row)

    async def put_part(self, part: UploadedPart) -> None:
        """Record a part, queueing the blob of a part it replaces; ``NoSuchUpload``.

        Holds the upload's lock shared (a completion or abort waits for this part, and this
        part for them), its row FOR KEY SHARE (``delete_bucket`` locks the rows of the
        bucket's uploads FOR UPDATE) and a lock on (upload, number) that orders re-uploads
        of one part, so the replaced blob read here is the one actually replaced. One
        statement."""

        async def op(conn: _Conn) -> None:
            found = await conn.fetchval(
                "WITH up AS (SELECT upload_id FROM uploads WHERE upload_id = $1 "
                "FOR KEY SHARE), "
                "old AS (SELECT blob_id FROM upload_parts WHERE upload_id = $1 "
                "AND number = $2), "
                f"put AS (INSERT INTO upload_parts ({_PART_COLUMNS}) "
                "SELECT $1, $2::integer, $3::text, $4::bigint, $5::text, $6::double precision, "
                "$7::text FROM up "
                "ON CONFLICT (upload_id, number) DO UPDATE SET blob_id = excluded.blob_id, "
                "size = excluded.size, etag = excluded.etag, "
                "last_modified = excluded.last_modified, checksums = excluded.checksums), "
                "queued AS (INSERT INTO blob_deletions (blob_id, queued_at) "
                "SELECT old.blob_id, $8::double precision FROM old, up "
                "WHERE old.blob_id <> '' AND old.blob_id <> $3 ON CONFLICT (blob_id) DO NOTHING), "
                "unqueued AS (DELETE FROM blob_deletions WHERE blob_id = $3 "
                "AND EXISTS (SELECT 1 FROM up)) "
                "SELECT count(*) FROM up",
                part.upload_id, part.number, part.blob_id, part.size, part.etag,
                part.last_modified, dumps(part.checksums), time.time())
            if not found:
                raise errors.NoSuchUpload(UploadId=part.upload_id)

        await self._write(op, shared=[_upload_lock(part.upload_id)],
                          locks=[_lock_id(b"part", part.upload_id.encode(),
                                          str(part.number).encode())])

    async def list_parts(
        self, upload_id: str, number_marker: int = 0, max_parts: int = 1000
    ) -> tuple[list[UploadedPart], bool]:
        """Parts numbered above ``number_marker``, at most ``max_parts``; and is_truncated."""
        limit = max(max_parts, 0)
        rows = await self._fetch(
            f"SELECT {_PART_COLUMNS} FROM upload_parts WHERE upload_id = $1 AND number > $2 "
            "ORDER BY number LIMIT $3", upload_id, number_marker, limit + 1)
        return [_part(r) for r in rows[:limit]], len(rows) > limit

    async def complete_upload(
        self,
        upload_id: str,
        record: ObjectRecord,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Make ``record`` current and drop the upload, in one transaction (the manifest
        checked against the parts as they are once the upload is locked)."""
        kb = key_bytes(record.key)

        async def op(conn: _Conn) -> str:
            # The upload's lock (with BEGIN) waited for parts being recorded: what is read
            # now is every part there is. One row per part, or one of NULLs if none.
            parts = await conn.fetch(
                "SELECT p.number, p.blob_id, p.size, p.etag, p.checksums FROM uploads u "
                "LEFT JOIN upload_parts p ON p.upload_id = u.upload_id "
                "WHERE u.upload_id = $1 ORDER BY p.number", upload_id)
            if not parts:
                raise errors.NoSuchUpload(UploadId=upload_id)
            parts = [r for r in parts if r[0] is not None]
            st = await _require_state(conn, record.bucket, kb)
            final = _current_manifest(upload_id, record, parts)
            version_id = await _store_object(conn, final, kb, if_match, if_none_match, st)
            keep = set(final.blob_ids())
            await conn.execute(
                "WITH prt AS (DELETE FROM upload_parts WHERE upload_id = $1), "
                "queued AS (INSERT INTO blob_deletions (blob_id, queued_at) "
                "SELECT b, $3 FROM unnest($2::text[]) WITH ORDINALITY AS q(b, n) "
                "ORDER BY n ON CONFLICT (blob_id) DO NOTHING) "
                "DELETE FROM uploads WHERE upload_id = $1",
                upload_id, [r[1] for r in parts if r[1] and r[1] not in keep], time.time())
            return version_id

        return await self._write(op, locks=[_key_lock(record.bucket, kb), _upload_lock(upload_id)],
                                 shared=[_bucket_lock(record.bucket)])

    async def abort_upload(self, upload_id: str) -> bool:
        """Drop the upload and queue its part blobs; whether it existed."""

        async def op(conn: _Conn) -> bool:
            # The upload's lock (with BEGIN) waited for parts being recorded.
            return await _drop_uploads(conn, [upload_id]) > 0

        return await self._write(op, locks=[_upload_lock(upload_id)])

    async def list_uploads(
        self,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadPage:
        """In-progress uploads by (key bytes, initiated, upload id), rolled up like objects."""
        p, d, km = key_bytes(prefix), key_bytes(delimiter), key_bytes(key_marker)

        async def read(conn: _Conn) -> UploadPage:
            trips = _Trips()
            page, fetched = await _list_uploads(conn, bucket, p, d, km, upload_id_marker,
                                                max_uploads, trips)
            self.list_rows_read += fetched
            self.list_queries += trips.count
            if fetched == 0:
                await _require_bucket(conn, bucket)
            return page

        return await self._read(read)

    async def uploads_initiated_before(self, cutoff: float, limit: int = 1000) -> list[Upload]:
        """Uploads initiated before ``cutoff``, oldest first (abandoned-upload expiry)."""
        rows = await self._fetch(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE initiated < $1 "
            "ORDER BY initiated, upload_id LIMIT $2", cutoff, max(limit, 0))
        return [_upload(r) for r in rows]

    # ----------------------------------------------------------------------- leases

    async def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take or renew the lease until ``ttl_seconds`` from now by the database clock;
        one statement, so of racing callers at most one gets it."""
        got = await self._autocommit(
            "fetchval",
            "INSERT INTO leases (name, holder, expires_at) "
            "VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3)) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "expires_at = excluded.expires_at "
            "WHERE leases.holder = excluded.holder "
            "OR leases.expires_at <= clock_timestamp() RETURNING holder",
            name, holder, float(ttl_seconds))
        return got is not None

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up early if ``holder`` holds it."""
        await self._autocommit("execute", "DELETE FROM leases WHERE name = $1 AND holder = $2",
                               name, holder)

    # ------------------------------------------------------------ blob collection

    async def pending_blob_deletions(self, limit: int = 1000,
                                     queued_before: float | None = None) -> list[str]:
        """Blob ids queued by committed transactions, oldest first (optionally only those
        queued no later than ``queued_before``)."""
        cutoff = math.inf if queued_before is None else queued_before
        rows = await self._fetch(
            "SELECT blob_id FROM blob_deletions WHERE queued_at <= $2 "
            "ORDER BY queued_at LIMIT $1",
            max(limit, 0), cutoff)
        return [str(r[0]) for r in rows]

    async def forget_blob_deletions(self, blob_ids: list[str]) -> None:
        """Drop ids from the deletion queue."""
        ids = list(blob_ids)
        for chunk in _chunks(ids):
            await self._autocommit(
                "execute", "DELETE FROM blob_deletions WHERE blob_id = ANY($1::text[])",
                list(chunk))

    async def referenced_blobs(self, blob_ids: list[str],
                               include_queued: bool = False) -> set[str]:
        """Which of ``blob_ids`` a committed object or version, or an in-progress upload's
        part, uses (and, with ``include_queued``, which wait in the deletion queue); each
        chunk is one statement: one snapshot of every table."""
        ids = [i for i in blob_ids if i]
        found: set[str] = set()
        query = _REFERENCED_BLOBS + (_OR_QUEUED if include_queued else "")
        for chunk in _chunks(ids):
            rows = await self._fetch(query, list(chunk))
            found.update(str(r[0]) for r in rows)
        return found

    # ----------------------------------------------------------- access-log records

    async def append_log_records(self, records: list[LogRecord]) -> None:
        """Queue records for delivery, all in one statement."""
        if not records:
            return
        await self._autocommit("execute",
            "INSERT INTO access_log_records (target_bucket, target_prefix, line, created) "
            "SELECT t, p, l, c FROM unnest($1::text[], $2::text[], $3::text[], "
            "$4::double precision[]) WITH ORDINALITY AS r(t, p, l, c, n) ORDER BY n",
            [r.target_bucket for r in records], [r.target_prefix for r in records],
            [r.line for r in records], [r.created for r in records])

    async def pending_log_targets(self) -> list[str]:
        """Target buckets with queued records: a loose index scan of (target_bucket, id),
        one probe per target, however many records are queued."""
        rows = await self._fetch(
            "WITH RECURSIVE t(name) AS ("
            "(SELECT target_bucket FROM access_log_records ORDER BY target_bucket LIMIT 1) "
            "UNION ALL SELECT (SELECT target_bucket FROM access_log_records "
            "WHERE target_bucket > t.name ORDER BY target_bucket LIMIT 1) "
            "FROM t WHERE t.name IS NOT NULL) "
            "SELECT name FROM t WHERE name IS NOT NULL")
        return [str(r[0]) for r in rows]

    async def take_log_batch(self, target_bucket: str,
                             limit: int) -> list[tuple[int, str, str]]:
        """The oldest queued records of one target, ``(id, prefix, line)``, in id order."""
        rows = await self._fetch(
            "SELECT id, target_prefix, line FROM access_log_records WHERE target_bucket = $1 "
            "ORDER BY id LIMIT $2", target_bucket, max(limit, 0))
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    async def deliver_log_object(self, record: ObjectRecord, record_ids: list[int],
                                 owner_id: str) -> bool:
        """Store the log object and delete its records in one transaction (exactly once:
        a concurrent delivery of the same records waits on their rows, then finds them
        gone: ``ConditionalRequestConflict``)."""
        kb = key_bytes(record.key)
        ids = sorted(set(record_ids))

        async def op(conn: _Conn) -> bool:
            deleted = _count(await conn.execute(
                "DELETE FROM access_log_records WHERE id = ANY($1::bigint[])", ids))
            if deleted != len(ids):
                # Raising rolls everything back: the object is not stored either.
                raise errors.ConditionalRequestConflict(
                    "Some access-log records were already delivered.")
            st = await _state(conn, record.bucket, kb)
            if st is None or st.owner_id != owner_id:
                return False
            await _store_object(conn, record, kb, None, False, st)
            return True

        return await self._write(op, locks=[_key_lock(record.bucket, kb)],
                                 shared=[_bucket_lock(record.bucket)])


# ------------------------------------------------------------------ ops (in a transaction)


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))


async def _migrate(conn: _Conn) -> int:
    """Apply the migrations newer than the database, under an advisory lock so concurrent
    openers migrate once; return the resulting version."""
    async with conn.transaction():
        await conn.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        await conn.execute(_SCHEMA_VERSION_TABLE)
        current = int(await conn.fetchval(
            "SELECT coalesce(max(version), 0) FROM schema_version"))
        latest = MIGRATIONS[-1][0]
        if current > latest:
            raise RuntimeError(
                f"database schema version {current} is newer than this cargohold ({latest})")
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version, applied) VALUES ($1, $2)",
                               version, time.time())
            log.info("metadata schema migrated to version %d", version)
        return max(current, latest)


def _refuse_existing(bucket: Bucket, owner: str) -> None:
    if owner == bucket.owner_id:
        raise errors.BucketAlreadyOwnedByYou(BucketName=bucket.name)
    raise errors.BucketAlreadyExists(BucketName=bucket.name)


async def _refuse_buckets_with_policy(conn: _Conn, grants: dict[str, str]) -> None:
    """Spaces' rule: a bucket with a bucket policy cannot be granted to a limited key."""
    rows = await conn.fetch(
        "SELECT name FROM buckets WHERE name = ANY($1::text[]) AND policy IS NOT NULL",
        list(grants))
    with_policy = {r[0] for r in rows}
    for name in grants:
        if name in with_policy:
            raise errors.InvalidRequest(
                f"Bucket {name!r} has a bucket policy, so it cannot be granted to a limited "
                "access key; delete the policy first.")


async def _bucket_is_empty(conn: _Conn, bucket: str) -> bool:
    """No current object, noncurrent version or marker: one statement, one snapshot."""
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = $1) "
        "OR EXISTS (SELECT 1 FROM object_versions WHERE bucket = $1)", bucket)
    return not found


async def _update_object(conn: _Conn, bucket: str, key: str, kb: bytes, column: str,
                         value: str, version_id: str | None) -> _Row:
    """Set one attribute column of the current object or of the version ``version_id``
    (never a delete marker's); return the row (object columns, data, delete_marker)."""
    assert column in ("tags", "acl")  # never from input: column names are code
    returning = (f"RETURNING {_OBJECT_COLUMNS}, (SELECT data FROM object_data d "
                 "WHERE d.bucket = $1 AND d.key = $2), false")
    if version_id is None:
        row = await conn.fetchrow(
            f"UPDATE objects SET {column} = $3 WHERE bucket = $1 AND key = $2 {returning}",
            bucket, kb, value)
        if row is None:
            await _require_bucket(conn, bucket)
            raise errors.NoSuchKey(Key=key)
        return row
    row = await conn.fetchrow(
        f"UPDATE objects SET {column} = $3 WHERE bucket = $1 AND key = $2 "
        f"AND version_id = $4 {returning}", bucket, kb, value, version_id)
    if row is not None:
        return row
    row = await conn.fetchrow(
        f"UPDATE object_versions SET {column} = $3 WHERE bucket = $1 AND key = $2 "
        f"AND version_id = $4 AND NOT delete_marker "
        f"RETURNING {_OBJECT_COLUMNS}, data, delete_marker", bucket, kb, value, version_id)
    if row is not None:
        return row
    marker = await conn.fetchval(
        "SELECT delete_marker FROM object_versions WHERE bucket = $1 AND key = $2 "
        "AND version_id = $3", bucket, kb, version_id)
    await _require_bucket(conn, bucket)
    if marker is None:
        raise errors.NoSuchVersion(Key=key, VersionId=version_id)
    raise errors.MethodNotAllowed(
        "The specified method is not allowed against this resource.",
        Method="PUT", ResourceType="DeleteMarker")


async def _store_object(conn: _Conn, record: ObjectRecord, kb: bytes, if_match: str | None,
                        if_none_match: bool, state: _State | None = None) -> str:
    """Make ``record`` current at its key (PUT, copy, completion, log delivery); the
    caller holds the key's lock. Returns the new version id."""
    st = state if state is not None else await _require_state(conn, record.bucket, kb)
    if if_none_match and st.current:
        raise errors.PreconditionFailed(Condition="If-None-Match")
    if if_match is not None:
        wanted = if_match.strip().strip('"')
        if not st.current:
            raise errors.NoSuchKey(Key=record.key)
        if wanted != "*" and st.etag != wanted:
            raise errors.PreconditionFailed(Condition="If-Match")
    replaced = st.current  # the current object goes for good (not kept as a version)
    version_id = NULL_VERSION
    current_seq = st.seq if st.seq is not None else 0
    if not st.versioning:
        seq = max(st.now_ns, current_seq + 1 if st.current else 0)
    else:
        seq = max(st.now_ns, current_seq + 1, st.top + 1)
        now = time.time()
        if st.marker_latest:
            await conn.execute(_END_LATEST_MARKER, record.bucket, kb, st.top, now)
        if st.versioning == "Enabled":
            version_id = new_version_id(seq)
        else:  # Suspended: this write is the null version; an older null one goes
            await _discard_version(conn, record.bucket, "", kb, NULL_VERSION, None)
        if st.current and (st.versioning == "Enabled" or st.version_id != NULL_VERSION):
            await conn.execute(_ARCHIVE_CURRENT, record.bucket, kb, now)
            replaced = False
    new_ids = record.blob_ids()
    queue: list[str] = []
    if replaced:
        old_parts = parts_from_json(st.parts)
        old_ids = [p.blob_id for p in old_parts] if old_parts else [st.blob_id]
        keep = set(new_ids)
        queue = [b for b in old_ids if b and b not in keep]
    entry = ListEntry.of(record)
    args: list[Any] = [
        record.bucket, kb, seq, version_id, record.blob_id, record.size, record.etag,
        record.last_modified, record.content_type, dumps(record.headers),
        dumps(record.metadata), dumps(record.checksums), record.storage_class,
        parts_json(record.parts), entry.checksum_algorithm, entry.checksum_type,
        dumps(record.tags), record.acl, record.sse,
        [p.number for p in record.parts], [p.blob_id for p in record.parts],
        queue, time.time(), new_ids,
    ]
    if record.inline is not None:
        await conn.execute(_WRITE_CURRENT_INLINE, *args, record.inline)
    else:
        await conn.execute(_WRITE_CURRENT_PLAIN, *args)
    return version_id


async def _discard_version(conn: _Conn, bucket: str, key: str, kb: bytes, version_id: str,
                           older_than: float | None) -> tuple[ObjectRecord, bool] | None:
    """Delete one noncurrent version (or marker) for good, queueing its blobs: the removed
    version and whether it was the latest; ``None`` if no row matched."""
    if older_than is None:
        row = await conn.fetchrow(_DISCARD_ANY_VERSION, bucket, kb, version_id, time.time())
    else:
        row = await conn.fetchrow(_DISCARD_OLD_VERSION, bucket, kb, version_id, time.time(),
                                  older_than)
    if row is None:
        return None
    return _version_record(bucket, key, row), row[18] is None


async def _delete_current(conn: _Conn, bucket: str, key: str, kb: bytes) -> ObjectRecord | None:
    row = await conn.fetchrow(_DELETE_CURRENTS, bucket, [kb], time.time())
    return None if row is None else _record(bucket, key, row, data=False)


async def _delete_currents(conn: _Conn, bucket: str,
                           items: list[tuple[str, bytes, str | None]]) -> list[DeleteResult]:
    """Delete the current objects of ``items`` (no version ids) in a bucket that never had
    versioning, in one statement; the caller holds their keys' locks."""
    rows = await conn.fetch(_DELETE_CURRENTS, bucket, list({kb for _, kb, _ in items}),
                            time.time())
    removed = {bytes(row[0]): row for row in rows}
    results: list[DeleteResult] = []
    for key, kb, _ in items:
        row = removed.pop(kb, None)  # a key named twice is removed once
        results.append(DeleteResult(
            None, False, None if row is None else _record(bucket, key, row, data=False)))
    return results


async def _delete(conn: _Conn, bucket: str, key: str, kb: bytes, version_id: str | None,
                  older_than: float | None) -> DeleteResult:
    """DeleteObject inside one transaction (see ``MetadataStore.delete_object``); the
    caller holds the key's lock."""
    st = await _require_state(conn, bucket, kb)
    if version_id is not None:
        if st.current and st.version_id == version_id:
            if older_than is not None:  # lifecycle never removes a current version
                return DeleteResult(version_id, False, None)
            removed = await _delete_current(conn, bucket, key, kb)
            await conn.execute(_PROMOTE_LATEST, bucket, kb)
            return DeleteResult(version_id, False, removed)
        found = await _discard_version(conn, bucket, key, kb, version_id, older_than)
        if found is None:
            return DeleteResult(version_id, False, None)
        gone, was_latest = found
        if was_latest:
            await conn.execute(_PROMOTE_LATEST, bucket, kb)
        return DeleteResult(version_id, gone.delete_marker,
                            None if gone.delete_marker else gone)
    if older_than is not None and (not st.current or st.last_modified >= older_than):
        return DeleteResult(None, False, None)
    if not st.versioning:
        removed = await _delete_current(conn, bucket, key, kb) if st.current else None
        return DeleteResult(None, False, removed)
    now = time.time()
    seq = max(st.now_ns, (st.seq or 0) + 1, st.top + 1)
    if st.marker_latest:
        await conn.execute(_END_LATEST_MARKER, bucket, kb, st.top, now)
    removed = None
    if st.versioning == "Enabled":
        marker_id = new_version_id(seq)
        if st.current:
            await conn.execute(_ARCHIVE_CURRENT, bucket, kb, now)
    else:  # Suspended: the null version (current or not) gives way to a null marker
        marker_id = NULL_VERSION
        await _discard_version(conn, bucket, "", kb, NULL_VERSION, None)
        if st.current:
            if st.version_id == NULL_VERSION:
                removed = await _delete_current(conn, bucket, key, kb)
            else:
                await conn.execute(_ARCHIVE_CURRENT, bucket, kb, now)
    await conn.execute(_INSERT_MARKER, bucket, kb, seq, marker_id, now)
    return DeleteResult(marker_id, True, removed)


def _current_manifest(upload_id: str, record: ObjectRecord,
                      rows: Sequence[_Row]) -> ObjectRecord:
    """``record`` with its manifest checked against the upload's parts as they are now
    (read with the upload locked): a part re-uploaded since with the same ETag and size is
    used with its new blob; any other difference is ``InvalidPart``."""
    if not record.parts:
        return record
    current = {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}
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


async def _drop_uploads(conn: _Conn, upload_ids: list[str]) -> int:
    """Delete uploads (the caller holds their locks) and their parts, queueing the part
    blobs; how many uploads there were."""
    status = await conn.execute(
        "WITH prt AS (DELETE FROM upload_parts WHERE upload_id = ANY($1::text[]) "
        "RETURNING upload_id, number, blob_id), "
        "queued AS (INSERT INTO blob_deletions (blob_id, queued_at) SELECT blob_id, $2 "
        "FROM prt WHERE blob_id <> '' ORDER BY upload_id, number "
        "ON CONFLICT (blob_id) DO NOTHING) "
        "DELETE FROM uploads WHERE upload_id = ANY($1::text[])", upload_ids, time.time())
    return _count(status)


# -------------------------------------------------------------------------- listing

# query(low, after, limit): rows in listing order (key bytes first) from key >= low, or,
# with ``after`` (a row of a previous query), strictly after that row.
_Query = Callable[[bytes, _Row | None, int], Awaitable[list[_Row]]]


async def _seek_scan(
    query: _Query, prefix: bytes, delimiter: bytes, low: bytes, budget: int,
    walk: Callable[[bytes, int], Awaitable[list[_Row]]] | None = None,
) -> tuple[list[tuple[bytes, _Row | None]], bool, int]:
    """Walk keys >= ``low`` under ``prefix``: ``(items, is_truncated, rows fetched)``.

    Items are ``(key, row)`` for entries and ``(common_prefix, None)`` for rollups, at most
    ``budget``; one more is looked for so ``is_truncated`` is exact. Rows under a common
    prefix are skipped and, when a batch ends inside one, the next query seeks to the
    prefix's successor, so keys under a common prefix are not read beyond what one batch
    brought. Batches adapt: without a delimiter there is nothing to skip, so one query asks
    for everything; with one, a batch that ended inside a common prefix is followed by a
    single-row one (the next key may well start another), and a batch of plain keys by
    one ``_CHUNK_GROWTH`` times larger. With ``walk`` (``walk(low, limit)``: one key per
    common prefix from ``low`` on, up to and including the first plain key), that
    single-row step is a walk instead, and a run of common prefixes costs one round trip,
    not one each; batches start again at the plain key it stopped at.
    """
    items: list[tuple[bytes, _Row | None]] = []
    fetched = 0
    plen = len(prefix)
    chunk = _FIRST_CHUNK if delimiter else budget + 1
    after: _Row | None = None
    walking = False
    while True:
        want = budget - len(items) + 1  # one more than fits: exact is_truncated
        limit = want if walking else min(want, chunk)
        rows = await (walk(low, limit) if walk is not None and walking
                      else query(low, after, limit))
        fetched += len(rows)
        stopped_at: bytes | None = None  # the plain key a walk stopped at
        if walking and rows and bytes(rows[-1][0]).find(delimiter, plen) < 0:
            stopped_at = bytes(rows[-1][0])
            rows = rows[:-1]
        skipping: bytes | None = None
        for row in rows:
            key: bytes = row[0]
            if skipping is not None:
                if key.startswith(skipping):
                    continue
                skipping = None
            if len(items) == budget:
                return items, True, fetched
            cut = key.find(delimiter, plen) if delimiter else -1
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                items.append((common, None))
                skipping = common
            else:
                items.append((key, row))
        if stopped_at is not None:  # batches again, from that key on
            walking, low, after, chunk = False, stopped_at, None, _FIRST_CHUNK
            continue
        if len(rows) < limit:  # ran dry: nothing is left in the range
            return items, False, fetched
        if skipping is not None:
            seek_to = successor(skipping)
            if seek_to is None:  # nothing sorts after this prefix
                return items, False, fetched
            low, after, chunk = seek_to, None, 1
            walking = walk is not None
        else:
            after, chunk = rows[-1], chunk * _CHUNK_GROWTH


class _Trips:
    """Round trips a listing made (tests prove the prefix walk by them)."""

    def __init__(self) -> None:
        self.count = 0


def _prefix_walk(
    conn: _Conn, tables: Sequence[str], bucket: str, prefix: bytes, delimiter: bytes,
    trips: _Trips,
) -> Callable[[bytes, int], Awaitable[list[_Row]]] | None:
    """The ``walk`` :func:`_seek_scan` takes for a listing of ``tables`` (None without a
    delimiter: there is nothing to roll up)."""
    if not delimiter:
        return None
    high = successor(prefix) if prefix else None
    sql = _walk_prefixes_sql(tables, high is not None)

    async def walk(start: bytes, limit: int) -> list[_Row]:
        trips.count += 1
        args: list[Any] = [bucket, start, *([high] if high is not None else []),
                           delimiter, len(prefix) + 1, limit]
        return cast(list[_Row], await conn.fetch(sql, *args))

    return walk


async def _list(conn: _Conn, bucket: str, prefix: bytes, delimiter: bytes,
                start_after: bytes, max_keys: int) -> tuple[ListPage, int, int]:
    """One page of objects, the number of rows fetched and of queries run."""
    low = scan_start(prefix, delimiter, start_after)
    if max_keys <= 0 or low is None:
        return ListPage([], [], False, None), 0, 0
    high = successor(prefix) if prefix else None
    bounded, unbounded = _list_objects_sql(True), _list_objects_sql(False)
    trips = _Trips()

    async def query(start: bytes, after: _Row | None, limit: int) -> list[_Row]:
        trips.count += 1
        if after is not None:
            start = bytes(after[0]) + b"\x00"
        if high is None:
            return cast(list[_Row], await conn.fetch(unbounded, bucket, start, limit))
        return cast(list[_Row], await conn.fetch(bounded, bucket, start, high, limit))

    walk = _prefix_walk(conn, ("objects",), bucket, prefix, delimiter, trips)
    items, truncated, fetched = await _seek_scan(query, prefix, delimiter, low, max_keys, walk)
    entries: list[ListEntry] = []
    prefixes: list[str] = []
    for key, row in items:
        if row is None:
            prefixes.append(key.decode("utf-8"))
        else:
            entries.append(ListEntry(key.decode("utf-8"), row[1], row[2], row[3], row[4],
                                     row[5], row[6], row[7]))
    next_marker = items[-1][0].decode("utf-8") if truncated else None
    return ListPage(entries, prefixes, truncated, next_marker), fetched, trips.count


def _resumable_query(
    conn: _Conn, sql_for: Callable[[bool, bool], str], bucket: str, prefix: bytes,
    resume: Callable[[_Row], list[Any]], trips: _Trips,
) -> Callable[[bytes, _Row | None, int], Awaitable[list[_Row]]]:
    """The ``query`` :func:`_seek_scan` steps through for a listing with several rows per
    key (uploads, versions): from ``start``, or right after the row ``after`` (its key, then
    what ``resume`` takes from it), below the prefix's successor."""
    high = successor(prefix) if prefix else None
    sql = {(b, a): sql_for(b, a) for b in (False, True) for a in (False, True)}

    async def query(start: bytes, after: _Row | None, limit: int) -> list[_Row]:
        trips.count += 1
        args: list[Any] = [bucket, bytes(after[0]) if after is not None else start]
        if high is not None:
            args.append(high)
        if after is not None:
            args += resume(after)
        return cast(list[_Row], await conn.fetch(sql[high is not None, after is not None],
                                                 *args, limit))

    return query


async def _list_uploads(conn: _Conn, bucket: str, prefix: bytes, delimiter: bytes,
                        key_marker: bytes, upload_id_marker: str,
                        max_uploads: int, trips: _Trips) -> tuple[UploadPage, int]:
    """One page of uploads: the marker key's later uploads first, then later keys."""
    low = scan_start(prefix, delimiter, key_marker)
    if max_uploads <= 0:
        return UploadPage([], [], False, None, None), 0
    items: list[tuple[bytes, _Row | None]] = []
    truncated = False
    fetched = 0
    if upload_id_marker and low == key_marker + b"\x00" and key_marker.startswith(prefix):
        # Uploads of the marker key after the marker upload, in (initiated, id) order. If
        # that upload is gone, fall back to S3's rule: upload ids greater than the marker.
        mark = await conn.fetchval("SELECT initiated FROM uploads WHERE upload_id = $1",
                                   upload_id_marker)
        if mark is not None:
            same_key = await conn.fetch(
                f"SELECT key, {_UPLOAD_COLUMNS} FROM uploads WHERE bucket = $1 AND key = $2 "
                "AND (initiated, upload_id) > ($3, $4) ORDER BY initiated, upload_id LIMIT $5",
                bucket, key_marker, mark, upload_id_marker, max_uploads + 1)
        else:
            same_key = await conn.fetch(
                f"SELECT key, {_UPLOAD_COLUMNS} FROM uploads WHERE bucket = $1 AND key = $2 "
                "AND upload_id > $3 ORDER BY initiated, upload_id LIMIT $4",
                bucket, key_marker, upload_id_marker, max_uploads + 1)
        fetched += len(same_key)
        truncated = len(same_key) > max_uploads
        items = [(bytes(r[0]), r) for r in same_key[:max_uploads]]
    if not truncated and low is not None:
        query = _resumable_query(conn, _list_uploads_sql, bucket, prefix,
                                 lambda after: [after[5], after[1]],  # initiated, upload_id
                                 trips)
        walk = _prefix_walk(conn, ("uploads",), bucket, prefix, delimiter, trips)
        more, truncated, scanned = await _seek_scan(query, prefix, delimiter, low,
                                                    max_uploads - len(items), walk)
        fetched += scanned
        items += more
    uploads = [_upload(row, 1) for _, row in items if row is not None]
    prefixes = [key.decode("utf-8") for key, row in items if row is None]
    if not truncated or not items:
        return UploadPage(uploads, prefixes, False, None, None), fetched
    last_key, last_row = items[-1]
    return UploadPage(uploads, prefixes, True, last_key.decode("utf-8"),
                      None if last_row is None else str(last_row[1])), fetched


async def _list_versions(conn: _Conn, bucket: str, prefix: bytes, delimiter: bytes,
                         key_marker: bytes, version_id_marker: str,
                         max_keys: int, trips: _Trips) -> tuple[VersionPage, int]:
    """One page of versions: the marker key's older versions first, then later keys."""
    low = scan_start(prefix, delimiter, key_marker)
    if max_keys <= 0:
        return VersionPage([], [], False, None, None), 0
    items: list[tuple[bytes, _Row | None]] = []
    truncated = False
    fetched = 0
    if version_id_marker and low == key_marker + b"\x00" and key_marker.startswith(prefix):
        mark = await conn.fetchval(
            "SELECT seq FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3 "
            "UNION ALL SELECT seq FROM object_versions WHERE bucket = $1 AND key = $2 "
            "AND version_id = $3", bucket, key_marker, version_id_marker)
        if mark is not None:  # a vanished marker version: the key is simply done
            same_key = await conn.fetch(
                f"SELECT {_CURRENT_VERSION_COLUMNS} FROM objects WHERE bucket = $1 AND key = $2 "
                f"AND seq < $3 UNION ALL SELECT {_NONCURRENT_VERSION_COLUMNS} "
                "FROM object_versions WHERE bucket = $1 "
                "AND key = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4",
                bucket, key_marker, mark, max_keys + 1)
            fetched += len(same_key)
            truncated = len(same_key) > max_keys
            items = [(bytes(r[0]), r) for r in same_key[:max_keys]]
    if not truncated and low is not None:
        query = _resumable_query(conn, _list_versions_sql, bucket, prefix,
                                 lambda after: [after[1]], trips)  # seq
        # A key's versions are in both tables (its current one in objects, unless a
        # delete marker is the latest), so the walk probes both.
        walk = _prefix_walk(conn, ("objects", "object_versions"), bucket, prefix,
                            delimiter, trips)
        more, truncated, scanned = await _seek_scan(query, prefix, delimiter, low,
                                                    max_keys - len(items), walk)
        fetched += scanned
        items += more
    entries = [
        VersionEntry(key.decode("utf-8"), row[2], bool(row[3]) or row[11] is None,
                     bool(row[4]), row[5], row[6], row[7], row[8], row[9], row[10], row[11])
        for key, row in items if row is not None
    ]
    prefixes = [key.decode("utf-8") for key, row in items if row is None]
    if not truncated or not items:
        return VersionPage(entries, prefixes, False, None, None), fetched
    last_key, last_row = items[-1]
    return VersionPage(entries, prefixes, True, last_key.decode("utf-8"),
                       None if last_row is None else str(last_row[2])), fetched
