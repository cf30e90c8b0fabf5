"""Contract tests for :class:`cargohold.store.base.MetadataStore`.

Every implementation runs this same file: add it to ``STORE_FACTORIES`` (one line). Tests
are ``async def`` functions decorated with ``@aio``; each test's store is opened, used and
closed on one event loop (the ``runner`` fixture), so loop-bound drivers work too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import os
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

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
    VersionEntry,
    is_version_id,
)
from cargohold.store.encoding import successor
from cargohold.store.postgres import PostgresStore
from cargohold.store.sqlite import MIGRATIONS, SqliteStore
from tests.pgserver import fresh_database_dsn

# name -> factory(tmp_path) -> unopened store. PostgreSQL tests are skipped when no server
# is at hand (tests/pgserver.py).
STORE_FACTORIES: dict[str, Callable[[Path], MetadataStore]] = {
    "sqlite": lambda tmp: SqliteStore(tmp / "meta.db"),
    "postgresql": lambda tmp: PostgresStore(fresh_database_dsn()),
}

OWNER = "a" * 64
OTHER = "b" * 64
BUCKET = "bkt"

_runner: asyncio.Runner | None = None


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    """One event loop per test, shared by the fixtures and the test body."""
    global _runner
    with asyncio.Runner() as r:
        _runner = r
        try:
            yield r
        finally:
            _runner = None


def aio(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test on the test's event loop (pytest-asyncio is not used)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        if _runner is None:
            asyncio.run(fn(*args, **kwargs))
        else:
            _runner.run(fn(*args, **kwargs))

    return wrapper


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(
    request: pytest.FixtureRequest, tmp_path: Path, runner: asyncio.Runner
) -> Iterator[MetadataStore]:
    """An open store holding two accounts and one bucket ``bkt`` owned by ``OWNER``."""
    s = STORE_FACTORIES[request.param](tmp_path)
    runner.run(_open_with_owner_and_bucket(s))
    try:
        yield s
    finally:
        runner.run(s.close())


@pytest.fixture
def sqlite_store(tmp_path: Path, runner: asyncio.Runner) -> Iterator[SqliteStore]:
    """What ``store`` holds, in SQLite only: for tests of how the SQLite store works."""
    s = SqliteStore(tmp_path / "m.db")
    runner.run(_open_with_owner_and_bucket(s))
    try:
        yield s
    finally:
        runner.run(s.close())


async def _open_with_owner_and_bucket(s: MetadataStore) -> None:
    await s.open()
    now = time.time()
    await s.create_account(Account(OWNER, "owner", "Owner", "owner@example.com", now))
    await s.create_account(Account(OTHER, "other", "Other", "other@example.com", now))
    await s.create_bucket(Bucket(BUCKET, OWNER, "nyc3", now), max_buckets=100)


def obj(key: str, blob_id: str = "", *, bucket: str = BUCKET, etag: str = "e" * 32,
        size: int = 0) -> ObjectRecord:
    return ObjectRecord(bucket=bucket, key=key, blob_id=blob_id, size=size, etag=etag,
                        last_modified=time.time())


def blob(n: int) -> str:
    return f"{n:032x}"


async def put_all(store: MetadataStore, keys: list[str], bucket: str = BUCKET) -> None:
    await asyncio.gather(*(store.put_object(obj(k, bucket=bucket)) for k in keys))


def counter(store: MetadataStore, name: str) -> int | None:
    """An optional implementation counter (``commit_count``, ``list_rows_read``)."""
    value = getattr(store, name, None)
    return value if isinstance(value, int) else None


def names(page: ListPage) -> list[str]:
    return [e.key for e in page.entries]


def reference_listing(
    keys: list[str], prefix: str, delimiter: str, start_after: str, max_keys: int
) -> tuple[list[str], list[str], bool, str | None]:
    """What S3 returns, computed the slow obvious way (byte order, rollups, markers)."""
    items: list[tuple[bytes, str, bool]] = []  # (sort key, value, is_prefix)
    seen: set[str] = set()
    skip_prefix: str | None = None
    if delimiter and start_after.startswith(prefix):
        cut = start_after.find(delimiter, len(prefix))
        if cut >= 0:
            skip_prefix = start_after[: cut + len(delimiter)]
    for key in sorted(keys, key=lambda k: k.encode()):
        if not key.startswith(prefix) or key.encode() <= start_after.encode():
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = key[: cut + len(delimiter)]
            if common == skip_prefix or common in seen:
                continue
            seen.add(common)
            items.append((common.encode(), common, True))
        else:
            items.append((key.encode(), key, False))
    page, rest = items[:max_keys], items[max_keys:]
    truncated = bool(rest) and max_keys > 0
    return (
        [v for _, v, is_p in page if not is_p],
        [v for _, v, is_p in page if is_p],
        truncated,
        page[-1][1] if truncated else None,
    )


# ------------------------------------------------------------------------- listing


@aio
async def test_listing_orders_keys_by_their_utf8_bytes(store: MetadataStore) -> None:
    keys = ["a", "B", "a+b", "a%20b", "a b", "a/b", "é", "z", "\uffff", "😀", "ÿ", "~", "a\u0301",
            "日本", "A"]
    await put_all(store, keys)
    page = await store.list_objects(BUCKET)
    # Code point order = UTF-8 byte order; U+FFFF before U+1F600 rules out UTF-16 order.
    assert names(page) == sorted(keys, key=lambda k: k.encode("utf-8"))
    assert names(page).index("\uffff") < names(page).index("😀")
    assert not page.is_truncated and page.next_marker is None


@aio
async def test_listing_with_a_prefix_returns_only_keys_under_it(store: MetadataStore) -> None:
    await put_all(store, ["photos/a", "photos/b", "photos", "photosx", "photo", "videos/a"])
    page = await store.list_objects(BUCKET, prefix="photos/")
    assert names(page) == ["photos/a", "photos/b"]


@aio
async def test_delimiter_rolls_up_common_prefixes_and_seeks_past_them(
    store: MetadataStore,
) -> None:
    keys = [f"dir{p:03d}/file{i:03d}" for p in range(100) for i in range(100)]
    keys += ["top1", "top2", "zzz"]
    await put_all(store, keys)
    rows_before = counter(store, "list_rows_read")
    queries_before = counter(store, "list_queries")
    started = time.perf_counter()
    page = await store.list_objects(BUCKET, delimiter="/", max_keys=1000)
    elapsed = time.perf_counter() - started
    assert page.common_prefixes == [f"dir{p:03d}/" for p in range(100)]
    assert names(page) == ["top1", "top2", "zzz"]
    assert not page.is_truncated
    assert elapsed < 1.0
    if rows_before is not None:  # the store counts rows read: prove it seeks
        rows = (counter(store, "list_rows_read") or 0) - rows_before
        assert rows <= 110, f"read {rows} rows for 103 results"
    if queries_before is not None:  # a round-trip store: the prefixes come in one walk
        queries = (counter(store, "list_queries") or 0) - queries_before
        assert queries <= 4, f"{queries} queries for 100 common prefixes"


@aio
async def test_delimiter_rollup_honours_the_prefix(store: MetadataStore) -> None:
    await put_all(store, ["a/b/c", "a/b/d", "a/c", "a/", "a/d/e/f", "b/x"])
    page = await store.list_objects(BUCKET, prefix="a/", delimiter="/")
    assert names(page) == ["a/", "a/c"]
    assert page.common_prefixes == ["a/b/", "a/d/"]


@aio
async def test_multi_character_delimiters_roll_up(store: MetadataStore) -> None:
    await put_all(store, ["x--1--a", "x--1--b", "x--2", "y"])
    page = await store.list_objects(BUCKET, delimiter="--")
    assert page.common_prefixes == ["x--"]
    assert names(page) == ["y"]


@aio
async def test_start_after_a_common_prefix_skips_everything_under_it(
    store: MetadataStore,
) -> None:
    await put_all(store, ["a/1", "a/2", "a/3", "b/1", "c"])
    first = await store.list_objects(BUCKET, delimiter="/", max_keys=1)
    assert (first.common_prefixes, first.is_truncated, first.next_marker) == (["a/"], True, "a/")
    second = await store.list_objects(BUCKET, delimiter="/", max_keys=1, start_after="a/")
    assert (second.common_prefixes, second.is_truncated, second.next_marker) == (
        ["b/"], True, "b/")
    third = await store.list_objects(BUCKET, delimiter="/", max_keys=1, start_after="b/")
    assert (names(third), third.common_prefixes, third.is_truncated) == (["c"], [], False)
    assert third.next_marker is None


@aio
async def test_start_after_a_key_inside_a_common_prefix_does_not_repeat_that_prefix(
    store: MetadataStore,
) -> None:
    await put_all(store, ["a/1", "a/2", "b/1"])
    page = await store.list_objects(BUCKET, delimiter="/", start_after="a/1")
    assert page.common_prefixes == ["b/"]
    assert names(page) == []


@aio
async def test_start_after_without_a_delimiter_lists_keys_strictly_after_it(
    store: MetadataStore,
) -> None:
    await put_all(store, ["a", "a/1", "b"])
    page = await store.list_objects(BUCKET, start_after="a")
    assert names(page) == ["a/1", "b"]


@aio
async def test_is_truncated_is_exact_at_page_boundaries(store: MetadataStore) -> None:
    await put_all(store, ["k1", "k2", "k3"])
    full = await store.list_objects(BUCKET, max_keys=3)
    assert names(full) == ["k1", "k2", "k3"]
    assert (full.is_truncated, full.next_marker) == (False, None)
    short = await store.list_objects(BUCKET, max_keys=2)
    assert (short.is_truncated, short.next_marker) == (True, "k2")
    last = await store.list_objects(BUCKET, max_keys=2, start_after="k2")
    assert (names(last), last.is_truncated) == (["k3"], False)


@aio
async def test_is_truncated_is_exact_when_a_page_ends_on_a_common_prefix(
    store: MetadataStore,
) -> None:
    await put_all(store, ["a", "p/1", "p/2"])
    page = await store.list_objects(BUCKET, delimiter="/", max_keys=2)
    assert (names(page), page.common_prefixes) == (["a"], ["p/"])
    assert (page.is_truncated, page.next_marker) == (False, None)
    await store.put_object(obj("q"))
    page = await store.list_objects(BUCKET, delimiter="/", max_keys=2)
    assert (page.is_truncated, page.next_marker) == (True, "p/")


@aio
async def test_max_keys_zero_returns_an_empty_untruncated_page(store: MetadataStore) -> None:
    await put_all(store, ["a", "b"])
    page = await store.list_objects(BUCKET, max_keys=0)
    assert page == ListPage([], [], False, None)


@aio
async def test_paginated_listings_match_a_reference_model(store: MetadataStore) -> None:
    rng = random.Random(7)
    parts = ["a", "b", "é", "/", "+", "%", " ", "ab", "😀", "-"]
    keys = sorted({"".join(rng.choice(parts) for _ in range(rng.randint(1, 6)))
                   for _ in range(300)})
    await put_all(store, keys)
    for prefix in ["", "a", "a/", "é"]:
        for delimiter in ["", "/", "b", "ab", "😀"]:
            for page_size in [1, 3, 50, 1000]:
                marker, pages = "", 0
                got_keys: list[str] = []
                got_prefixes: list[str] = []
                while True:
                    page = await store.list_objects(
                        BUCKET, prefix, delimiter, marker, page_size)
                    want = reference_listing(keys, prefix, delimiter, marker, page_size)
                    assert (names(page), page.common_prefixes, page.is_truncated,
                            page.next_marker) == want, (prefix, delimiter, page_size, marker)
                    got_keys += names(page)
                    got_prefixes += page.common_prefixes
                    pages += 1
                    if not page.is_truncated:
                        break
                    assert page.next_marker is not None
                    marker = page.next_marker
                everything = reference_listing(keys, prefix, delimiter, "", 10**6)
                assert (got_keys, got_prefixes) == (everything[0], everything[1])


@aio
async def test_listing_a_missing_bucket_is_no_such_bucket(store: MetadataStore) -> None:
    with pytest.raises(errors.NoSuchBucket):
        await store.list_objects("nope")


@aio
async def test_listing_returns_what_a_listing_shows_of_each_object(store: MetadataStore) -> None:
    record = ObjectRecord(
        bucket=BUCKET, key="k", blob_id=blob(1), size=5, etag="0" * 32,
        last_modified=1700000000.123456, content_type="text/plain",
        headers={"cache-control": "max-age=60"}, metadata={"colour": "blå"},
        checksums={"CRC32": "AAAAAA=="}, storage_class="STANDARD")
    await store.put_object(record)
    assert (await store.list_objects(BUCKET)).entries == [ListEntry(
        "k", 5, "0" * 32, 1700000000.123456, "STANDARD", "CRC32", "FULL_OBJECT")]
    assert await store.get_object(BUCKET, "k") == record


# ---------------------------------------------------------------------- objects


@aio
async def test_get_object_returns_none_for_a_missing_key(store: MetadataStore) -> None:
    assert await store.get_object(BUCKET, "missing") is None
    assert await store.get_object("no-bucket", "missing") is None


@aio
async def test_put_object_into_a_missing_bucket_is_no_such_bucket(store: MetadataStore) -> None:
    with pytest.raises(errors.NoSuchBucket):
        await store.put_object(obj("k", bucket="nope"))


@aio
async def test_if_none_match_refuses_to_overwrite(store: MetadataStore) -> None:
    await store.put_object(obj("k"), if_none_match=True)
    with pytest.raises(errors.PreconditionFailed):
        await store.put_object(obj("k"), if_none_match=True)


@aio
async def test_if_match_needs_the_current_etag(store: MetadataStore) -> None:
    with pytest.raises(errors.NoSuchKey):
        await store.put_object(obj("k", etag="1" * 32), if_match="1" * 32)
    await store.put_object(obj("k", etag="1" * 32))
    with pytest.raises(errors.PreconditionFailed):
        await store.put_object(obj("k", etag="2" * 32), if_match="9" * 32)
    await store.put_object(obj("k", etag="2" * 32), if_match=f'"{"1" * 32}"')
    current = await store.get_object(BUCKET, "k")
    assert current is not None and current.etag == "2" * 32


@aio
async def test_two_racing_if_none_match_puts_have_exactly_one_winner(
    store: MetadataStore,
) -> None:
    results = await asyncio.gather(
        store.put_object(obj("race", blob(1)), if_none_match=True),
        store.put_object(obj("race", blob(2)), if_none_match=True),
        return_exceptions=True,
    )
    assert sum(isinstance(r, str) for r in results) == 1
    assert sum(isinstance(r, errors.PreconditionFailed) for r in results) == 1
    winner = await store.get_object(BUCKET, "race")
    assert winner is not None
    assert winner.blob_id == (blob(1) if isinstance(results[0], str) else blob(2))
    assert await store.pending_blob_deletions() == []


@aio
async def test_one_failing_write_does_not_disturb_the_others_in_its_batch(
    store: MetadataStore,
) -> None:
    ops = [store.put_object(obj(f"k{i}")) for i in range(20)]
    ops.insert(10, store.put_object(obj("bad", bucket="nope")))
    results = await asyncio.gather(*ops, return_exceptions=True)
    assert isinstance(results[10], errors.NoSuchBucket)
    assert [r for i, r in enumerate(results) if i != 10] == ["null"] * 20
    assert len((await store.list_objects(BUCKET)).entries) == 20


@aio
async def test_delete_object_returns_what_it_removed(store: MetadataStore) -> None:
    await store.put_object(obj("k", blob(1)))
    removed = (await store.delete_object(BUCKET, "k")).removed
    assert removed is not None and removed.blob_id == blob(1)
    assert await store.get_object(BUCKET, "k") is None
    assert (await store.delete_object(BUCKET, "k")).removed is None


@aio
async def test_delete_objects_removes_several_keys_with_aligned_results(
    store: MetadataStore,
) -> None:
    await store.put_object(obj("a", blob(1)))
    await store.put_object(obj("c", blob(3)))
    results = await store.delete_objects(BUCKET, [("a", None), ("b", None), ("c", None)])
    assert [r.removed.key if r.removed else None for r in results] == ["a", None, "c"]
    assert await store.bucket_is_empty(BUCKET)
    assert sorted(await store.pending_blob_deletions()) == [blob(1), blob(3)]


@aio
async def test_set_object_tags_replaces_the_tags_and_nothing_else(store: MetadataStore) -> None:
    inline = ObjectRecord(bucket=BUCKET, key="tiny", blob_id="", size=5, etag="e" * 32,
                          last_modified=1700000000.25, inline=b"hello", tags={"old": "1"})
    multipart = manifest_record("big", blob(1), blob(2))
    for record in (inline, obj("blob", blob(3), size=100), multipart):
        await store.put_object(record)
        listed_before = (await store.list_objects(BUCKET, prefix=record.key)).entries
        tags = {"b": "2", "a": "1", "ключ": "значение"}
        returned = await store.set_object_tags(BUCKET, record.key, tags)
        expected = dataclasses.replace(record, tags=tags)
        assert returned == expected
        got = await store.get_object(BUCKET, record.key)
        assert got == expected
        assert got is not None and list(got.tags) == ["b", "a", "ключ"]  # order kept
        assert (await store.list_objects(BUCKET, prefix=record.key)).entries == listed_before
        cleared = await store.set_object_tags(BUCKET, record.key, {})
        assert cleared == dataclasses.replace(record, tags={})
    assert await store.pending_blob_deletions() == []


@aio
async def test_set_object_tags_needs_the_bucket_and_the_object(store: MetadataStore) -> None:
    with pytest.raises(errors.NoSuchKey):
        await store.set_object_tags(BUCKET, "missing", {"a": "1"})
    with pytest.raises(errors.NoSuchBucket):
        await store.set_object_tags("nope", "k", {"a": "1"})
    await store.put_object(obj("k"))
    await store.delete_object(BUCKET, "k")
    with pytest.raises(errors.NoSuchKey):
        await store.set_object_tags(BUCKET, "k", {"a": "1"})


@aio
async def test_bucket_acl_policy_and_cors_are_set_and_cleared(store: MetadataStore) -> None:
    await store.set_bucket_acl(BUCKET, '{"acl":1}')
    await store.set_bucket_policy(BUCKET, '{"Statement":[]}')
    await store.set_bucket_cors(BUCKET, '{"CORSRules":[]}')
    got = await store.get_bucket(BUCKET)
    assert got is not None
    assert (got.acl, got.policy, got.cors) == ('{"acl":1}', '{"Statement":[]}',
                                               '{"CORSRules":[]}')
    await store.set_bucket_policy(BUCKET, None)
    await store.set_bucket_cors(BUCKET, None)
    await store.set_bucket_acl(BUCKET, "")
    got = await store.get_bucket(BUCKET)
    assert got is not None and (got.acl, got.policy, got.cors) == ("", None, None)
    for setter in (store.set_bucket_acl, store.set_bucket_policy, store.set_bucket_cors):
        with pytest.raises(errors.NoSuchBucket):
            await setter("nope", "x")


@aio
async def test_object_acl_is_stored_with_the_object_and_replaced_alone(
        store: MetadataStore) -> None:
    await store.put_object(dataclasses.replace(obj("k"), acl='{"public":1}'))
    got = await store.get_object(BUCKET, "k")
    assert got is not None and got.acl == '{"public":1}'
    await store.set_object_acl(BUCKET, "k", "")
    assert await store.get_object(BUCKET, "k") == dataclasses.replace(got, acl="")
    with pytest.raises(errors.NoSuchKey):
        await store.set_object_acl(BUCKET, "missing", "")


@aio
async def test_limited_key_grants_and_bucket_policies_exclude_each_other(
        store: MetadataStore) -> None:
    limited = AccessKey("LIMITED", "s", OWNER, 1.0, grants={BUCKET: "read"})
    await store.create_key(limited)
    with pytest.raises(errors.InvalidRequest):
        await store.set_bucket_policy(BUCKET, '{"Statement":[]}')
    await store.set_key_grants("LIMITED", {})
    await store.set_bucket_policy(BUCKET, '{"Statement":[]}')
    with pytest.raises(errors.InvalidRequest):
        await store.set_key_grants("LIMITED", {BUCKET: "readwrite"})
    with pytest.raises(errors.InvalidRequest):
        await store.create_key(AccessKey("OTHER", "s", OWNER, 1.0, grants={BUCKET: "read"}))
    full = AccessKey("FULL", "s", OWNER, 1.0)
    await store.create_key(full)
    with pytest.raises(errors.InvalidRequest):
        await store.set_key_grants("FULL", {})
    assert await store.get_key("FULL") == full
    assert (await store.get_key("LIMITED")) == dataclasses.replace(limited, grants={})


@aio
async def test_an_overwrite_stores_the_new_records_tags_not_the_old_ones(
    store: MetadataStore,
) -> None:
    await store.put_object(dataclasses.replace(obj("k"), tags={"a": "1"}))
    got = await store.get_object(BUCKET, "k")
    assert got is not None and got.tags == {"a": "1"}
    await store.put_object(obj("k"))
    got = await store.get_object(BUCKET, "k")
    assert got is not None and got.tags == {}


@aio
async def test_replaced_and_deleted_blobs_are_queued_for_deletion(store: MetadataStore) -> None:
    await store.put_object(obj("k", blob(1)))
    assert await store.pending_blob_deletions() == []
    await store.put_object(obj("k", blob(2)))
    assert await store.pending_blob_deletions() == [blob(1)]
    await store.put_object(obj("k", blob(2)))  # same blob again: nothing to delete
    assert await store.pending_blob_deletions() == [blob(1)]
    await store.delete_object(BUCKET, "k")
    assert sorted(await store.pending_blob_deletions()) == [blob(1), blob(2)]
    await store.forget_blob_deletions([blob(1), blob(2)])
    assert await store.pending_blob_deletions() == []


@aio
async def test_the_deletion_queue_can_be_read_up_to_a_queue_time(store: MetadataStore) -> None:
    await store.put_object(obj("k", blob(1)))
    before = time.time() - 1
    await store.put_object(obj("k", blob(2)))  # queues blob(1) now
    assert await store.pending_blob_deletions(queued_before=before) == []
    assert await store.pending_blob_deletions(queued_before=time.time() + 1) == [blob(1)]
    assert await store.pending_blob_deletions() == [blob(1)]


@aio
async def test_referenced_blobs_counts_queued_ones_only_when_asked(
        store: MetadataStore) -> None:
    await store.put_object(obj("k", blob(1)))
    await store.put_object(obj("k", blob(2)))  # blob(1) is queued, blob(2) referenced
    ids = [blob(1), blob(2), blob(3)]
    assert await store.referenced_blobs(ids) == {blob(2)}
    assert await store.referenced_blobs(ids, include_queued=True) == {blob(1), blob(2)}


@aio
async def test_empty_objects_queue_no_blob(store: MetadataStore) -> None:
    await store.put_object(obj("empty", ""))
    await store.put_object(obj("empty", ""))
    await store.delete_object(BUCKET, "empty")
    assert await store.pending_blob_deletions() == []


@aio
async def test_referenced_blobs_reports_only_committed_references(
    store: MetadataStore,
) -> None:
    await store.put_object(obj("a", blob(1)))
    await store.put_object(obj("b", blob(2)))
    await store.delete_object(BUCKET, "b")
    many = [blob(n) for n in range(3, 1300)]  # more than one query's worth of ids
    assert await store.referenced_blobs([blob(1), blob(2), *many]) == {blob(1)}
    assert await store.referenced_blobs([]) == set()


@aio
async def test_concurrent_writes_share_commits(store: MetadataStore) -> None:
    before = counter(store, "commit_count")
    if before is None:
        pytest.skip("store does not count commits")
    await asyncio.gather(*(store.put_object(obj(f"k{i:03d}")) for i in range(200)))
    commits = (counter(store, "commit_count") or 0) - before
    assert 1 <= commits < 200 / 4, f"{commits} commits for 200 puts"
    assert len((await store.list_objects(BUCKET)).entries) == 200


# ---------------------------------------------------------------------- buckets


@aio
async def test_creating_an_existing_bucket_names_its_owner_relationship(
    store: MetadataStore,
) -> None:
    with pytest.raises(errors.BucketAlreadyOwnedByYou):
        await store.create_bucket(Bucket(BUCKET, OWNER, "nyc3", time.time()), 100)
    with pytest.raises(errors.BucketAlreadyExists):
        await store.create_bucket(Bucket(BUCKET, OTHER, "nyc3", time.time()), 100)


@aio
async def test_bucket_count_is_limited_per_owner(store: MetadataStore) -> None:
    await store.create_bucket(Bucket("second", OWNER, "nyc3", time.time()), 2)
    with pytest.raises(errors.TooManyBuckets):
        await store.create_bucket(Bucket("third", OWNER, "nyc3", time.time()), 2)
    await store.create_bucket(Bucket("others", OTHER, "nyc3", time.time()), 2)
    assert await store.get_bucket("third") is None


@aio
async def test_buckets_are_listed_per_owner_in_name_order(store: MetadataStore) -> None:
    for name in ["zeta", "alpha", "alpine", "beta"]:
        await store.create_bucket(Bucket(name, OWNER, "nyc3", time.time()), 100)
    await store.create_bucket(Bucket("theirs", OTHER, "nyc3", time.time()), 100)
    listed = [b.name for b in await store.list_buckets(OWNER)]
    assert listed == ["alpha", "alpine", "beta", BUCKET, "zeta"]
    assert [b.name for b in await store.list_buckets(OWNER, prefix="alp")] == ["alpha", "alpine"]
    assert [b.name for b in await store.list_buckets(OWNER, start_after="beta", limit=1)] == [
        BUCKET]


@aio
async def test_deleting_buckets_checks_existence_and_emptiness(store: MetadataStore) -> None:
    with pytest.raises(errors.NoSuchBucket):
        await store.delete_bucket("nope")
    await store.put_object(obj("k"))
    assert not await store.bucket_is_empty(BUCKET)
    with pytest.raises(errors.BucketNotEmpty):
        await store.delete_bucket(BUCKET)
    await store.delete_object(BUCKET, "k")
    await store.delete_bucket(BUCKET)
    assert await store.get_bucket(BUCKET) is None


@aio
async def test_get_bucket_returns_what_was_created(store: MetadataStore) -> None:
    bucket = Bucket("fresh", OTHER, "ams3", 1700000000.5)
    await store.create_bucket(bucket, 100)
    assert await store.get_bucket("fresh") == bucket


# -------------------------------------------------------------------- multipart


def upload(upload_id: str, key: str = "big", initiated: float = 1.0) -> Upload:
    return Upload(upload_id=upload_id, bucket=BUCKET, key=key, owner_id=OWNER,
                  initiated=initiated, content_type="video/mp4",
                  headers={"cache-control": "no-cache"}, metadata={"m": "v"},
                  checksum_algorithm="CRC32", checksum_type="COMPOSITE")


def part(upload_id: str, number: int, blob_id: str) -> UploadedPart:
    return UploadedPart(upload_id=upload_id, number=number, blob_id=blob_id, size=5,
                        etag=f"{number:032x}", last_modified=2.0, checksums={"CRC32": "AA=="})


def manifest_record(key: str, *blob_ids: str, numbers: tuple[int, ...] = ()) -> ObjectRecord:
    """The record a completion naming ``blob_ids`` as parts ``numbers`` (default 1, 2, ...)
    builds from parts made by :func:`part`."""
    parts = tuple(PartRef(n, b, 5, f"{n:032x}")
                  for n, b in zip(numbers or range(1, len(blob_ids) + 1), blob_ids, strict=True))
    return ObjectRecord(bucket=BUCKET, key=key, blob_id="", size=5 * len(parts),
                        etag="f" * 32 + f"-{len(parts)}", last_modified=3.0, parts=parts)


@aio
async def test_uploads_are_found_only_under_their_own_bucket_and_key(
    store: MetadataStore,
) -> None:
    await store.create_upload(upload("u1"))
    assert await store.get_upload(BUCKET, "big", "u1") == upload("u1")
    assert await store.get_upload(BUCKET, "other", "u1") is None
    assert await store.get_upload("elsewhere", "big", "u1") is None
    assert await store.get_upload(BUCKET, "big", "nope") is None
    with pytest.raises(errors.NoSuchBucket):
        await store.create_upload(Upload("u2", "nope", "k", OWNER, 1.0))


@aio
async def test_a_reuploaded_part_replaces_the_old_one_and_queues_its_blob(
    store: MetadataStore,
) -> None:
    await store.create_upload(upload("u1"))
    await store.put_part(part("u1", 1, blob(1)))
    await store.put_part(part("u1", 1, blob(2)))
    parts, truncated = await store.list_parts("u1")
    assert (parts, truncated) == ([part("u1", 1, blob(2))], False)
    assert await store.pending_blob_deletions() == [blob(1)]
    with pytest.raises(errors.NoSuchUpload):
        await store.put_part(part("gone", 1, blob(3)))


@aio
async def test_list_parts_pages_by_part_number_with_exact_truncation(
    store: MetadataStore,
) -> None:
    await store.create_upload(upload("u1"))
    for n in (3, 1, 2, 10):
        await store.put_part(part("u1", n, blob(n)))
    first, more = await store.list_parts("u1", 0, 2)
    assert ([p.number for p in first], more) == ([1, 2], True)
    rest, more = await store.list_parts("u1", 2, 2)
    assert ([p.number for p in rest], more) == ([3, 10], False)


@aio
async def test_completing_an_upload_stores_the_manifest_and_frees_unused_parts(
    store: MetadataStore,
) -> None:
    await store.put_object(obj("big", blob(9)))
    await store.create_upload(upload("u1"))
    for n in (1, 2, 3):
        await store.put_part(part("u1", n, blob(n)))
    assert await store.referenced_blobs([blob(1), blob(2), blob(3)]) == {
        blob(1), blob(2), blob(3)}
    record = manifest_record("big", blob(1), blob(3), numbers=(1, 3))
    await store.complete_upload("u1", record)
    assert await store.get_object(BUCKET, "big") == record
    assert (await store.list_objects(BUCKET)).entries == [ListEntry.of(record)]
    assert await store.get_upload(BUCKET, "big", "u1") is None
    assert sorted(await store.pending_blob_deletions()) == [blob(2), blob(9)]
    assert await store.referenced_blobs([blob(1), blob(2), blob(3)]) == {blob(1), blob(3)}
    with pytest.raises(errors.NoSuchUpload):
        await store.complete_upload("u1", record)


@aio
async def test_an_upload_keeps_its_tags_until_completion(store: MetadataStore) -> None:
    tagged = dataclasses.replace(upload("u1"), tags={"stage": "raw", "n": "2"})
    await store.create_upload(tagged)
    assert await store.get_upload(BUCKET, "big", "u1") == tagged
    assert (await store.list_uploads(BUCKET)).uploads == [tagged]
    await store.put_part(part("u1", 1, blob(1)))
    record = dataclasses.replace(manifest_record("big", blob(1)), tags=tagged.tags)
    await store.complete_upload("u1", record)
    got = await store.get_object(BUCKET, "big")
    assert got is not None and got.tags == {"stage": "raw", "n": "2"}


@aio
async def test_a_failed_completion_condition_keeps_the_upload(store: MetadataStore) -> None:
    await store.put_object(obj("big", blob(9)))
    await store.create_upload(upload("u1"))
    await store.put_part(part("u1", 1, blob(1)))
    with pytest.raises(errors.PreconditionFailed):
        await store.complete_upload("u1", manifest_record("big", blob(1)), if_none_match=True)
    assert await store.get_upload(BUCKET, "big", "u1") is not None
    current = await store.get_object(BUCKET, "big")
    assert current is not None and current.blob_id == blob(9)
    assert await store.pending_blob_deletions() == []


@aio
async def test_a_completion_uses_a_part_reuploaded_with_the_same_bytes_meanwhile(
    store: MetadataStore,
) -> None:
    # The completion read part 1 (blob 1); the same bytes were uploaded again (blob 5)
    # before it committed, which queued blob 1: the object must not name blob 1.
    await store.create_upload(upload("u1"))
    await store.put_part(part("u1", 1, blob(1)))
    record = manifest_record("big", blob(1))
    await store.put_part(part("u1", 1, blob(5)))
    await store.complete_upload("u1", record)
    current = await store.get_object(BUCKET, "big")
    assert current is not None and current.blob_ids() == [blob(5)]
    assert await store.pending_blob_deletions() == [blob(1)]
    assert await store.referenced_blobs([blob(1), blob(5)]) == {blob(5)}


@aio
async def test_a_completion_naming_a_part_since_replaced_by_other_bytes_is_invalid_part(
    store: MetadataStore,
) -> None:
    await store.create_upload(upload("u1"))
    await store.put_part(part("u1", 1, blob(1)))
    record = manifest_record("big", blob(1))
    await store.put_part(dataclasses.replace(part("u1", 1, blob(5)), etag="0" * 32))
    with pytest.raises(errors.InvalidPart):
        await store.complete_upload("u1", record)
    assert await store.get_object(BUCKET, "big") is None
    assert await store.get_upload(BUCKET, "big", "u1") is not None
    assert await store.referenced_blobs([blob(1), blob(5)]) == {blob(5)}


@aio
async def test_replacing_or_deleting_a_multipart_object_queues_all_its_parts(
    store: MetadataStore,
) -> None:
    await store.create_upload(upload("u1"))
    await store.put_part(part("u1", 1, blob(1)))
    await store.put_part(part("u1", 2, blob(2)))
    await store.complete_upload("u1", manifest_record("big", blob(1), blob(2)))
    await store.put_object(obj("big", blob(5)))
    assert sorted(await store.pending_blob_deletions()) == [blob(1), blob(2)]
    assert await store.referenced_blobs([blob(1), blob(2), blob(5)]) == {blob(5)}
    await store.create_upload(upload("u2"))
    await store.put_part(part("u2", 1, blob(3)))
    await store.complete_upload("u2", manifest_record("big", blob(3)))
    await store.delete_object(BUCKET, "big")
    assert sorted(await store.pending_blob_deletions()) == [blob(n) for n in (1, 2, 3, 5)]


@aio
async def test_aborting_an_upload_queues_its_parts_once(store: MetadataStore) -> None:
    await store.create_upload(upload("u1"))
    await store.put_part(part("u1", 1, blob(1)))
    assert await store.abort_upload("u1")
    assert not await store.abort_upload("u1")
    assert await store.pending_blob_deletions() == [blob(1)]
    assert await store.list_parts("u1") == ([], False)


@aio
async def test_deleting_a_bucket_drops_its_in_progress_uploads(store: MetadataStore) -> None:
    await store.create_upload(upload("u1"))
    await store.put_part(part("u1", 1, blob(1)))
    await store.delete_bucket(BUCKET)
    assert await store.get_upload(BUCKET, "big", "u1") is None
    assert await store.pending_blob_deletions() == [blob(1)]


@aio
async def test_uploads_are_listed_by_key_bytes_then_initiation(store: MetadataStore) -> None:
    await store.create_upload(upload("u-late", "a", initiated=5.0))
    await store.create_upload(upload("u-early", "a", initiated=1.0))
    await store.create_upload(upload("u-z", "é", initiated=0.5))
    await store.create_upload(upload("u-b", "b", initiated=9.0))
    page = await store.list_uploads(BUCKET)
    assert [u.upload_id for u in page.uploads] == ["u-early", "u-late", "u-b", "u-z"]
    assert not page.is_truncated and page.next_key_marker is None
    assert (await store.list_uploads(BUCKET, max_uploads=0)).uploads == []


@aio
async def test_upload_listings_roll_up_and_paginate_with_both_markers(
    store: MetadataStore,
) -> None:
    for i, (uid, key) in enumerate([("1", "a"), ("2", "a"), ("3", "a"), ("4", "d/x"),
                                    ("5", "d/y"), ("6", "e")]):
        await store.create_upload(upload(uid, key, initiated=float(i)))
    seen: list[str] = []
    key_marker, id_marker = "", ""
    while True:
        page = await store.list_uploads(BUCKET, delimiter="/", key_marker=key_marker,
                                        upload_id_marker=id_marker, max_uploads=2)
        seen += [u.upload_id for u in page.uploads] + page.common_prefixes
        if not page.is_truncated:
            break
        key_marker = page.next_key_marker or ""
        id_marker = page.next_upload_id_marker or ""
    assert seen == ["1", "2", "3", "d/", "6"]


@aio
async def test_a_delimited_upload_listing_walks_past_common_prefixes(
    store: MetadataStore,
) -> None:
    keys = [f"dir{p:03d}/u{i}" for p in range(100) for i in range(5)] + ["dir050", "top"]
    await asyncio.gather(*(store.create_upload(upload(f"id-{n:04d}", key, initiated=1.0))
                           for n, key in enumerate(keys)))
    queries_before = counter(store, "list_queries")
    page = await store.list_uploads(BUCKET, delimiter="/")
    assert page.common_prefixes == [f"dir{p:03d}/" for p in range(100)]
    assert [u.key for u in page.uploads] == ["dir050", "top"]
    assert not page.is_truncated
    if queries_before is not None:  # a round-trip store: runs of prefixes come in walks
        queries = (counter(store, "list_queries") or 0) - queries_before
        assert queries <= 6, f"{queries} queries for 100 common prefixes"


@aio
async def test_old_uploads_are_found_for_expiry(store: MetadataStore) -> None:
    await store.create_upload(upload("old", initiated=10.0))
    await store.create_upload(upload("new", initiated=1000.0))
    assert [u.upload_id for u in await store.uploads_initiated_before(500.0)] == ["old"]


@aio
async def test_uploads_initiated_before_come_oldest_first_up_to_the_limit(
    store: MetadataStore,
) -> None:
    for i, when in enumerate([30.0, 10.0, 20.0, 40.0]):
        await store.create_upload(upload(f"u{i}", key=f"k{i}", initiated=when))
    found = await store.uploads_initiated_before(35.0, limit=2)
    assert [u.upload_id for u in found] == ["u1", "u2"]
    assert await store.uploads_initiated_before(5.0) == []


@aio
async def test_an_upload_id_marker_on_a_key_outside_the_prefix_lists_nothing_of_that_key(
    store: MetadataStore,
) -> None:
    await store.create_upload(upload("1", "a/x", initiated=1.0))
    await store.create_upload(upload("2", "b", initiated=2.0))
    await store.create_upload(upload("3", "b", initiated=3.0))
    page = await store.list_uploads(BUCKET, prefix="a/", key_marker="b", upload_id_marker="2")
    assert page.uploads == [] and not page.is_truncated
    page = await store.list_uploads(BUCKET, prefix="b", key_marker="b", upload_id_marker="2")
    assert [u.upload_id for u in page.uploads] == ["3"]


# -------------------------------------------------------- accounts, keys, settings


@aio
async def test_accounts_are_unique_by_id_and_name(store: MetadataStore) -> None:
    with pytest.raises(errors.InvalidArgument):
        await store.create_account(Account("c" * 64, "owner", "Dup", "d@example.com", 0.0))
    with pytest.raises(errors.InvalidArgument):
        await store.create_account(Account(OWNER, "new", "Dup", "d@example.com", 0.0))
    by_name = await store.get_account_by_name("other")
    assert by_name is not None and by_name.canonical_id == OTHER
    assert await store.get_account(OWNER) == await store.get_account_by_name("owner")
    assert [a.name for a in await store.list_accounts()] == ["other", "owner"]


@aio
async def test_access_keys_belong_to_accounts(store: MetadataStore) -> None:
    key = AccessKey("AKIAEXAMPLE", "secret", OTHER, 1.0)
    await store.create_key(key)
    with pytest.raises(errors.InvalidArgument):
        await store.create_key(key)
    assert await store.get_key("AKIAEXAMPLE") == key
    assert await store.list_keys(OTHER) == [key]
    assert await store.list_keys(OWNER) == []
    assert await store.delete_key("AKIAEXAMPLE")
    assert not await store.delete_key("AKIAEXAMPLE")
    assert await store.get_key("AKIAEXAMPLE") is None


@aio
async def test_an_account_with_buckets_cannot_be_deleted(store: MetadataStore) -> None:
    await store.create_key(AccessKey("AKOWNER", "s", OWNER, 1.0))
    with pytest.raises(errors.InvalidRequest):
        await store.delete_account(OWNER)
    await store.delete_bucket(BUCKET)
    await store.delete_account(OWNER)
    assert await store.get_account(OWNER) is None
    assert await store.get_key("AKOWNER") is None


@aio
async def test_settings_round_trip_and_overwrite(store: MetadataStore) -> None:
    assert await store.get_setting("root") is None
    await store.set_setting("root", "one")
    await store.set_setting("root", "two")
    assert await store.get_setting("root") == "two"


# ------------------------------------------------------------------- versioning
#
# The versioning rules of AWS S3, pinned for every store. A bucket that never had
# versioning keeps one `null` version per key; Enabled makes every put and every delete
# without a version id a new version; Suspended writes the `null` version and keeps the
# others. `objects` (what GET and ListObjects see) is always the current version only.


async def enable(store: MetadataStore, bucket: str = BUCKET) -> None:
    await store.set_bucket_versioning(bucket, "Enabled")


async def suspend(store: MetadataStore, bucket: str = BUCKET) -> None:
    await store.set_bucket_versioning(bucket, "Suspended")


async def history(store: MetadataStore, key: str | None = None) -> list[VersionEntry]:
    """Every version and marker in the bucket (of ``key`` only, if given), one page."""
    page = await store.list_object_versions(BUCKET, max_keys=100000)
    assert not page.is_truncated
    return [e for e in page.entries if key is None or e.key == key]


def vids(entries: list[VersionEntry]) -> list[str]:
    return [e.version_id for e in entries]


def rich(key: str, blob_id: str, **changes: Any) -> ObjectRecord:
    """A record with every attribute set, so a round trip that drops one shows."""
    return dataclasses.replace(
        ObjectRecord(bucket=BUCKET, key=key, blob_id=blob_id, size=11, etag="c" * 32,
                     last_modified=time.time(), content_type="text/plain",
                     headers={"cache-control": "no-cache"}, metadata={"m": "v"},
                     tags={"t": "1"}, acl='{"public":1}', sse="sse-c-params",
                     checksums={"CRC32": "AAAAAA==", "type": "FULL_OBJECT"},
                     storage_class="STANDARD_IA"),
        **changes)


def as_version(record: ObjectRecord, version_id: str) -> ObjectRecord:
    return dataclasses.replace(record, version_id=version_id)


@aio
async def test_a_bucket_that_never_had_versioning_keeps_one_null_version_and_no_markers(
        store: MetadataStore) -> None:
    bucket = await store.get_bucket(BUCKET)
    assert bucket is not None and bucket.versioning == ""
    assert await store.put_object(obj("k", blob(1))) == NULL_VERSION
    assert await store.put_object(obj("k", blob(2))) == NULL_VERSION
    assert await store.pending_blob_deletions() == [blob(1)]  # replaced, not kept
    [entry] = await history(store)
    assert (entry.key, entry.version_id, entry.is_latest, entry.delete_marker) == (
        "k", NULL_VERSION, True, False)
    assert entry.noncurrent_since is None
    got = await store.get_version(BUCKET, "k", NULL_VERSION)
    assert got is not None and got.blob_id == blob(2)
    result = await store.delete_object(BUCKET, "k")
    assert (result.version_id, result.delete_marker) == (None, False)
    assert result.removed is not None and result.removed.blob_id == blob(2)
    assert await history(store) == []  # no delete marker
    assert await store.get_version(BUCKET, "k", None) is None
    assert await store.bucket_is_empty(BUCKET)


@aio
async def test_deleting_the_null_version_by_id_in_a_never_versioned_bucket_removes_it(
        store: MetadataStore) -> None:
    await store.put_object(obj("k", blob(1)))
    result = await store.delete_object(BUCKET, "k", NULL_VERSION)
    assert (result.version_id, result.delete_marker) == (NULL_VERSION, False)
    assert result.removed is not None and result.removed.blob_id == blob(1)
    assert await store.get_object(BUCKET, "k") is None
    assert await history(store) == []
    assert await store.pending_blob_deletions() == [blob(1)]


@aio
async def test_an_enabled_bucket_gives_every_put_a_fresh_version_id_that_sorts_by_age(
        store: MetadataStore) -> None:
    await enable(store)
    bucket = await store.get_bucket(BUCKET)
    assert bucket is not None and bucket.versioning == "Enabled"
    made = [await store.put_object(obj("k", blob(n))) for n in range(1, 21)]
    assert len(set(made)) == len(made)
    for version_id in made:
        assert len(version_id) == 32 and version_id == version_id.lower()
        assert is_version_id(version_id) and version_id != NULL_VERSION
        int(version_id, 16)
    assert made == sorted(made)  # older ids sort first
    assert vids(await history(store)) == made[::-1]  # the listing: newest first


@aio
async def test_an_enabled_bucket_keeps_the_replaced_object_as_a_noncurrent_version(
        store: MetadataStore) -> None:
    await enable(store)
    first = rich("k", blob(1))
    v1 = await store.put_object(first)
    second = obj("k", blob(2), size=7)
    before = time.time()
    v2 = await store.put_object(second)
    current = await store.get_object(BUCKET, "k")
    assert current == as_version(second, v2)
    # Every attribute of the old version survives its move, and it keeps its blob.
    assert await store.get_version(BUCKET, "k", v1) == as_version(first, v1)
    assert await store.get_version(BUCKET, "k", v2) == as_version(second, v2)
    assert await store.get_version(BUCKET, "k", None) == as_version(second, v2)
    assert await store.pending_blob_deletions() == []
    assert await store.referenced_blobs([blob(1), blob(2)]) == {blob(1), blob(2)}
    latest, old = await history(store)
    assert (latest.version_id, latest.is_latest, latest.noncurrent_since) == (v2, True, None)
    assert (old.version_id, old.is_latest, old.delete_marker) == (v1, False, False)
    assert old.noncurrent_since is not None and before <= old.noncurrent_since <= time.time()
    assert (old.size, old.etag, old.storage_class, old.checksum_algorithm,
            old.checksum_type, old.last_modified) == (
        11, "c" * 32, "STANDARD_IA", "CRC32", "FULL_OBJECT", first.last_modified)
    listed = await store.list_objects(BUCKET)
    assert listed.entries == [ListEntry.of(as_version(second, v2))]


@aio
async def test_a_version_of_one_key_is_not_found_under_another(store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("a", blob(1)))
    await store.put_object(obj("a", blob(2)))
    assert await store.get_version(BUCKET, "b", v1) is None
    assert await store.get_version(BUCKET, "a", "0" * 32) is None
    assert await store.get_version(BUCKET, "a", NULL_VERSION) is None


@aio
async def test_a_delete_without_a_version_id_puts_a_delete_marker_on_top(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    result = await store.delete_object(BUCKET, "k")
    marker = result.version_id
    assert marker is not None and is_version_id(marker) and marker > v1
    assert (result.delete_marker, result.removed) == (True, None)
    assert await store.get_object(BUCKET, "k") is None
    latest = await store.get_version(BUCKET, "k", None)
    assert latest is not None and latest.delete_marker and latest.version_id == marker
    named = await store.get_version(BUCKET, "k", marker)
    assert named is not None and named.delete_marker
    kept = await store.get_version(BUCKET, "k", v1)
    assert kept is not None and kept.blob_id == blob(1) and not kept.delete_marker
    entries = await history(store)
    assert [(e.version_id, e.is_latest, e.delete_marker) for e in entries] == [
        (marker, True, True), (v1, False, False)]
    assert entries[0].noncurrent_since is None and entries[1].noncurrent_since is not None
    assert (await store.list_objects(BUCKET)).entries == []
    assert await store.pending_blob_deletions() == []
    # Another delete stacks another marker, as S3 does; a put ends the latest one.
    again = (await store.delete_object(BUCKET, "k")).version_id
    assert again is not None and again > marker
    v2 = await store.put_object(obj("k", blob(2)))
    entries = await history(store)
    assert [(e.version_id, e.is_latest, e.delete_marker) for e in entries] == [
        (v2, True, False), (again, False, True), (marker, False, True), (v1, False, False)]
    assert all(e.noncurrent_since is not None for e in entries[1:])


@aio
async def test_a_delete_in_an_enabled_bucket_makes_a_marker_even_for_a_missing_key(
        store: MetadataStore) -> None:
    await enable(store)
    result = await store.delete_object(BUCKET, "never")
    assert result.delete_marker and result.version_id is not None and result.removed is None
    assert [(e.key, e.is_latest, e.delete_marker) for e in await history(store)] == [
        ("never", True, True)]


@aio
async def test_deleting_a_noncurrent_version_by_id_removes_it_for_good_and_queues_its_blob(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    v2 = await store.put_object(obj("k", blob(2)))
    v3 = await store.put_object(obj("k", blob(3)))
    result = await store.delete_object(BUCKET, "k", v2)
    assert (result.version_id, result.delete_marker) == (v2, False)
    assert result.removed is not None and result.removed.blob_id == blob(2)
    assert await store.get_version(BUCKET, "k", v2) is None
    assert await store.pending_blob_deletions() == [blob(2)]
    current = await store.get_object(BUCKET, "k")
    assert current is not None and current.version_id == v3
    assert vids(await history(store)) == [v3, v1]


@aio
async def test_deleting_the_current_version_makes_the_newest_noncurrent_one_current_again(
        store: MetadataStore) -> None:
    await enable(store)
    first = rich("k", blob(1))
    v1 = await store.put_object(first)
    v2 = await store.put_object(obj("k", blob(2)))
    result = await store.delete_object(BUCKET, "k", v2)
    assert (result.version_id, result.delete_marker) == (v2, False)
    assert result.removed is not None and result.removed.blob_id == blob(2)
    assert await store.get_object(BUCKET, "k") == as_version(first, v1)
    assert await store.pending_blob_deletions() == [blob(2)]
    [entry] = await history(store)
    assert (entry.version_id, entry.is_latest, entry.noncurrent_since) == (v1, True, None)
    assert (await store.list_objects(BUCKET)).entries == [ListEntry.of(as_version(first, v1))]
    # And the promoted version is an ordinary current one: a new put archives it again.
    v3 = await store.put_object(obj("k", blob(3)))
    assert vids(await history(store)) == [v3, v1]
    assert await store.pending_blob_deletions() == [blob(2)]


@aio
async def test_deleting_the_current_version_under_a_delete_marker_leaves_the_key_hidden(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    marker = (await store.delete_object(BUCKET, "k")).version_id
    v2 = await store.put_object(obj("k", blob(2)))
    await store.delete_object(BUCKET, "k", v2)
    assert await store.get_object(BUCKET, "k") is None
    latest = await store.get_version(BUCKET, "k", None)
    assert latest is not None and latest.delete_marker and latest.version_id == marker
    entries = await history(store)
    assert [(e.version_id, e.is_latest, e.delete_marker) for e in entries] == [
        (marker, True, True), (v1, False, False)]
    assert entries[0].noncurrent_since is None
    assert (await store.list_objects(BUCKET)).entries == []


@aio
async def test_deleting_the_latest_delete_marker_brings_the_previous_version_back(
        store: MetadataStore) -> None:
    await enable(store)
    first = rich("k", blob(1))
    v1 = await store.put_object(first)
    marker = (await store.delete_object(BUCKET, "k")).version_id
    assert marker is not None
    result = await store.delete_object(BUCKET, "k", marker)
    assert (result.version_id, result.delete_marker, result.removed) == (marker, True, None)
    assert await store.get_object(BUCKET, "k") == as_version(first, v1)
    assert await store.get_version(BUCKET, "k", marker) is None
    assert [(e.version_id, e.is_latest) for e in await history(store)] == [(v1, True)]
    assert await store.pending_blob_deletions() == []


@aio
async def test_deleting_the_latest_marker_over_an_older_marker_leaves_that_one_latest(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    older = (await store.delete_object(BUCKET, "k")).version_id
    newer = (await store.delete_object(BUCKET, "k")).version_id
    assert newer is not None
    await store.delete_object(BUCKET, "k", newer)
    assert await store.get_object(BUCKET, "k") is None
    entries = await history(store)
    assert [(e.version_id, e.is_latest, e.delete_marker) for e in entries] == [
        (older, True, True), (v1, False, False)]
    assert entries[0].noncurrent_since is None


@aio
async def test_deleting_a_noncurrent_delete_marker_changes_nothing_else(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    marker = (await store.delete_object(BUCKET, "k")).version_id
    assert marker is not None
    v2 = await store.put_object(obj("k", blob(2)))
    result = await store.delete_object(BUCKET, "k", marker)
    assert (result.version_id, result.delete_marker, result.removed) == (marker, True, None)
    current = await store.get_object(BUCKET, "k")
    assert current is not None and current.version_id == v2
    assert [(e.version_id, e.is_latest) for e in await history(store)] == [
        (v2, True), (v1, False)]


@aio
async def test_deleting_a_nonexistent_version_changes_nothing_and_reports_that_id(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    v2 = await store.put_object(obj("k", blob(2)))
    before = await history(store)
    for missing in ("0" * 32, "f" * 32, NULL_VERSION):
        result = await store.delete_object(BUCKET, "k", missing)
        assert result == DeleteResult(missing, False, None)
        result = await store.delete_object(BUCKET, "no-such-key", missing)
        assert result == DeleteResult(missing, False, None)
    # Another key's version id is not this key's.
    assert await store.delete_object(BUCKET, "other", v1) == DeleteResult(v1, False, None)
    assert await history(store) == before
    assert vids(before) == [v2, v1]
    assert await store.pending_blob_deletions() == []
    with pytest.raises(errors.NoSuchBucket):
        await store.delete_object("nope", "k", v1)


@aio
async def test_delete_objects_deletes_versions_and_makes_markers_with_aligned_results(
        store: MetadataStore) -> None:
    await enable(store)
    a1 = await store.put_object(obj("a", blob(1)))
    a2 = await store.put_object(obj("a", blob(2)))
    b1 = await store.put_object(obj("b", blob(3)))
    results = await store.delete_objects(
        BUCKET, [("a", a1), ("b", None), ("c", "0" * 32), ("a", a2)])
    assert [(r.version_id, r.delete_marker) for r in results[:1] + results[2:]] == [
        (a1, False), ("0" * 32, False), (a2, False)]
    assert results[1].delete_marker and results[1].version_id not in (None, b1)
    assert [r.removed.blob_id if r.removed else None for r in results] == [
        blob(1), None, None, blob(2)]
    assert [(e.key, e.version_id, e.delete_marker) for e in await history(store)] == [
        ("b", results[1].version_id, True), ("b", b1, False)]
    assert sorted(await store.pending_blob_deletions()) == [blob(1), blob(2)]


# --- Suspended


@aio
async def test_a_suspended_bucket_writes_the_null_version_and_keeps_the_others(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    await suspend(store)
    bucket = await store.get_bucket(BUCKET)
    assert bucket is not None and bucket.versioning == "Suspended"
    assert await store.put_object(obj("k", blob(2))) == NULL_VERSION
    assert await store.pending_blob_deletions() == []  # v1 moved aside, not replaced
    assert await store.put_object(obj("k", blob(3))) == NULL_VERSION
    assert await store.pending_blob_deletions() == [blob(2)]  # the old null version went
    current = await store.get_object(BUCKET, "k")
    assert current is not None and (current.version_id, current.blob_id) == (
        NULL_VERSION, blob(3))
    kept = await store.get_version(BUCKET, "k", v1)
    assert kept is not None and kept.blob_id == blob(1)
    assert [(e.version_id, e.is_latest) for e in await history(store)] == [
        (NULL_VERSION, True), (v1, False)]


@aio
async def test_a_suspended_put_replaces_a_noncurrent_null_version(store: MetadataStore) -> None:
    await store.put_object(obj("k", blob(1)))  # the null version, from before versioning
    await enable(store)
    v2 = await store.put_object(obj("k", blob(2)))
    assert vids(await history(store)) == [v2, NULL_VERSION]
    old_null = await store.get_version(BUCKET, "k", NULL_VERSION)
    assert old_null is not None and old_null.blob_id == blob(1)
    await suspend(store)
    assert await store.put_object(obj("k", blob(3))) == NULL_VERSION
    assert await store.pending_blob_deletions() == [blob(1)]
    entries = await history(store)
    assert [(e.version_id, e.is_latest) for e in entries] == [(NULL_VERSION, True), (v2, False)]
    new_null = await store.get_version(BUCKET, "k", NULL_VERSION)
    assert new_null is not None and new_null.blob_id == blob(3)


@aio
async def test_a_suspended_delete_replaces_the_current_null_version_with_a_null_marker(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    await suspend(store)
    await store.put_object(obj("k", blob(2)))
    result = await store.delete_object(BUCKET, "k")
    assert (result.version_id, result.delete_marker) == (NULL_VERSION, True)
    assert result.removed is not None and result.removed.blob_id == blob(2)
    assert await store.pending_blob_deletions() == [blob(2)]
    assert await store.get_object(BUCKET, "k") is None
    marker = await store.get_version(BUCKET, "k", None)
    assert marker is not None and marker.delete_marker and marker.version_id == NULL_VERSION
    assert [(e.version_id, e.is_latest, e.delete_marker) for e in await history(store)] == [
        (NULL_VERSION, True, True), (v1, False, False)]
    # A second suspended delete replaces the null marker with a new one, not a second one.
    await store.delete_object(BUCKET, "k")
    assert [(e.version_id, e.delete_marker) for e in await history(store)] == [
        (NULL_VERSION, True), (v1, False)]
    # A suspended put replaces the null marker too.
    await store.put_object(obj("k", blob(3)))
    assert [(e.version_id, e.is_latest, e.delete_marker) for e in await history(store)] == [
        (NULL_VERSION, True, False), (v1, False, False)]


@aio
async def test_a_suspended_delete_keeps_a_current_non_null_version_and_drops_the_old_null(
        store: MetadataStore) -> None:
    await store.put_object(obj("k", blob(1)))  # null
    await enable(store)
    v2 = await store.put_object(obj("k", blob(2)))
    await suspend(store)
    result = await store.delete_object(BUCKET, "k")
    assert (result.version_id, result.delete_marker, result.removed) == (
        NULL_VERSION, True, None)
    assert await store.pending_blob_deletions() == [blob(1)]  # the noncurrent null version
    kept = await store.get_version(BUCKET, "k", v2)
    assert kept is not None and kept.blob_id == blob(2)
    assert [(e.version_id, e.is_latest, e.delete_marker) for e in await history(store)] == [
        (NULL_VERSION, True, True), (v2, False, False)]


@aio
async def test_reenabling_after_suspension_archives_the_null_version(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    await suspend(store)
    await store.put_object(obj("k", blob(2)))
    await enable(store)
    v3 = await store.put_object(obj("k", blob(3)))
    assert vids(await history(store)) == [v3, NULL_VERSION, v1]
    assert await store.pending_blob_deletions() == []
    null = await store.get_version(BUCKET, "k", NULL_VERSION)
    assert null is not None and null.blob_id == blob(2)


# --- inline and multipart versions


def multipart(key: str, *blob_ids: str) -> ObjectRecord:
    parts = tuple(PartRef(n, b, 5, f"{n:032x}", {"CRC32": "AA=="})
                  for n, b in enumerate(blob_ids, start=1))
    return ObjectRecord(bucket=BUCKET, key=key, blob_id="", size=5 * len(parts),
                        etag="f" * 32 + f"-{len(parts)}", last_modified=time.time(), parts=parts)


@aio
async def test_inline_and_multipart_versions_keep_their_bytes_and_parts_while_noncurrent(
        store: MetadataStore) -> None:
    await enable(store)
    tiny = dataclasses.replace(obj("k", size=5), inline=b"hello")
    big = multipart("k", blob(1), blob(2))
    v1 = await store.put_object(tiny)
    v2 = await store.put_object(big)
    v3 = await store.put_object(obj("k", blob(3)))
    assert await store.get_version(BUCKET, "k", v1) == as_version(tiny, v1)
    assert await store.get_version(BUCKET, "k", v2) == as_version(big, v2)
    assert await store.referenced_blobs([blob(1), blob(2), blob(3)]) == {
        blob(1), blob(2), blob(3)}
    assert await store.pending_blob_deletions() == []
    # Deleting the current version brings each back intact, in turn.
    await store.delete_object(BUCKET, "k", v3)
    assert await store.get_object(BUCKET, "k") == as_version(big, v2)
    await store.delete_object(BUCKET, "k", v2)
    assert await store.get_object(BUCKET, "k") == as_version(tiny, v1)
    assert sorted(await store.pending_blob_deletions()) == [blob(1), blob(2), blob(3)]
    assert await store.referenced_blobs([blob(1), blob(2), blob(3)]) == set()
    # And a promoted inline object moves aside intact once more.
    v4 = await store.put_object(obj("k", blob(4)))
    assert await store.get_version(BUCKET, "k", v1) == as_version(tiny, v1)
    assert vids(await history(store)) == [v4, v1]


@aio
async def test_a_multipart_version_comes_back_from_behind_a_delete_marker_intact(
        store: MetadataStore) -> None:
    await enable(store)
    big = multipart("k", blob(1), blob(2), blob(3))
    v1 = await store.put_object(big)
    marker = (await store.delete_object(BUCKET, "k")).version_id
    assert marker is not None
    assert await store.referenced_blobs([blob(1), blob(2), blob(3)]) == {
        blob(1), blob(2), blob(3)}
    await store.delete_object(BUCKET, "k", marker)
    assert await store.get_object(BUCKET, "k") == as_version(big, v1)
    # Its parts are current again: replacing it in a suspended bucket archives them, a
    # delete of that version frees every one.
    await suspend(store)
    await store.put_object(obj("k", blob(4)))
    await store.delete_object(BUCKET, "k", v1)
    assert sorted(await store.pending_blob_deletions()) == [blob(1), blob(2), blob(3)]


@aio
async def test_completing_an_upload_in_an_enabled_bucket_makes_a_new_version(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("big", blob(9)))
    await store.create_upload(upload("u1"))
    for n in (1, 2):
        await store.put_part(part("u1", n, blob(n)))
    record = manifest_record("big", blob(1), blob(2))
    v2 = await store.complete_upload("u1", record)
    assert is_version_id(v2) and v2 > v1
    assert await store.get_object(BUCKET, "big") == as_version(record, v2)
    old = await store.get_version(BUCKET, "big", v1)
    assert old is not None and old.blob_id == blob(9)
    assert await store.pending_blob_deletions() == []


@aio
async def test_conditional_puts_see_a_delete_marker_as_no_object(store: MetadataStore) -> None:
    await enable(store)
    await store.put_object(obj("k", blob(1), etag="1" * 32))
    await store.delete_object(BUCKET, "k")
    with pytest.raises(errors.NoSuchKey):
        await store.put_object(obj("k", blob(2)), if_match="1" * 32)
    v2 = await store.put_object(obj("k", blob(3)), if_none_match=True)
    with pytest.raises(errors.PreconditionFailed):
        await store.put_object(obj("k", blob(4)), if_none_match=True)
    current = await store.get_object(BUCKET, "k")
    assert current is not None and current.version_id == v2


# --- ListObjectVersions


@aio
async def test_version_listing_orders_keys_by_bytes_then_versions_newest_first(
        store: MetadataStore) -> None:
    await enable(store)
    made: dict[str, list[str]] = {}
    keys = ["b", "a", "é", "😀", "\uffff", "a/b", "A"]
    for round_ in range(3):
        for key in keys:
            if round_ == 1 and key in ("a", "😀"):
                made[key].append(str((await store.delete_object(BUCKET, key)).version_id))
            else:
                made.setdefault(key, []).append(await store.put_object(obj(key)))
    entries = await history(store)
    expected = [(k, v) for k in sorted(keys, key=lambda k: k.encode()) for v in made[k][::-1]]
    assert [(e.key, e.version_id) for e in entries] == expected
    for key in keys:
        mine = [e for e in entries if e.key == key]
        assert [e.is_latest for e in mine] == [True] + [False] * (len(mine) - 1)
    assert [e.delete_marker for e in entries if e.key == "a"] == [False, True, False]
    listed = await store.list_objects(BUCKET)
    assert [(e.key, e.version_id) for e in listed.entries] == [
        (k, made[k][-1]) for k in sorted(keys, key=lambda k: k.encode())]


@aio
async def test_version_listing_honours_the_prefix_and_rolls_up_common_prefixes(
        store: MetadataStore) -> None:
    await enable(store)
    for key in ["a/b/c", "a/b/d", "a/c", "a/", "a/d/e", "b/x", "a/c"]:
        await store.put_object(obj(key))
    await store.delete_object(BUCKET, "a/d/e")
    page = await store.list_object_versions(BUCKET, prefix="a/", delimiter="/")
    assert [(e.key, e.is_latest) for e in page.entries] == [
        ("a/", True), ("a/c", True), ("a/c", False)]
    assert page.common_prefixes == ["a/b/", "a/d/"]
    assert not page.is_truncated and page.next_key_marker is None
    page = await store.list_object_versions(BUCKET, prefix="a/d")
    assert [(e.key, e.delete_marker) for e in page.entries] == [("a/d/e", True),
                                                                ("a/d/e", False)]
    page = await store.list_object_versions(BUCKET, delimiter="/")
    assert (page.entries, page.common_prefixes) == ([], ["a/", "b/"])


@aio
async def test_a_delimited_version_listing_walks_past_common_prefixes(
        store: MetadataStore) -> None:
    await enable(store)
    plain = ["dir050", "dir070.txt", "top"]  # walks stop at these, then go on
    await put_all(store, [f"dir{p:03d}/v{i}" for p in range(100) for i in range(5)] + plain)
    # Every fifth prefix holds nothing but keys whose latest version is a delete marker:
    # those keys have no current row, only versions.
    await asyncio.gather(*(store.delete_object(BUCKET, f"dir{p:03d}/v{i}")
                           for p in range(0, 100, 5) for i in range(5)))
    queries_before = counter(store, "list_queries")
    page = await store.list_object_versions(BUCKET, delimiter="/", max_keys=1000)
    assert page.common_prefixes == [f"dir{p:03d}/" for p in range(100)]
    assert [e.key for e in page.entries] == plain
    assert not page.is_truncated
    if queries_before is not None:  # a round-trip store: runs of prefixes come in walks
        queries = (counter(store, "list_queries") or 0) - queries_before
        assert queries <= 8, f"{queries} queries for 100 common prefixes"
    page = await store.list_object_versions(BUCKET, delimiter="/", max_keys=60)
    assert page.common_prefixes == [f"dir{p:03d}/" for p in range(59)]
    assert [e.key for e in page.entries] == ["dir050"]
    assert page.is_truncated and page.next_key_marker == "dir058/"


@aio
async def test_version_listing_with_only_a_key_marker_starts_after_that_key(
        store: MetadataStore) -> None:
    await enable(store)
    for key in ["a", "b", "b", "c"]:
        await store.put_object(obj(key))
    page = await store.list_object_versions(BUCKET, key_marker="b")
    assert [e.key for e in page.entries] == ["c"]
    page = await store.list_object_versions(BUCKET, key_marker="a", max_keys=1)
    assert [e.key for e in page.entries] == ["b"]
    assert page.is_truncated and page.next_key_marker == "b"
    assert page.next_version_id_marker == page.entries[0].version_id


@aio
async def test_version_listing_pages_resume_exactly_where_the_last_page_ended(
        store: MetadataStore) -> None:
    await enable(store)
    rng = random.Random(7)
    keys = ["a", "a/1", "a/2", "a/x/1", "b", "b/1", "c", "é", "é/1", "z/z/z"]
    for _ in range(40):
        key = rng.choice(keys)
        if rng.random() < 0.25:
            await store.delete_object(BUCKET, key)
        else:
            await store.put_object(obj(key))
    for prefix, delimiter in [("", ""), ("", "/"), ("a", ""), ("a/", "/"), ("é", "/"),
                              ("zz", "")]:
        whole = await store.list_object_versions(BUCKET, prefix, delimiter, max_keys=1000)
        assert not whole.is_truncated
        assert all(e.key.startswith(prefix) for e in whole.entries)
        for max_keys in (1, 2, 3):
            entries: list[VersionEntry] = []
            prefixes: list[str] = []
            key_marker, version_marker = "", ""
            for _ in range(200):
                page = await store.list_object_versions(
                    BUCKET, prefix, delimiter, key_marker, version_marker, max_keys)
                assert len(page.entries) + len(page.common_prefixes) <= max_keys
                entries += page.entries
                prefixes += page.common_prefixes
                if not page.is_truncated:
                    assert page.next_key_marker is None
                    break
                assert page.next_key_marker is not None
                key_marker = page.next_key_marker
                version_marker = page.next_version_id_marker or ""
            else:
                pytest.fail("the listing never ended")
            label = (prefix, delimiter, max_keys)
            assert entries == whole.entries, label
            assert prefixes == whole.common_prefixes, label


@aio
async def test_version_listing_max_keys_zero_and_a_missing_bucket(store: MetadataStore) -> None:
    await enable(store)
    await store.put_object(obj("k"))
    page = await store.list_object_versions(BUCKET, max_keys=0)
    assert (page.entries, page.common_prefixes, page.is_truncated) == ([], [], False)
    with pytest.raises(errors.NoSuchBucket):
        await store.list_object_versions("nope")


# --- emptiness and blob references


@aio
async def test_a_bucket_holding_only_noncurrent_versions_or_markers_is_not_empty(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    marker = (await store.delete_object(BUCKET, "k")).version_id
    assert marker is not None
    assert (await store.list_objects(BUCKET)).entries == []
    assert not await store.bucket_is_empty(BUCKET)
    with pytest.raises(errors.BucketNotEmpty):
        await store.delete_bucket(BUCKET)
    await store.delete_object(BUCKET, "k", v1)
    assert not await store.bucket_is_empty(BUCKET)  # the marker alone still counts
    with pytest.raises(errors.BucketNotEmpty):
        await store.delete_bucket(BUCKET)
    await store.delete_object(BUCKET, "k", marker)
    assert await store.bucket_is_empty(BUCKET)
    await store.delete_bucket(BUCKET)
    assert await store.get_bucket(BUCKET) is None


@aio
async def test_blobs_of_noncurrent_versions_and_their_parts_stay_referenced(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(multipart("k", blob(1), blob(2)))
    v2 = await store.put_object(obj("k", blob(3)))
    await store.delete_object(BUCKET, "k")  # both now noncurrent, under a marker
    ids = [blob(n) for n in range(1, 5)]
    assert await store.referenced_blobs(ids) == {blob(1), blob(2), blob(3)}
    assert await store.pending_blob_deletions() == []
    await store.delete_object(BUCKET, "k", v1)
    assert await store.referenced_blobs(ids) == {blob(3)}
    await store.delete_object(BUCKET, "k", v2)
    assert await store.referenced_blobs(ids) == set()
    assert sorted(await store.pending_blob_deletions()) == [blob(1), blob(2), blob(3)]


# --- lifecycle guards


@aio
async def test_an_older_than_delete_acts_only_on_a_current_object_modified_before_it(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(dataclasses.replace(obj("k", blob(1)), last_modified=100.0))
    assert await store.delete_object(BUCKET, "k", older_than=100.0) == DeleteResult(
        None, False, None)
    assert vids(await history(store)) == [v1]
    result = await store.delete_object(BUCKET, "k", older_than=100.5)
    assert result.delete_marker and result.version_id is not None
    # The key is already hidden: nothing current is older than anything, no second marker.
    assert await store.delete_object(BUCKET, "k", older_than=time.time() + 60) == DeleteResult(
        None, False, None)
    assert vids(await history(store)) == [result.version_id, v1]
    # In a bucket that never had versioning the object goes outright.
    await store.create_bucket(Bucket("plain", OWNER, "nyc3", time.time()), 100)
    await store.put_object(dataclasses.replace(obj("k", blob(2), bucket="plain"),
                                               last_modified=100.0))
    assert (await store.delete_object("plain", "k", older_than=50.0)).removed is None
    removed = (await store.delete_object("plain", "k", older_than=150.0)).removed
    assert removed is not None and removed.blob_id == blob(2)


@aio
async def test_an_older_than_delete_of_a_version_needs_it_noncurrent_since_before_then(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    await store.put_object(obj("k", blob(2)))
    since = (await history(store))[1].noncurrent_since
    assert since is not None
    assert await store.delete_object(BUCKET, "k", v1, older_than=since) == DeleteResult(
        v1, False, None)
    assert await store.get_version(BUCKET, "k", v1) is not None
    assert await store.pending_blob_deletions() == []
    result = await store.delete_object(BUCKET, "k", v1, older_than=since + 0.001)
    assert result.removed is not None and result.removed.blob_id == blob(1)
    assert await store.get_version(BUCKET, "k", v1) is None
    assert await store.pending_blob_deletions() == [blob(1)]


@aio
async def test_an_older_than_delete_never_removes_the_latest_version_by_id(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(dataclasses.replace(obj("k", blob(1)), last_modified=1.0))
    later = time.time() + 3600
    assert await store.delete_object(BUCKET, "k", v1, older_than=later) == DeleteResult(
        v1, False, None)
    current = await store.get_object(BUCKET, "k")
    assert current is not None and current.version_id == v1
    marker = (await store.delete_object(BUCKET, "k")).version_id
    assert marker is not None
    result = await store.delete_object(BUCKET, "k", marker, older_than=later)
    assert result.removed is None
    assert vids(await history(store)) == [marker, v1]  # the latest marker stays
    assert await store.pending_blob_deletions() == []


@aio
async def test_an_expired_delete_marker_is_removed_only_when_it_is_the_only_version_left(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    marker = (await store.delete_object(BUCKET, "k")).version_id
    assert await store.remove_expired_delete_marker(BUCKET, "k") is None  # v1 remains
    await store.delete_object(BUCKET, "k", v1)
    assert await store.remove_expired_delete_marker(BUCKET, "k") == marker
    assert await history(store) == []
    assert await store.bucket_is_empty(BUCKET)
    # A current object is no delete marker; nor is a key with nothing at all.
    await store.put_object(obj("j", blob(2)))
    assert await store.remove_expired_delete_marker(BUCKET, "j") is None
    assert await store.remove_expired_delete_marker(BUCKET, "nothing") is None
    # A marker that is not the latest is not expired either.
    await store.delete_object(BUCKET, "j")
    v3 = await store.put_object(obj("j", blob(3)))
    assert await store.remove_expired_delete_marker(BUCKET, "j") is None
    assert len(await history(store, "j")) == 3 and (await history(store, "j"))[0].version_id == v3
    with pytest.raises(errors.NoSuchBucket):
        await store.remove_expired_delete_marker("nope", "k")


# --- tags and ACLs of versions


@aio
async def test_tags_and_acl_of_a_noncurrent_version_change_only_that_version(
        store: MetadataStore) -> None:
    await enable(store)
    first = rich("k", blob(1))
    v1 = await store.put_object(first)
    second = rich("k", blob(2), tags={"current": "yes"})
    v2 = await store.put_object(second)
    listed = await history(store)
    returned = await store.set_object_tags(BUCKET, "k", {"old": "tagged"}, version_id=v1)
    assert returned == as_version(dataclasses.replace(first, tags={"old": "tagged"}), v1)
    await store.set_object_acl(BUCKET, "k", '{"v1":1}', version_id=v1)
    assert await store.get_version(BUCKET, "k", v1) == as_version(
        dataclasses.replace(first, tags={"old": "tagged"}, acl='{"v1":1}'), v1)
    assert await store.get_object(BUCKET, "k") == as_version(second, v2)
    # Naming the current version's id changes the current object.
    await store.set_object_tags(BUCKET, "k", {"by": "id"}, version_id=v2)
    await store.set_object_acl(BUCKET, "k", "", version_id=v2)
    assert await store.get_object(BUCKET, "k") == as_version(
        dataclasses.replace(second, tags={"by": "id"}, acl=""), v2)
    assert await history(store) == listed  # no new version, same order and dates
    assert await store.pending_blob_deletions() == []
    # And the tags travel with the version when it becomes current again.
    await store.delete_object(BUCKET, "k", v2)
    current = await store.get_object(BUCKET, "k")
    assert current is not None and (current.tags, current.acl) == ({"old": "tagged"}, '{"v1":1}')


@aio
async def test_tagging_a_delete_marker_is_not_allowed_and_an_unknown_version_is_no_such_version(
        store: MetadataStore) -> None:
    await enable(store)
    v1 = await store.put_object(obj("k", blob(1)))
    marker = (await store.delete_object(BUCKET, "k")).version_id
    assert marker is not None
    with pytest.raises(errors.MethodNotAllowed):
        await store.set_object_tags(BUCKET, "k", {"a": "1"}, version_id=marker)
    with pytest.raises(errors.MethodNotAllowed):
        await store.set_object_acl(BUCKET, "k", "", version_id=marker)
    for unknown in ("0" * 32, NULL_VERSION):
        with pytest.raises(errors.NoSuchVersion):
            await store.set_object_tags(BUCKET, "k", {"a": "1"}, version_id=unknown)
        with pytest.raises(errors.NoSuchVersion):
            await store.set_object_acl(BUCKET, "k", "", version_id=unknown)
    with pytest.raises(errors.NoSuchVersion):
        await store.set_object_tags(BUCKET, "other", {"a": "1"}, version_id=v1)
    with pytest.raises(errors.NoSuchKey):  # no version named: the key has no current object
        await store.set_object_tags(BUCKET, "k", {"a": "1"})
    with pytest.raises(errors.NoSuchBucket):
        await store.set_object_tags("nope", "k", {"a": "1"}, version_id=v1)
    kept = await store.get_version(BUCKET, "k", v1)
    assert kept is not None and kept.tags == {}


# --- concurrency


def assert_one_ordered_history(entries: list[VersionEntry], current: ObjectRecord | None,
                               latest: ObjectRecord | None) -> None:
    """A key's history as a listing shows it: unique ids, strictly newest first, exactly
    one latest (the first), which is what a plain read finds."""
    ids = vids(entries)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids, reverse=True) and all(is_version_id(i) for i in ids)
    assert [e.is_latest for e in entries] == [True] + [False] * (len(entries) - 1)
    assert [e.noncurrent_since is None for e in entries] == [e.is_latest for e in entries]
    top = entries[0]
    assert latest is not None and latest.version_id == top.version_id
    assert latest.delete_marker == top.delete_marker
    if top.delete_marker:
        assert current is None
    else:
        assert current is not None and current.version_id == top.version_id


@aio
async def test_racing_puts_and_deletes_on_one_key_leave_one_totally_ordered_history(
        store: MetadataStore) -> None:
    await enable(store)
    seeded = [await store.put_object(obj("k", blob(n))) for n in range(1, 11)]
    ops: list[Coroutine[Any, Any, Any]] = []
    doomed = list(seeded)
    for n in range(100, 400):
        roll = n % 5
        if roll == 0:
            ops.append(store.delete_object(BUCKET, "k"))
        elif roll == 1 and doomed:
            ops.append(store.delete_object(BUCKET, "k", doomed.pop()))  # current ones too
        else:
            ops.append(store.put_object(obj("k", blob(n))))
    random.Random(3).shuffle(ops)
    results = await asyncio.gather(*ops)
    made = [r for r in results if isinstance(r, str)]
    deletes = [r for r in results if isinstance(r, DeleteResult)]
    markers = [str(r.version_id) for r in deletes if r.delete_marker]
    removed = [str(r.version_id) for r in deletes if r.removed is not None]
    assert sorted(removed) == sorted(seeded) and len(markers) + len(removed) == len(deletes)
    entries = await history(store, "k")
    assert_one_ordered_history(entries, await store.get_object(BUCKET, "k"),
                               await store.get_version(BUCKET, "k", None))
    # Every version made is there, except the ones deleted by id; nothing else is.
    assert sorted(vids(entries)) == sorted(made + markers)
    # Every removed version's blob, and only those, is queued.
    assert sorted(await store.pending_blob_deletions()) == [blob(n) for n in range(1, 11)]


# ------------------------------------------------------------------------- leases


@aio
async def test_a_lease_has_one_holder_who_renews_or_releases_it(store: MetadataStore) -> None:
    assert await store.acquire_lease("background", "one", 30)
    assert not await store.acquire_lease("background", "two", 30)
    assert await store.acquire_lease("background", "one", 30)  # renewal by the holder
    assert await store.acquire_lease("other-work", "two", 30)  # leases are independent
    await store.release_lease("background", "two")  # not the holder: changes nothing
    assert not await store.acquire_lease("background", "two", 30)
    await store.release_lease("background", "one")
    assert await store.acquire_lease("background", "two", 30)
    assert not await store.acquire_lease("background", "one", 30)
    await store.release_lease("nothing-held", "one")  # releasing no lease is harmless


@aio
async def test_a_lease_is_taken_over_only_once_it_has_run_out(store: MetadataStore) -> None:
    assert await store.acquire_lease("background", "one", 0.3)
    assert not await store.acquire_lease("background", "two", 30)
    await asyncio.sleep(0.5)
    assert await store.acquire_lease("background", "two", 0.3)  # one's ran out: taken over
    assert not await store.acquire_lease("background", "one", 30)  # and one cannot renew
    # A renewal extends the lease: renewed before it runs out, it is not lost.
    for _ in range(3):
        await asyncio.sleep(0.15)
        assert await store.acquire_lease("background", "two", 0.3)
    assert not await store.acquire_lease("background", "one", 30)


@aio
async def test_racing_lease_takers_have_one_winner(store: MetadataStore) -> None:
    for name in ("fresh", "expired"):
        if name == "expired":
            assert await store.acquire_lease(name, "old", 0.05)
            await asyncio.sleep(0.2)
        results = await asyncio.gather(
            *(store.acquire_lease(name, f"holder-{i}", 30) for i in range(20)))
        assert sum(results) == 1, name
        winner = f"holder-{results.index(True)}"
        assert await store.acquire_lease(name, winner, 30)
        assert not await store.acquire_lease(name, "old", 30)


# -------------------------------------------------------------- PostgreSQL only
#
# Gateways on several machines share one database: each store below is one gateway (its
# own connection pool, so its own database sessions), all on one database.


@aio
async def test_postgresql_gateways_starting_together_migrate_once(tmp_path: Path) -> None:
    from cargohold.store import postgres

    dsn = fresh_database_dsn()
    gateways = [PostgresStore(dsn, max_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(g.open() for g in gateways))
        latest = postgres.MIGRATIONS[-1][0]
        assert [await g.schema_version() for g in gateways] == [latest] * 4
    finally:
        await asyncio.gather(*(g.close() for g in gateways))


@aio
async def test_postgresql_two_gateways_racing_on_keys_have_one_winner_and_one_history(
        tmp_path: Path) -> None:
    dsn = fresh_database_dsn()
    first, second = PostgresStore(dsn), PostgresStore(dsn)
    await first.open()
    await second.open()
    try:
        await first.create_account(Account(OWNER, "owner", "Owner", "o@example.com", 1.0))
        await second.create_bucket(Bucket(BUCKET, OWNER, "nyc3", 1.0), 100)
        # If-None-Match: * from both gateways at once: one winner per key.
        raced = await asyncio.gather(
            *((first, second)[i % 2].put_object(obj(f"new-{i % 10}", blob(i)),
                                                if_none_match=True) for i in range(60)),
            return_exceptions=True)
        assert sum(isinstance(r, str) for r in raced) == 10
        assert all(isinstance(r, str | errors.PreconditionFailed) for r in raced)
        await first.set_bucket_versioning(BUCKET, "Enabled")
        ops: list[Coroutine[Any, Any, Any]] = []
        for i in range(150):
            s = first if i % 2 else second
            ops.append(s.delete_object(BUCKET, "k") if i % 7 == 0
                       else s.put_object(obj("k", blob(i))))
        results = await asyncio.gather(*ops)
        made = [r if isinstance(r, str) else str(r.version_id) for r in results]
        for s in (first, second):
            page = await s.list_object_versions(BUCKET, prefix="k", max_keys=1000)
            assert sorted(vids(page.entries)) == sorted(made)
            assert_one_ordered_history(page.entries, await s.get_object(BUCKET, "k"),
                                       await s.get_version(BUCKET, "k", None))
        # The losers of the If-None-Match races stored nothing and queued nothing.
        assert await first.pending_blob_deletions() == []
    finally:
        await first.close()
        await second.close()


# ------------------------------------------------------------------ SQLite only


@aio
async def test_sqlite_data_survives_reopening(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "m.db")
    await first.open()
    await first.create_account(Account(OWNER, "owner", "Owner", "o@example.com", 1.0))
    await first.create_bucket(Bucket(BUCKET, OWNER, "nyc3", 1.0), 100)
    await first.put_object(obj("kept", blob(1)))
    await first.close()
    second = SqliteStore(tmp_path / "m.db")
    await second.open()
    try:
        kept = await second.get_object(BUCKET, "kept")
        assert kept is not None and kept.blob_id == blob(1)
        assert await second.schema_version() == MIGRATIONS[-1][0]
    finally:
        await second.close()


@aio
async def test_sqlite_uses_wal_and_full_sync(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    await store.open()
    try:
        conn = store._reader()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        writer = store._write_conn
        assert writer is not None
        # synchronous: 2 = FULL (read on the writer's own connection, where it is set).
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert writer.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        await store.close()


@aio
async def test_sqlite_two_stores_on_one_file_write_concurrently(tmp_path: Path) -> None:
    # Like the server and the admin CLI: two writers, WAL and busy_timeout arbitrate.
    first, second = SqliteStore(tmp_path / "m.db"), SqliteStore(tmp_path / "m.db")
    await first.open()
    await second.open()
    try:
        await first.create_account(Account(OWNER, "owner", "Owner", "o@example.com", 1.0))
        await second.create_bucket(Bucket(BUCKET, OWNER, "nyc3", 1.0), 100)
        await asyncio.gather(
            *(s.put_object(obj(f"{n}-{i:03d}")) for i in range(100)
              for n, s in (("first", first), ("second", second))))
        assert len((await first.list_objects(BUCKET)).entries) == 200
        assert await second.get_object(BUCKET, "first-042") is not None
    finally:
        await first.close()
        await second.close()


@contextlib.asynccontextmanager
async def _sqlite_store_with_bucket(path: Path, **options: Any) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(path, **options)
    await store.open()
    try:
        await store.create_account(Account(OWNER, "owner", "Owner", "o@example.com", 1.0))
        await store.create_bucket(Bucket(BUCKET, OWNER, "nyc3", 1.0), 100)
        yield store
    finally:
        await store.close()


@contextlib.contextmanager
def _writer_lock_held(database: Path) -> Iterator[None]:
    """The workers' writer lock of ``database``, held as another worker would."""
    fd = os.open(database.with_name(database.name + "-writer.lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@aio
async def test_sqlite_writes_queued_while_another_worker_commits_share_one_commit(
        tmp_path: Path) -> None:
    # Workers take turns through a lock file; a writer that waited gathers its batch once
    # it has the lock, so everything queued meanwhile commits together.
    async with _sqlite_store_with_bucket(tmp_path / "m.db") as store:
        with _writer_lock_held(tmp_path / "m.db"):
            before = store.commit_count
            writes = asyncio.gather(*(store.put_object(obj(f"k{i:02d}")) for i in range(50)))
            await asyncio.sleep(0.2)
            assert store.commit_count == before  # waiting for its turn
        await writes
        assert store.commit_count == before + 1
        assert len((await store.list_objects(BUCKET)).entries) == 50


@aio
async def test_sqlite_writes_are_refused_with_slowdown_while_another_worker_holds_the_lock(
        tmp_path: Path) -> None:
    # A stopped worker holding the writer lock must not hang every other worker's writes:
    # after the lock timeout (SQLite's busy timeout, shortened here) they fail with
    # SlowDown, which SDKs retry, and nothing of them is written.
    async with _sqlite_store_with_bucket(tmp_path / "m.db", lock_timeout=0.3) as store:
        with _writer_lock_held(tmp_path / "m.db"):
            started = time.monotonic()
            outcomes = await asyncio.gather(*(store.put_object(obj(f"k{i}")) for i in range(3)),
                                            return_exceptions=True)
            assert time.monotonic() - started >= 0.3
            assert all(isinstance(o, errors.SlowDown) for o in outcomes), outcomes
            assert (await store.list_objects(BUCKET)).entries == []
        await store.put_object(obj("after"))
        assert [e.key for e in (await store.list_objects(BUCKET)).entries] == ["after"]


@aio
async def test_sqlite_writes_to_a_full_database_fail_with_insufficient_storage(
        tmp_path: Path) -> None:
    # SQLite's SQLITE_FULL (the disk, or here max_page_count) is a clear, typed refusal,
    # and what was stored before stays readable. (SQLite rolls the whole transaction back
    # on it, so the batch fails as a whole: the writer's batch-failure path maps it.)
    async with _sqlite_store_with_bucket(tmp_path / "m.db") as store:
        await store.put_object(dataclasses.replace(obj("kept"), inline=b"k" * 5000, size=5000))

        def cap(pages: int | None) -> Callable[[Any], None]:
            def op(conn: Any) -> None:
                limit = pages or conn.execute("PRAGMA page_count").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count = {int(limit)}")
            return op

        await store._write(cap(None), seen_by_reads=False)
        big = [dataclasses.replace(obj(f"big{i}"), inline=os.urandom(60_000), size=60_000)
               for i in range(4)]
        outcomes = await asyncio.gather(*(store.put_object(o) for o in big),
                                        return_exceptions=True)
        assert all(isinstance(o, errors.InsufficientStorage) for o in outcomes), outcomes
        assert names(await store.list_objects(BUCKET)) == ["kept"]
        kept = await store.get_object(BUCKET, "kept")
        assert kept is not None and kept.inline == b"k" * 5000

        await store._write(cap(1 << 30), seen_by_reads=False)
        await store.put_object(big[0])
        assert names(await store.list_objects(BUCKET)) == ["big0", "kept"]


@aio
async def test_sqlite_close_does_not_hang_behind_another_process_holding_the_writer_lock(
        tmp_path: Path) -> None:
    # A shutdown must finish even if a stopped worker never releases the lock: the writer
    # waiting for it is left behind, its queued writes refused with SlowDown.
    async with _sqlite_store_with_bucket(tmp_path / "m.db", lock_timeout=0.3) as store:
        with _writer_lock_held(tmp_path / "m.db"):
            write = asyncio.ensure_future(store.put_object(obj("stuck")))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            await store.close()
            assert time.monotonic() - started < 3
            with pytest.raises(errors.SlowDown):
                await write
    reopened = SqliteStore(tmp_path / "m.db")
    await reopened.open()
    try:
        assert await reopened.get_object(BUCKET, "stuck") is None
        assert await reopened.get_bucket(BUCKET) is not None
    finally:
        await reopened.close()


class _VmSteps:
    """Counts the SQLite VM instructions (in hundreds) run on some connections: what a
    statement costs, whatever plan SQLite picks for it."""

    def __init__(self, *conns: Any) -> None:
        self.conns = conns
        self.count = 0

    def _tick(self) -> int:
        self.count += 1
        return 0  # 0: carry on

    def __enter__(self) -> _VmSteps:
        for conn in self.conns:
            conn.set_progress_handler(self._tick, 100)
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self.conns:
            conn.set_progress_handler(None, 100)


async def _sqlite_buckets_hiding_keys(tmp_path: Path, hidden: dict[str, int]) -> SqliteStore:
    """A store with Enabled buckets, each with ``hidden[name]`` keys behind a lone delete
    marker (what deleting a prefix in a versioned bucket leaves)."""
    store = SqliteStore(tmp_path / "m.db", read_threads=1)
    await store.open()
    await store.create_account(Account(OWNER, "owner", "Owner", "o@example.com", 1.0))
    for name, count in hidden.items():
        await store.create_bucket(Bucket(name, OWNER, "nyc3", 1.0), 100)
        await store.set_bucket_versioning(name, "Enabled")
        for start in range(0, count, 1000):
            await store.delete_objects(name, [(f"gone/{i:06d}", None)
                                              for i in range(start, min(count, start + 1000))])
    return store


@aio
async def test_sqlite_a_versioned_write_does_not_scan_the_buckets_delete_markers(
        tmp_path: Path) -> None:
    # Each versioned put or delete retires its key's latest delete marker, if any: that is
    # one row of that key, not a scan of every latest marker in the bucket.
    store = await _sqlite_buckets_hiding_keys(tmp_path, {"few": 10, "many": 3000})
    try:
        writer = store._write_conn
        assert writer is not None
        cost: dict[str, list[int]] = {}
        for name in ("few", "many"):
            cost[name] = []
            ops: list[Callable[[], Coroutine[Any, Any, Any]]] = [
                functools.partial(store.put_object, obj("new", blob(1), bucket=name)),
                functools.partial(store.put_object, obj("gone/000005", blob(2), bucket=name)),
                functools.partial(store.delete_object, name, "new"),
                functools.partial(store.delete_object, name, "gone/000006")]
            for op in ops:
                with _VmSteps(writer) as steps:
                    await op()
                cost[name].append(steps.count)
        assert all(m <= 2 * f + 5 for f, m in zip(cost["few"], cost["many"], strict=True)), cost
    finally:
        await store.close()


@aio
async def test_sqlite_finding_no_due_blob_deletions_reads_none_of_those_in_their_grace(
        tmp_path: Path) -> None:
    # With --freed-blob-grace-seconds, every GC pass asks for the rows past their grace;
    # the answer must not cost a read of every row still inside it.
    cost: dict[int, int] = {}
    for count in (10, 3000):
        async with _sqlite_store_with_bucket(tmp_path / f"q{count}.db",
                                             read_threads=1) as store:
            keys = [f"k{i:05d}" for i in range(count)]
            for start in range(0, count, 1000):
                await asyncio.gather(*(store.put_object(obj(k, blob(i + 1)))
                                       for i, k in enumerate(keys[start:start + 1000],
                                                             start)))
                await store.delete_objects(BUCKET, [(k, None) for k in keys[start:start + 1000]])
            assert len(await store.pending_blob_deletions(limit=5000)) == count
            with _VmSteps(*store._readers) as steps:
                assert await store.pending_blob_deletions(queued_before=time.time() - 60) == []
            cost[count] = steps.count
    assert cost[3000] <= 2 * cost[10] + 5, cost


@aio
async def test_sqlite_resuming_a_version_listing_inside_a_key_does_not_scan_later_keys(
        tmp_path: Path) -> None:
    # A page that ends inside a key's versions is resumed with that key's older versions:
    # a lookup of that key, whatever follows it in the bucket.
    store = await _sqlite_buckets_hiding_keys(tmp_path, {"few": 10, "many": 3000})
    try:
        cost: dict[str, int] = {}
        for name in ("few", "many"):
            made = [await store.put_object(obj("a", blob(n), bucket=name)) for n in range(5)]
            first = await store.list_object_versions(name, max_keys=2)
            assert (first.next_key_marker, first.next_version_id_marker) == ("a", made[3])
            with _VmSteps(*store._readers) as steps:
                page = await store.list_object_versions(
                    name, key_marker="a", version_id_marker=made[3], max_keys=3)
            assert vids(page.entries) == made[2::-1] and page.is_truncated
            cost[name] = steps.count
        assert cost["many"] <= 2 * cost["few"] + 5, cost
    finally:
        await store.close()


@aio
async def test_sqlite_unversioned_writes_run_no_more_statements_than_before_versioning(
        sqlite_store: SqliteStore) -> None:
    # The hot path of a bucket that never had versioning: what each write ran before
    # versioning existed (schema 8), counted without the group commit's own statements.
    store = sqlite_store
    writer = store._write_conn
    assert writer is not None
    ran: list[str] = []
    tiny = dataclasses.replace(obj("tiny", size=1), inline=b"x")
    budget: list[tuple[str, Callable[[], Coroutine[Any, Any, Any]], int]] = [
        ("put", lambda: store.put_object(obj("k", blob(1))), 4),
        ("overwrite", lambda: store.put_object(obj("k", blob(2))), 6),
        ("inline put", lambda: store.put_object(tiny), 4),
        ("inline overwrite", lambda: store.put_object(tiny), 4),
        ("delete", lambda: store.delete_object(BUCKET, "k"), 5),
        ("put x", lambda: store.put_object(obj("x", blob(3))), 4),
        ("put y", lambda: store.put_object(obj("y", blob(4))), 4),
        ("delete both", lambda: store.delete_objects(BUCKET, [("x", None), ("y", None)]), 9),
    ]
    counts = {}
    writer.set_trace_callback(ran.append)
    try:
        for name, op, _ in budget:
            ran.clear()
            await op()
            counts[name] = len([s for s in ran if s not in (
                "BEGIN IMMEDIATE", "SAVEPOINT op", "RELEASE op", "COMMIT",
                "UPDATE cache_generation SET n = n + 1")])
    finally:
        writer.set_trace_callback(None)
    assert all(counts[name] <= most for name, _, most in budget), counts


class _CommitFails(sqlite3.Connection):
    """A connection whose next COMMIT fails as a failed WAL fsync does: SQLite ends the
    transaction itself and reports SQLITE_IOERR_FSYNC."""

    fail_next = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and _CommitFails.fail_next:
            _CommitFails.fail_next = False
            super().execute("ROLLBACK")
            error = sqlite3.OperationalError("disk I/O error")
            error.sqlite_errorcode = sqlite3.SQLITE_IOERR_FSYNC  # type: ignore[attr-defined]
            raise error
        return super().execute(sql, *args)


@aio
async def test_sqlite_a_commit_that_failed_in_io_may_have_landed_so_its_blobs_must_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect",
                        functools.partial(real_connect, factory=_CommitFails))
    store = SqliteStore(tmp_path / "m.db")
    await _open_with_owner_and_bucket(store)
    try:
        _CommitFails.fail_next = True
        with pytest.raises(errors.InternalError) as failed:
            await store.put_object(obj("k", blob(1)))
        # The frames may be in the WAL: a restart could replay the write, so the handler
        # must not free the blob it points at (freed_if_refused leaves it to the sweep).
        assert failed.value.outcome_unknown
        assert isinstance(failed.value.__cause__, sqlite3.OperationalError)
        assert await store.get_object(BUCKET, "k") is None
        # The store goes on: the next write commits.
        await store.put_object(obj("k", blob(2)))
        got = await store.get_object(BUCKET, "k")
        assert got is not None and got.blob_id == blob(2)
    finally:
        await store.close()


@aio
async def test_sqlite_a_commit_refused_inside_its_transaction_did_not_land(
        sqlite_store: SqliteStore) -> None:
    # A COMMIT SQLite refuses to run leaves the transaction open: it is rolled back, and
    # the outcome is known, so the handler frees the new blobs at once.
    writer = sqlite_store._write_conn
    assert writer is not None

    def no_commit(action: int, arg1: str | None, *_: Any) -> int:
        if action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT":
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    writer.set_authorizer(no_commit)
    try:
        with pytest.raises(errors.InternalError) as failed:
            await sqlite_store.put_object(obj("k", blob(1)))
    finally:
        writer.set_authorizer(None)
    assert not failed.value.outcome_unknown
    assert await sqlite_store.get_object(BUCKET, "k") is None
    await sqlite_store.put_object(obj("k", blob(2)))
    assert await sqlite_store.get_object(BUCKET, "k") is not None


def test_sqlite_successor_carries_past_0xff_bytes() -> None:
    assert successor(b"a/") == b"a0"
    assert successor(b"a\xff") == b"b"
    assert successor(b"a\xff\xff") == b"b"
    assert successor(b"\xff\xff") is None
    assert successor(b"") is None


@aio
async def test_small_objects_keep_their_bytes_inline_until_replaced_or_deleted(
        store: MetadataStore) -> None:
    inline = ObjectRecord(bucket=BUCKET, key="tiny", blob_id="", size=5, etag="e" * 32,
                          last_modified=time.time(), inline=b"hello")
    await store.put_object(inline)
    got = await store.get_object(BUCKET, "tiny")
    assert got is not None and got.inline == b"hello"
    listed = (await store.list_objects(BUCKET)).entries
    assert [(e.key, e.size) for e in listed] == [("tiny", 5)]
    await store.put_object(obj("tiny", blob(7), size=100))
    replaced = await store.get_object(BUCKET, "tiny")
    assert replaced is not None and replaced.inline is None and replaced.blob_id == blob(7)
    await store.put_object(inline)
    assert blob(7) in await store.pending_blob_deletions()
    await store.delete_object(BUCKET, "tiny")
    assert await store.get_object(BUCKET, "tiny") is None
    await store.put_object(obj("tiny", blob(8), size=100))
    again = await store.get_object(BUCKET, "tiny")
    assert again is not None and again.inline is None


async def store_upgraded_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: int,
                              *rows: tuple[str, tuple[Any, ...]]) -> SqliteStore:
    """A store created at schema ``version`` holding the owner, the bucket and ``rows``
    (raw SQL: today's methods write columns an old schema lacks), then opened by today's
    code, which migrates it."""
    import cargohold.store.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= version])
    old = SqliteStore(tmp_path / "m.db")
    await old.open()
    await old.create_account(Account(OWNER, "owner", "Owner", "", time.time()))
    conn = old._write_conn
    assert conn is not None
    conn.execute("INSERT INTO buckets (name, owner_id, region, created) "
                 "VALUES (?, ?, 'nyc3', 0)", (BUCKET, OWNER))
    for sql, params in rows:
        conn.execute(sql, params)
    conn.commit()
    await old.close()
    monkeypatch.undo()
    new = SqliteStore(tmp_path / "m.db")
    await new.open()
    return new


