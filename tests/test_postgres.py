"""PostgreSQL store only: what the shared database adds to the contract tests.

Locks are counted in ``pg_locks`` while a transaction is held up on purpose by a row lock a
second session takes, so these tests see what a transaction holds at its widest; lost
connections are made with ``pg_terminate_backend``. Skipped without a PostgreSQL server
(``tests/pgserver.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from cargohold import errors
from cargohold.store import postgres
from cargohold.store.base import (
    Account,
    Bucket,
    ObjectRecord,
    PartRef,
    Upload,
    UploadedPart,
)
from cargohold.store.postgres import PostgresStore
from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess, make_client
from tests.pgserver import database_on_a_small_disk, fresh_database_dsn

OWNER = "a" * 64
BUCKET = "bkt"
# Advisory locks a transaction may hold without straining PostgreSQL's shared lock table,
# which is sized for max_locks_per_transaction (64 by default) per connection.
LOCK_BUDGET = 64


def blob(n: int) -> str:
    return f"{n:032x}"


def obj(key: str, blob_id: str = "", bucket: str = BUCKET) -> ObjectRecord:
    return ObjectRecord(bucket=bucket, key=key, blob_id=blob_id, size=1, etag="e" * 32,
                        last_modified=time.time())


@asynccontextmanager
async def database(**settings: str) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A fresh database (with ``settings`` as its defaults) and a raw session on it."""
    dsn = fresh_database_dsn()
    conn = await asyncpg.connect(dsn)
    try:
        for name, value in settings.items():
            await conn.execute(f"ALTER DATABASE {conn._params.database} SET {name} = "
                               f"'{value}'")
        yield dsn, conn
    finally:
        await conn.close()


@asynccontextmanager
async def opened(dsn: str, versioning: str = "") -> AsyncIterator[PostgresStore]:
    store = PostgresStore(dsn)
    await store.open()
    try:
        if await store.get_bucket(BUCKET) is None:
            await store.create_account(Account(OWNER, "owner", "Owner", "", 1.0))
            await store.create_bucket(Bucket(BUCKET, OWNER, "nyc3", 1.0), 100)
            if versioning:
                await store.set_bucket_versioning(BUCKET, versioning)
        yield store
    finally:
        await store.close()


