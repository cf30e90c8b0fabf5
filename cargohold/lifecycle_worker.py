"""The lifecycle worker: applies every bucket's lifecycle rules, in worker 0.

Each pass walks the buckets that have a configuration and, for each enabled rule, the keys
under its prefix, a page (``BATCH``) at a time:

* **Expiration** (Days or Date) deletes current objects old enough, exactly as a client's
  DeleteObject without a version id would: a bucket that never had versioning loses the
  object, an Enabled one gets a delete marker on top, a Suspended one a ``null`` marker.
* **ExpiredObjectDeleteMarker** removes a delete marker that is the only version left.
  An Expiration with Days or Date does too, once the marker is as old as it asks (S3:
  "When you specify the Days tag, Amazon S3 automatically performs ExpiredObjectDeleteMarker
  cleanup when the delete markers are old enough to satisfy the age criteria").
* **NoncurrentVersionExpiration** deletes noncurrent versions (and noncurrent markers)
  that have been noncurrent for its days, keeping the ``NewerNoncurrentVersions`` newest.
* **AbortIncompleteMultipartUpload** aborts uploads initiated long enough ago.

Every action goes through the store's own delete paths with a guard checked inside the
transaction (``older_than``: the object or version must still be as old as the scan saw),
so a pass never undoes a write that raced it, and nothing is done twice: what a pass did no
longer matches the next. All state lives in the metadata store, so a restart simply scans
again; a pass interrupted halfway leaves the rest for the next one, and a bucket deleted
while a pass runs is skipped.

Pages resume after their last entry, so a pass never removes that entry before it has read
the next page: a store resumes a key's history (or a key's uploads) after a version (or
upload) it can still find, and one gone would end that key early.

Days are ``day_seconds`` long (86400; tests shorten them) and, as in S3, an action falls due
at the day boundary after its time has passed: Days=1 on an object written at 10:00 acts at
the second midnight. What a pass did is logged per bucket and rule and counted, per pass and in
total, in the ``lifecycle.status`` setting (``cargohold admin lifecycle status`` shows it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from cargohold import errors
from cargohold.lifecycle import LifecycleConfig, LifecycleRule
from cargohold.periodic import run_periodically
from cargohold.store.base import Bucket, MetadataStore

log = logging.getLogger("cargohold.lifecycle")

BATCH = 1000  # keys or versions read per page; their actions share group commits
STATUS_SETTING = "lifecycle.status"  # the last pass and the totals of every pass
ACTIONS = ("expired", "delete_markers_removed", "noncurrent_removed", "uploads_aborted")


def due_before(now: float, days: int, day_seconds: float) -> float:
    """Times strictly below this are ``days`` lifecycle days old by ``now``, counting as S3
    does (the time plus the days, rounded up to the next day boundary, has come)."""
    boundary = math.floor(now / day_seconds) * day_seconds
    # ceil((t + days*D) / D) * D <= now  <=>  t <= boundary - days*D
    return math.nextafter(boundary - days * day_seconds, math.inf)


class LifecycleWorker:
    """Applies lifecycle rules; run :meth:`run_forever` in one process only."""

    def __init__(self, store: MetadataStore, day_seconds: float,
                 interval_seconds: float) -> None:
        self.store = store
        self.day_seconds = day_seconds
        self.interval_seconds = interval_seconds

    async def run_once(self, now: float | None = None) -> Counter[str]:
        """One pass over every bucket with a lifecycle configuration; what it did."""
        started = time.time() if now is None else now
        done: Counter[str] = Counter()
        for bucket in await self.store.buckets_with_lifecycle():
            if bucket.lifecycle is None:
                continue
            for rule in LifecycleConfig.from_json(bucket.lifecycle).rules:
                if not rule.enabled:
                    continue
                try:
                    counts = await self._apply(bucket, rule, started)
                except errors.NoSuchBucket:
                    log.info("lifecycle: bucket %s was deleted during the pass", bucket.name)
                    break
                if counts:
                    log.info("lifecycle: bucket %s rule %r: %s", bucket.name, rule.rule_id,
                             ", ".join(f"{n} {what}" for what, n in sorted(counts.items())))
                done += counts
        await self._record(started, done)
        return done

    async def _record(self, started: float, done: Counter[str]) -> None:
        """Store this pass and the running totals (they survive restarts and follow the
        lease from gateway to gateway, because they live in the metadata store)."""
        previous = await self.store.get_setting(STATUS_SETTING)
        totals = Counter(json.loads(previous)["totals"] if previous else {})
        totals.update(done)
        await self.store.set_setting(STATUS_SETTING, json.dumps({
            "last_pass": {"started": started, "finished": time.time(),
                          **{what: done[what] for what in ACTIONS}},
            "totals": {what: totals[what] for what in ACTIONS},
        }))

    async def run_forever(self) -> None:
        """Run :meth:`run_once` every ``interval_seconds`` until cancelled."""
        await run_periodically(self.run_once, self.interval_seconds, log, "lifecycle pass")

    async def _apply(self, bucket: Bucket, rule: LifecycleRule, now: float) -> Counter[str]:
        counts: Counter[str] = Counter()
        expire_before = self._expire_before(rule, now)
        if expire_before is not None:
            counts["expired"] = await self._expire_current(bucket.name, rule.prefix,
                                                           expire_before)
        # Only a bucket that has had versioning can hold delete markers.
        markers_before = expire_before if bucket.versioning else None
        if (rule.noncurrent_days is not None or rule.expired_object_delete_marker
                or markers_before is not None):
            removed, markers = await self._clean_versions(bucket.name, rule, now,
                                                          markers_before)
            counts["noncurrent_removed"] = removed
            counts["delete_markers_removed"] = markers
        if rule.abort_days is not None:
            counts["uploads_aborted"] = await self._abort_uploads(
                bucket.name, rule.prefix, due_before(now, rule.abort_days, self.day_seconds))
        return +counts  # drop the zeros

    def _expire_before(self, rule: LifecycleRule, now: float) -> float | None:
        if rule.expiration_days is not None:
            return due_before(now, rule.expiration_days, self.day_seconds)
        if rule.expiration_date is not None and now >= rule.expiration_date:
            return now  # from the Date on, every object under the prefix goes
        return None

    async def _expire_current(self, bucket: str, prefix: str, before: float) -> int:
        """Delete (as a client would) current objects last modified before ``before``."""
        expired = 0
        after = ""
        while True:
            page = await self.store.list_objects(bucket, prefix=prefix, start_after=after,
                                                 max_keys=BATCH)
            due = [e.key for e in page.entries if e.last_modified < before]
            results = await _all(self.store.delete_object(bucket, key, older_than=before)
                                 for key in due)
            # A guard that no longer held (the object was rewritten) reports no change.
            expired += sum(r.removed is not None or r.delete_marker for r in results)
            if not page.is_truncated or page.next_marker is None:
                return expired
            after = page.next_marker

    async def _clean_versions(self, bucket: str, rule: LifecycleRule, now: float,
                              markers_before: float | None) -> tuple[int, int]:
        """Noncurrent versions past their days (beyond the newest ones kept) and lone
        expired delete markers (any with ExpiredObjectDeleteMarker, those last modified
        before ``markers_before`` for an Expiration); (versions removed, markers removed)."""
        noncurrent_before = (None if rule.noncurrent_days is None
                             else due_before(now, rule.noncurrent_days, self.day_seconds))
        keep = rule.newer_noncurrent_versions or 0
        removed = markers = 0
        key_marker = version_marker = ""
        last_key: str | None = None
        seen_noncurrent = 0  # of last_key, carried across pages
        held: list[tuple[str, str]] = []  # the last page's last version, removed now
        while True:
            page = await self.store.list_object_versions(
                bucket, prefix=rule.prefix, key_marker=key_marker,
                version_id_marker=version_marker, max_keys=BATCH)
            due, held = held, []
            lone_markers: list[str] = []
            for entry in page.entries:
                if entry.key != last_key:
                    last_key, seen_noncurrent = entry.key, 0
                if entry.is_latest:
                    if entry.delete_marker and (
                            rule.expired_object_delete_marker
                            or (markers_before is not None
                                and entry.last_modified < markers_before)):
                        lone_markers.append(entry.key)
                    continue
                seen_noncurrent += 1
                if (noncurrent_before is not None and seen_noncurrent > keep
                        and entry.noncurrent_since is not None
                        and entry.noncurrent_since < noncurrent_before):
                    due.append((entry.key, entry.version_id))
            if page.is_truncated and due and due[-1] == (page.next_key_marker,
                                                         page.next_version_id_marker):
                held.append(due.pop())  # the next page resumes after it: keep it till then
            results = await _all(self.store.delete_object(
                bucket, key, version_id, older_than=noncurrent_before)
                for key, version_id in due)
            # A guard that no longer held (the version was promoted) reports no change.
            removed += sum(r.removed is not None or r.delete_marker for r in results)
            # After the noncurrent versions went, a marker may be the only version left.
            gone = await _all(self.store.remove_expired_delete_marker(bucket, key)
                              for key in lone_markers)
            markers += sum(g is not None for g in gone)
            if not page.is_truncated or page.next_key_marker is None:
                return removed, markers
            key_marker = page.next_key_marker
            version_marker = page.next_version_id_marker or ""

    async def _abort_uploads(self, bucket: str, prefix: str, before: float) -> int:
        aborted = 0
        key_marker = upload_marker = ""
        held: list[str] = []  # the last page's last upload, aborted now
        while True:
            page = await self.store.list_uploads(bucket, prefix=prefix, key_marker=key_marker,
                                                 upload_id_marker=upload_marker,
                                                 max_uploads=BATCH)
            due = held + [u.upload_id for u in page.uploads if u.initiated < before]
            held = []
            if page.is_truncated and due and due[-1] == page.next_upload_id_marker:
                held.append(due.pop())  # the next page resumes after it: keep it till then
            # False: completed or aborted by a client since the listing.
            aborted += sum(await _all(self.store.abort_upload(u) for u in due))
            if not page.is_truncated or page.next_key_marker is None:
                return aborted
            key_marker = page.next_key_marker
            upload_marker = page.next_upload_id_marker or ""


T = TypeVar("T")


async def _all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*awaitables))