_OLD_OBJECT = ("INSERT INTO objects (bucket, key, version_id, blob_id, size, etag, "
               "last_modified, content_type) VALUES (?, ?, 'null', '', 0, ?, 0, 'x')",
               (BUCKET, b"k", "e" * 32))
_OLD_UPLOAD = ("INSERT INTO uploads (upload_id, bucket, key, owner_id, initiated, content_type, "
               "headers, metadata, checksum_algorithm, checksum_type, storage_class) "
               "VALUES ('u1', ?, ?, ?, 1.0, 'x', '{}', '{}', '', '', 'STANDARD')",
               (BUCKET, b"k", OWNER))


@aio
async def test_upgrading_the_schema_backfills_listing_checksum_columns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = await store_upgraded_from(tmp_path, monkeypatch, 3, (
        "INSERT INTO objects (bucket, key, version_id, blob_id, size, etag, last_modified, "
        "content_type, checksums) VALUES (?, ?, 'null', '', 0, ?, 0, 'x', ?)",
        (BUCKET, b"k", "e" * 32, '{"SHA256":"abc=","type":"COMPOSITE"}')))
    try:
        entry = (await new.list_objects(BUCKET)).entries[0]
        assert (entry.checksum_algorithm, entry.checksum_type) == ("SHA256", "COMPOSITE")
    finally:
        await new.close()