async def blocked_backend(conn: asyncpg.Connection, timeout: float = 10.0) -> int:
    """The pid of the store's session that waits for a lock (the held-up transaction)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'cargohold' AND wait_event_type = 'Lock'")
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.02)
    raise AssertionError("no store transaction came to wait for the lock")


async def advisory_locks_held(conn: asyncpg.Connection, pid: int) -> int:
    return int(await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND granted",
        pid))


async def held_up(conn: asyncpg.Connection, block: str, args: tuple[Any, ...],
                  work: Awaitable[Any],
                  while_blocked: Callable[[int], Awaitable[None]]) -> Any:
    """Run ``work`` while ``conn`` holds the row lock ``block`` takes; once the store's
    transaction waits for it, call ``while_blocked(pid)``, then let it go on."""
    tx = conn.transaction()
    await tx.start()
    try:
        assert await conn.fetch(block, *args), "the blocking statement locked no row"
        task = asyncio.ensure_future(work)
        try:
            await while_blocked(await blocked_backend(conn))
        finally:
            await tx.rollback()
        return await task
    except BaseException:
        if not tx._done:
            await tx.rollback()
        raise


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- lock table use


def test_a_thousand_key_delete_objects_holds_a_bounded_number_of_locks() -> None:
    """One advisory lock per key would put 1000 entries in the server's shared lock table
    per DeleteObjects: a few at once (aws s3 rm --recursive sends ten) exhaust it, and
    then every transaction on the server fails with "out of shared memory"."""

    async def main() -> None:
        async with database() as (dsn, conn), opened(dsn, "Enabled") as store:
            await store.put_object(obj("k0000", blob(1)))
            seen: list[int] = []

            async def count(pid: int) -> None:
                seen.append(await advisory_locks_held(conn, pid))

            items: list[tuple[str, str | None]] = [(f"k{i:04}", None) for i in range(1000)]
            results = await held_up(
                conn, "SELECT 1 FROM objects WHERE bucket = $1 AND key = $2 FOR UPDATE",
                (BUCKET, b"k0000"), store.delete_objects(BUCKET, items), count)
            assert seen and seen[0] <= LOCK_BUDGET, f"{seen[0]} advisory locks held"
            # Every key got its delete marker, and k0000's object became noncurrent.
            assert len(results) == 1000 and all(r.delete_marker for r in results)
            page = await store.list_object_versions(BUCKET, max_keys=2000)
            assert len(page.entries) == 1001
            assert await store.get_object(BUCKET, "k0000") is None

    run(main())


def test_delete_objects_in_an_unversioned_bucket_removes_each_chunk_in_one_statement(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Key by key, a 1000-key request took ~3,000 round trips (~600 ms here); the keys of a
    # bucket that never had versioning go in one statement per lock chunk instead, with
    # the same results and the same blobs queued.
    per_key: list[str] = []
    real_delete = postgres._delete

    async def counted(*args: Any) -> Any:
        per_key.append(args[2])  # (conn, bucket, key, ...)
        return await real_delete(*args)

    monkeypatch.setattr(postgres, "_delete", counted)

    async def main() -> None:
        async with database() as (dsn, _conn), opened(dsn) as store:
            multipart = dataclasses.replace(obj("parts", "", BUCKET), parts=(
                PartRef(1, blob(9001), 5, "1" * 32), PartRef(2, blob(9002), 5, "2" * 32)))
            inline = dataclasses.replace(obj("inline"), inline=b"tiny")
            await store.put_object(multipart)
            await store.put_object(inline)
            keys = [f"k{i:04d}" for i in range(100)]
            await asyncio.gather(*(store.put_object(obj(k, blob(i + 1)))
                                   for i, k in enumerate(keys)))
            items: list[tuple[str, str | None]] = [
                (k, None) for k in [*keys, "parts", "inline", "missing", "k0000"]]
            results = await store.delete_objects(BUCKET, items)
            assert per_key == []
            removed = [r.removed.key if r.removed else None for r in results]
            assert removed == [*keys, "parts", "inline", None, None]
            assert all(r.version_id is None and not r.delete_marker for r in results)
            assert (await store.list_objects(BUCKET)).entries == []
            queued = set(await store.pending_blob_deletions(limit=5000))
            assert queued == {blob(i + 1) for i in range(100)} | {blob(9001), blob(9002)}
            assert await store.get_object(BUCKET, "inline") is None

            await store.set_bucket_versioning(BUCKET, "Suspended")
            await store.put_object(obj("later", blob(5000)))
            results = await store.delete_objects(BUCKET, [("later", None)])
            assert per_key == ["later"]  # a versioned bucket's deletes make markers
            assert results[0].delete_marker

    run(main())


def test_a_thousand_key_delete_objects_leaves_other_keys_of_the_bucket_writable() -> None:
    # Held up on one of its keys, a bulk delete must not stall a PUT of another key.
    async def main() -> None:
        async with database() as (dsn, conn), opened(dsn) as store:
            keys = [f"k{i:04}" for i in range(1000)]
            for key in ("k0500", "k0999"):
                await store.put_object(obj(key, blob(1)))

            async def put_elsewhere(pid: int) -> None:
                await asyncio.wait_for(store.put_object(obj("other", blob(2))), 5)

            results = await held_up(
                conn, "SELECT 1 FROM objects WHERE bucket = $1 AND key = $2 FOR UPDATE",
                (BUCKET, b"k0500"), store.delete_objects(BUCKET, [(k, None) for k in keys]),
                put_elsewhere)
            assert len(results) == 1000
            assert [r.removed is not None for r in results].count(True) == 2
            assert await store.get_object(BUCKET, "other") is not None
            assert (await store.list_objects(BUCKET)).entries[0].key == "other"
            assert len((await store.list_objects(BUCKET)).entries) == 1

    run(main())


def test_bulk_delete_objects_racing_writes_on_its_keys_keeps_one_history_per_key() -> None:
    async def main() -> None:
        async with database() as (dsn, _conn), opened(dsn, "Enabled") as first, \
                opened(dsn) as second:
            keys = [f"r{i:03}" for i in range(100)]
            for n, key in enumerate(keys):
                await first.put_object(obj(key, blob(n + 1)))
            writes = [second.put_object(obj(key, blob(1000 + n)))
                      for n, key in enumerate(keys)]
            deleted, *_ = await asyncio.gather(
                first.delete_objects(BUCKET, [(k, None) for k in keys]), *writes)
            assert isinstance(deleted, list)
            markers = {k: r.version_id for k, r in zip(keys, deleted, strict=True)}
            page = await first.list_object_versions(BUCKET, max_keys=1000)
            by_key: dict[str, list[Any]] = {}
            for entry in page.entries:
                by_key.setdefault(entry.key, []).append(entry)
            for key in keys:
                history = by_key[key]
                assert len(history) == 3  # the first object, the marker, the racing PUT
                assert [e.is_latest for e in history] == [True, False, False]
                assert markers[key] in [e.version_id for e in history]
                ids = [e.version_id for e in history]
                assert ids == sorted(ids, reverse=True)  # newest first, by id as by seq
                latest = await first.get_version(BUCKET, key, None)
                assert latest is not None and latest.version_id == history[0].version_id
                assert latest.delete_marker == history[0].delete_marker

    run(main())


def test_deleting_a_bucket_with_many_uploads_holds_a_bounded_number_of_locks() -> None:
    async def main() -> None:
        async with database() as (dsn, conn), opened(dsn) as store:
            for n in range(300):
                await store.create_upload(Upload(f"u{n:04}", BUCKET, f"key{n}", OWNER, 1.0))
                await store.put_part(UploadedPart(f"u{n:04}", 1, blob(n + 1), 1, "e", 1.0))
            seen: list[int] = []

            async def count(pid: int) -> None:
                seen.append(await advisory_locks_held(conn, pid))

            # The session holds one upload the way a part being recorded does.
            await held_up(conn, "SELECT 1 FROM uploads WHERE upload_id = $1 FOR KEY SHARE",
                          ("u0150",), store.delete_bucket(BUCKET), count)
            assert seen and seen[0] <= LOCK_BUDGET, f"{seen[0]} advisory locks held"
            assert await store.get_bucket(BUCKET) is None
            assert sorted(await store.pending_blob_deletions(5000)) == [
                blob(n + 1) for n in range(300)]

    run(main())


def test_parts_recorded_while_the_bucket_is_deleted_are_refused_or_queued() -> None:
    """Of put_part and delete_bucket racing, either the part is refused (NoSuchUpload: the
    caller frees its blob) or it was recorded first and the deletion queues its blob."""

    async def main() -> None:
        async with database() as (dsn, _conn), opened(dsn) as first, opened(dsn) as second:
            for round_ in range(5):
                await first.create_upload(Upload("up", BUCKET, "key", OWNER, 1.0))
                base = 1000 * (round_ + 1)
                parts = [second.put_part(UploadedPart("up", 1 + n % 4, blob(base + n), 1,
                                                      "e", 1.0)) for n in range(40)]
                outcomes = await asyncio.gather(first.delete_bucket(BUCKET), *parts,
                                                return_exceptions=True)
                assert outcomes[0] is None, outcomes[0]
                refused = {blob(base + n) for n, r in enumerate(outcomes[1:])
                           if isinstance(r, errors.NoSuchUpload)}
                assert all(r is None or isinstance(r, errors.NoSuchUpload)
                           for r in outcomes[1:]), outcomes
                queued = set(await first.pending_blob_deletions(5000))
                assert queued | refused >= {blob(base + n) for n in range(40)}
                assert not queued & refused
                await first.forget_blob_deletions(list(queued))
                await first.create_bucket(Bucket(BUCKET, OWNER, "nyc3", 1.0), 100)

    run(main())


# ------------------------------------------------------------------- failures and retries


def test_a_write_whose_lock_times_out_is_slow_down_and_leaves_no_open_transaction() -> None:
    async def main() -> None:
        async with database(lock_timeout="200ms") as (dsn, conn), opened(dsn) as store:
            complaints: list[str] = []
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(
                lambda _loop, context: complaints.append(str(context.get("message"))))
            # Another session holds the bucket's lock, as delete_bucket would.
            await conn.execute("SELECT pg_advisory_lock($1)", postgres._bucket_lock(BUCKET))
            with pytest.raises(errors.SlowDown):
                await store.put_object(obj("k", blob(1)))
            await conn.execute("SELECT pg_advisory_unlock_all()")
            assert await store.put_object(obj("k", blob(2))) == "null"
            assert complaints == []  # asyncpg had no transaction left open to roll back

    run(main())


def test_a_connection_lost_mid_transaction_is_retried_and_applies_the_write_once() -> None:
    async def main() -> None:
        async with database() as (dsn, conn), opened(dsn, "Enabled") as store:
            first = await store.put_object(obj("k", blob(1)))

            async def kill(pid: int) -> None:
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)

            # The PUT waits on the current row (to make it noncurrent) when its session is
            # terminated: the server rolls it back and the store runs it again.
            second = await held_up(
                conn, "SELECT 1 FROM objects WHERE bucket = $1 AND key = $2 FOR UPDATE",
                (BUCKET, b"k"), store.put_object(obj("k", blob(2))), kill)
            page = await store.list_object_versions(BUCKET)
            assert [e.version_id for e in page.entries] == [second, first]
            current = await store.get_object(BUCKET, "k")
            assert current is not None and current.blob_id == blob(2)

    run(main())


def _local_postgres_pids(pids: list[int]) -> list[int]:
    """``pids`` if they are this machine's PostgreSQL processes (a server elsewhere has its
    own pid space: never signal a local process by a remote pid)."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"postgres" not in fh.read():
                    return []
        except OSError:
            return []
    return pids


def test_a_database_that_stops_answering_fails_requests_in_bounded_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A database host gone without a reset (a failover, a dead network path) or stuck:
    a statement gets no answer. Requests must fail (SlowDown) rather than wait for TCP to
    give up, which takes a quarter of an hour, and the store recovers once it answers."""
    import os
    import signal

    monkeypatch.setattr(postgres, "_COMMAND_TIMEOUT", 1.0)

    async def main() -> None:
        async with database() as (dsn, conn), opened(dsn) as store:
            await store.put_object(obj("k", blob(1)))
            pids = _local_postgres_pids([int(r[0]) for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'cargohold'")])
            if not pids:
                pytest.skip("the test server's sessions are not local processes")
            try:
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
            except PermissionError:
                pytest.skip("cannot pause the test server's sessions")
            loop = asyncio.get_running_loop()
            for pid in pids:  # even if the store hangs, the sessions resume
                loop.call_later(20, os.kill, pid, signal.SIGCONT)
            started = time.monotonic()
            try:
                with pytest.raises(errors.SlowDown):
                    await store.get_object(BUCKET, "k")
                assert time.monotonic() - started < 10
            finally:
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            record = await store.get_object(BUCKET, "k")
            assert record is not None and record.blob_id == blob(1)

    run(main())


# ------------------------------------------------------- a COMMIT whose answer is lost


class _CommitCutter:
    """A TCP proxy in front of PostgreSQL that cuts a session just after PostgreSQL has
    answered the COMMIT of a transaction carrying ``marker`` (in a statement's
    parameters): the transaction is committed, but the client never hears so."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.marker = b""
        self.cut = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self.dsn = urlunsplit(parts._replace(
            netloc=parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{self.port}"))
        self._thread.start()

    async def _session(self, client_in: asyncio.StreamReader,
                       client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection(*self.target)
        marked = cutting = False

        async def upstream() -> None:
            nonlocal marked, cutting
            while data := await client_in.read(65536):
                if b"BEGIN" in data:  # a new transaction: asyncpg's BEGIN is a simple query
                    marked = False
                if self.marker and self.marker in data:
                    marked = True
                if marked and b"COMMIT\x00" in data and not self.cut.is_set():
                    cutting = True
                server_out.write(data)
                await server_out.drain()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                if cutting:  # PostgreSQL's answer to that COMMIT: never passed on
                    self.cut.set()
                    break
                client_out.write(data)
                await client_out.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        with contextlib.suppress(OSError):
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        client_out.transport.abort()
        server_out.transport.abort()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def test_an_upload_whose_commit_answer_is_lost_keeps_its_blob(tmp_path: Path) -> None:
    # The store cannot tell whether a COMMIT it lost the connection over landed: its
    # error must not make the handler free the blob, or a committed object would point
    # at nothing.
    cutter = _CommitCutter(fresh_database_dsn())
    proc = ServerProcess(data_dir=tmp_path / "data", meta=cutter.dsn).start()
    try:
        client = make_client(proc.endpoint)
        client.create_bucket(Bucket="cut")
        once = boto3.client("s3", endpoint_url=proc.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION,
                            config=Config(retries={"total_max_attempts": 1}))
        body = os.urandom(300 * 1024)  # a blob, not inline
        cutter.marker = b"lost-commit-answer"
        with pytest.raises(ClientError) as exc:
            once.put_object(Bucket="cut", Key="lost-commit-answer", Body=body)
        assert cutter.cut.is_set()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert client.get_object(Bucket="cut", Key="lost-commit-answer")["Body"].read() == body
    finally:
        proc.stop()
        cutter.close()


# ------------------------------------------------------- the database's own disk fills up


def test_a_full_database_disk_refuses_writes_with_insufficient_storage_and_loses_nothing(
        tmp_path: Path) -> None:
    # Small objects are stored inline, in the database: with its tablespace on a 16 MiB
    # tmpfs, uploads fill it until PostgreSQL answers "disk full" (53100). That is 507
    # InsufficientStorage, as a full blob disk is, not a 500; what was acknowledged stays.
    with database_on_a_small_disk(16) as dsn:
        proc = ServerProcess(data_dir=tmp_path / "data", meta=dsn).start()
        try:
            client = make_client(proc.endpoint)
            client.create_bucket(Bucket="full")
            stored: dict[str, bytes] = {}
            refusal: tuple[int, str] | None = None
            for index in range(1000):
                key, body = f"k{index:04d}", os.urandom(48 * 1024)
                try:
                    client.put_object(Bucket="full", Key=key, Body=body)
                except ClientError as exc:
                    refusal = (exc.response["ResponseMetadata"]["HTTPStatusCode"],
                               exc.response["Error"]["Code"])
                    refused = key
                    break
                stored[key] = body
            assert refusal == (507, "InsufficientStorage"), "the database's disk never filled"
            assert len(stored) > 20

            listed = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(
                Bucket="full") for o in page.get("Contents", [])]
            assert listed == sorted(stored)
            for key, body in stored.items():
                assert client.get_object(Bucket="full", Key=key)["Body"].read() == body
            with pytest.raises(ClientError) as missing:
                client.head_object(Bucket="full", Key=refused)
            assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

            # Deletes still work on the full disk, and the server goes on answering.
            gone = sorted(stored)[:3]
            client.delete_objects(Bucket="full", Delete={"Objects": [{"Key": k} for k in gone]})
            client.delete_object(Bucket="full", Key=sorted(stored)[3])
            left = client.list_objects_v2(Bucket="full")
            assert [o["Key"] for o in left["Contents"]][:1] == [sorted(stored)[4]]
            assert left["KeyCount"] == len(stored) - 4
        finally:
            proc.stop()