@aio
async def test_upgrading_the_schema_gives_existing_objects_and_uploads_no_tags(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = await store_upgraded_from(tmp_path, monkeypatch, 4, _OLD_OBJECT, _OLD_UPLOAD)
    try:
        got = await new.get_object(BUCKET, "k")
        assert got is not None and got.tags == {}
        pending = await new.get_upload(BUCKET, "k", "u1")
        assert pending is not None and pending.tags == {}
        tagged = await new.set_object_tags(BUCKET, "k", {"a": "1"})
        assert tagged.tags == {"a": "1"} and tagged.etag == "e" * 32
    finally:
        await new.close()


@aio
async def test_upgrading_the_schema_leaves_old_rows_plain_private_and_unconfigured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = await store_upgraded_from(tmp_path, monkeypatch, 5, _OLD_OBJECT, _OLD_UPLOAD)
    try:
        bucket = await new.get_bucket(BUCKET)
        assert bucket is not None
        assert (bucket.acl, bucket.policy, bucket.cors, bucket.website, bucket.logging) == (
            "", None, None, None, None)
        got = await new.get_object(BUCKET, "k")
        assert got is not None and (got.acl, got.sse) == ("", "")
        pending = await new.get_upload(BUCKET, "k", "u1")
        assert pending is not None and (pending.acl, pending.sse) == ("", "")
        assert await new.pending_log_targets() == []
    finally:
        await new.close()


@aio
async def test_sqlite_two_stores_racing_on_one_versioned_key_keep_one_ordered_history(
        tmp_path: Path) -> None:
    # Two writers (server workers, the admin CLI) on one file: each version's place is
    # taken inside the writing transaction, so the history stays totally ordered.
    first, second = SqliteStore(tmp_path / "m.db"), SqliteStore(tmp_path / "m.db")
    await first.open()
    await second.open()
    try:
        await first.create_account(Account(OWNER, "owner", "Owner", "o@example.com", 1.0))
        await second.create_bucket(Bucket(BUCKET, OWNER, "nyc3", 1.0), 100)
        await first.set_bucket_versioning(BUCKET, "Enabled")
        ops: list[Coroutine[Any, Any, Any]] = []
        for i in range(150):
            s = first if i % 2 else second
            ops.append(s.delete_object(BUCKET, "k") if i % 7 == 0
                       else s.put_object(obj("k", blob(i))))
        results = await asyncio.gather(*ops)
        made = [r if isinstance(r, str) else str(r.version_id) for r in results]
        for s in (first, second):
            page = await s.list_object_versions(BUCKET, max_keys=1000)
            assert sorted(vids(page.entries)) == sorted(made)
            assert_one_ordered_history(page.entries, await s.get_object(BUCKET, "k"),
                                       await s.get_version(BUCKET, "k", None))
        assert await first.pending_blob_deletions() == []
    finally:
        await first.close()
        await second.close()


@aio
async def test_sqlite_a_version_moving_between_current_and_noncurrent_is_always_found(
        sqlite_store: SqliteStore) -> None:
    # Reads that look in several tables must not miss a version that writes move between
    # them (a put or a marker archives the current one, deleting the newer one or the
    # marker promotes it back): each reads all its tables in one snapshot. Missed, a
    # version reads as absent, a bucket as empty, a live blob as an orphan to sweep.
    store = sqlite_store
    await store.set_bucket_versioning(BUCKET, "Enabled")
    v1 = await store.put_object(obj("k", blob(1)))
    await store.put_object(multipart("big", blob(2), blob(3)))
    live = {blob(1), blob(2), blob(3)}
    # A bucket whose one version is forever being hidden and brought back.
    await store.create_bucket(Bucket("solo", OWNER, "nyc3", 1.0), 100)
    await store.set_bucket_versioning("solo", "Enabled")
    await store.put_object(obj("k", bucket="solo"))
    done = False
    misses = wrong_empty = lost_blobs = reads = sweeps = 0

    async def churn() -> None:
        nonlocal done
        try:
            for _ in range(100):
                v2 = await store.put_object(obj("k"))
                await store.delete_object(BUCKET, "k", v2)  # v1 current again
                for bucket, key in ((BUCKET, "k"), (BUCKET, "big"), ("solo", "k")):
                    marker = (await store.delete_object(bucket, key)).version_id
                    await store.delete_object(bucket, key, marker)
        finally:
            done = True

    async def read_inline() -> None:  # on the loop thread, while the writer writes
        nonlocal misses, wrong_empty, reads
        while not done:
            for _ in range(20):
                reads += 1
                misses += await store.get_version(BUCKET, "k", v1) is None
                wrong_empty += await store.bucket_is_empty("solo")
            await asyncio.sleep(0)

    async def read_pooled() -> None:  # on a read thread
        nonlocal lost_blobs, sweeps
        while not done:
            sweeps += 1
            lost_blobs += await store.referenced_blobs(sorted(live)) != live

    await asyncio.gather(churn(), read_inline(), read_pooled())
    assert reads > 500 and sweeps > 50
    assert (misses, wrong_empty, lost_blobs) == (0, 0, 0)


@aio
async def test_upgrading_to_versioning_keeps_old_objects_as_null_versions_that_can_be_versioned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = await store_upgraded_from(
        tmp_path, monkeypatch, 8,
        ("INSERT INTO objects (bucket, key, version_id, blob_id, size, etag, last_modified, "
         "content_type) VALUES (?, ?, 'null', ?, 3, ?, 5.0, 'x')",
         (BUCKET, b"k", blob(1), "e" * 32)),
        ("INSERT INTO objects (bucket, key, version_id, blob_id, size, etag, last_modified, "
         "content_type) VALUES (?, ?, 'null', '', 5, ?, 6.0, 'x')",
         (BUCKET, b"tiny", "e" * 32)),
        ("INSERT INTO object_data (bucket, key, data) VALUES (?, ?, ?)",
         (BUCKET, b"tiny", b"hello")),
        ("INSERT INTO objects (bucket, key, version_id, blob_id, size, etag, last_modified, "
         "content_type, parts) VALUES (?, ?, 'null', '', 10, ?, 7.0, 'x', ?)",
         (BUCKET, b"big", "f" * 32 + "-2",
          f'[[1,"{blob(2)}",5,"{"1" * 32}",{{}}],[2,"{blob(3)}",5,"{"2" * 32}",{{}}]]')),
        ("INSERT INTO object_parts (bucket, key, number, blob_id) VALUES (?, ?, ?, ?)",
         (BUCKET, b"big", 1, blob(2))),
        ("INSERT INTO object_parts (bucket, key, number, blob_id) VALUES (?, ?, ?, ?)",
         (BUCKET, b"big", 2, blob(3))))
    try:
        assert await new.schema_version() == MIGRATIONS[-1][0]
        bucket = await new.get_bucket(BUCKET)
        assert bucket is not None and (bucket.versioning, bucket.lifecycle) == ("", None)
        old = {k: await new.get_object(BUCKET, k) for k in ("k", "tiny", "big")}
        for key, record in old.items():
            assert record is not None and record.version_id == NULL_VERSION, key
            assert await new.get_version(BUCKET, key, NULL_VERSION) == record
            assert await new.get_version(BUCKET, key, None) == record
        assert [(e.key, e.version_id, e.is_latest) for e in
                (await new.list_object_versions(BUCKET)).entries] == [
            ("big", NULL_VERSION, True), ("k", NULL_VERSION, True), ("tiny", NULL_VERSION, True)]
        await new.set_bucket_versioning(BUCKET, "Enabled")
        made = {k: await new.put_object(obj(k, blob(n))) for n, k in
                ((4, "k"), (5, "tiny"), (6, "big"))}
        for key, record in old.items():
            assert await new.get_version(BUCKET, key, NULL_VERSION) == record, key
            assert [(e.version_id, e.is_latest) for e in
                    (await new.list_object_versions(BUCKET, prefix=key)).entries] == [
                (made[key], True), (NULL_VERSION, False)]
        assert await new.pending_blob_deletions() == []
        ids = [blob(n) for n in range(1, 7)]
        assert await new.referenced_blobs(ids) == set(ids)
        # The old null versions come back intact when the new ones go.
        for key, record in old.items():
            await new.delete_object(BUCKET, key, made[key])
            assert await new.get_object(BUCKET, key) == record
        assert sorted(await new.pending_blob_deletions()) == [blob(4), blob(5), blob(6)]
    finally:
        await new.close()


@contextlib.asynccontextmanager
async def _another_store_on(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A second store on the ``sqlite_store`` fixture's file: another worker's."""
    other = SqliteStore(tmp_path / "m.db")
    await other.open()
    try:
        yield other
    finally:
        await other.close()


@aio
async def test_sqlite_cached_reads_see_every_commit_of_another_connection_at_once(
        sqlite_store: SqliteStore, tmp_path: Path) -> None:
    # Bucket and object reads are served from memory while the database is unchanged;
    # another process (a second worker, the admin CLI) is another connection on the file.
    store = sqlite_store
    async with _another_store_on(tmp_path) as other:
        await other.put_object(obj("k", etag="1" * 32))
        first = await store.get_object(BUCKET, "k")
        assert first is not None and first.etag == "1" * 32
        assert await store.get_object(BUCKET, "k") is first  # unchanged: from memory
        assert await store.get_object(BUCKET, "absent") is None

        await other.put_object(obj("k", etag="2" * 32))
        await other.put_object(obj("absent"))
        second = await store.get_object(BUCKET, "k")
        assert second is not None and second.etag == "2" * 32
        assert await store.get_object(BUCKET, "absent") is not None

        await other.delete_object(BUCKET, "k")
        assert await store.get_object(BUCKET, "k") is None

        await other.create_bucket(Bucket("second", OWNER, "nyc3", 1.0), 100)
        bucket = await store.get_bucket("second")
        assert bucket is not None and bucket.owner_id == OWNER
        await other.delete_bucket("second")
        await other.create_bucket(Bucket("second", OTHER, "nyc3", 2.0), 100)
        # Re-created by another account: ownership decides access, so no stale owner.
        bucket = await store.get_bucket("second")
        assert bucket is not None and bucket.owner_id == OTHER


@aio
async def test_sqlite_lease_renewals_and_queued_log_records_keep_the_read_cache(
        sqlite_store: SqliteStore, tmp_path: Path) -> None:
    # Worker 0 renews its lease every few seconds: that must not empty every worker's
    # cache. Writes a cached read can see still do.
    store = sqlite_store
    async with _another_store_on(tmp_path) as other:
        await other.put_object(obj("k", etag="1" * 32))
        cached = await store.get_object(BUCKET, "k")
        await other.acquire_lease("background", "worker-0", 30)
        await other.append_log_records(
            [LogRecord(target_bucket=BUCKET, target_prefix="", line="x", created=1.0)])
        await other.release_lease("background", "worker-0")
        await asyncio.sleep(0)  # the next turn of the loop checks again
        assert await store.get_object(BUCKET, "k") is cached
        await other.set_object_tags(BUCKET, "k", {"a": "1"})
        await asyncio.sleep(0)
        tagged = await store.get_object(BUCKET, "k")
        assert tagged is not cached and tagged is not None and tagged.tags == {"a": "1"}


@aio
async def test_sqlite_cached_reads_see_the_stores_own_writes(
        sqlite_store: SqliteStore) -> None:
    store = sqlite_store
    await store.put_object(obj("k", etag="1" * 32))
    assert (await store.get_object(BUCKET, "k")).etag == "1" * 32  # type: ignore[union-attr]
    await store.put_object(obj("k", etag="2" * 32))
    assert (await store.get_object(BUCKET, "k")).etag == "2" * 32  # type: ignore[union-attr]
    await store.set_bucket_versioning(BUCKET, "Enabled")
    bucket = await store.get_bucket(BUCKET)
    assert bucket is not None and bucket.versioning == "Enabled"
