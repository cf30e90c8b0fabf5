"""Spaces-style access keys: full access, or limited to buckets with read / readwrite /
fullaccess, checked operation by operation against a real server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ServerProcess, admin, make_client

OK = "ok"


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return OK


class Tenant:
    """An account with two buckets (``granted`` and ``other``) and a key per grant level."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.name = f"tenant-{uuid.uuid4().hex[:8]}"
        created = admin(server, "account", "create", self.name)
        self.full = make_client(server.endpoint, created["access_key"], created["secret_key"])
        self.granted = f"granted-{uuid.uuid4().hex[:8]}"
        self.other = f"other-{uuid.uuid4().hex[:8]}"
        for bucket in (self.granted, self.other):
            self.full.create_bucket(Bucket=bucket)
            self.full.put_object(Bucket=bucket, Key="existing", Body=b"existing body")
        self.keys: dict[str, Any] = {"full": self.full}
        for permission in ("read", "readwrite", "fullaccess"):
            key = admin(server, "key", "create", "--account", self.name,
                        "--grant", f"{self.granted}:{permission}")
            assert key["access"] == "limited"
            assert key["grants"] == {self.granted: permission}
            self.keys[permission] = make_client(server.endpoint, key["access_key"],
                                                key["secret_key"])


@pytest.fixture(scope="module")
def tenant(server: ServerProcess) -> Tenant:
    return Tenant(server)


def operations(bucket: str) -> dict[str, Callable[[Any], Any]]:
    """One probe per access class; each leaves the bucket as it found it when allowed."""
    return {
        "list objects": lambda c: c.list_objects_v2(Bucket=bucket),
        "get object": lambda c: c.get_object(Bucket=bucket, Key="existing")["Body"].read(),
        "head object": lambda c: c.head_object(Bucket=bucket, Key="existing"),
        "bucket location": lambda c: c.get_bucket_location(Bucket=bucket),
        "list uploads": lambda c: c.list_multipart_uploads(Bucket=bucket),
        "put object": lambda c: c.put_object(Bucket=bucket, Key="written", Body=b"w"),
        "copy object": lambda c: c.copy_object(Bucket=bucket, Key="copied",
                                               CopySource={"Bucket": bucket,
                                                           "Key": "existing"}),
        "delete object": lambda c: c.delete_object(Bucket=bucket, Key="written"),
        # Owner-class: allowed means S3's answer for a non-empty bucket.
        "delete bucket": lambda c: c.delete_bucket(Bucket=bucket),
    }


READS = ("list objects", "get object", "head object", "bucket location", "list uploads")
WRITES = ("put object", "copy object", "delete object")
DENIED = "AccessDenied"


def expected(level: str, operation: str) -> str:
    if operation == "head object":
        return OK if level else "403"  # HEAD errors have no body: boto3 shows the status
    if operation == "delete bucket":
        return "BucketNotEmpty" if level in ("full", "fullaccess") else DENIED
    if operation in READS:
        return OK
    return OK if level in ("full", "readwrite", "fullaccess") else DENIED


@pytest.mark.parametrize("level", ["full", "read", "readwrite", "fullaccess"])
def test_each_grant_level_allows_exactly_its_operations_on_the_granted_bucket(
        tenant: Tenant, level: str) -> None:
    client = tenant.keys[level]
    got = {name: outcome(lambda op=op: op(client))
           for name, op in operations(tenant.granted).items()}
    assert got == {name: expected(level, name) for name in got}


@pytest.mark.parametrize("level", ["read", "readwrite", "fullaccess"])
def test_limited_keys_reach_no_bucket_outside_their_grants(tenant: Tenant, level: str) -> None:
    client = tenant.keys[level]
    got = {name: outcome(lambda op=op: op(client))
           for name, op in operations(tenant.other).items()}
    assert got == {name: "403" if name == "head object" else DENIED for name in got}
    # The full key still sees the untouched object.
    assert tenant.full.get_object(Bucket=tenant.other, Key="existing")["Body"].read() == (
        b"existing body")


def test_limited_keys_list_only_their_buckets_and_cannot_create_buckets(tenant: Tenant) -> None:
    full_names = {b["Name"] for b in tenant.full.list_buckets()["Buckets"]}
    assert {tenant.granted, tenant.other} <= full_names
    for level in ("read", "readwrite", "fullaccess"):
        client = tenant.keys[level]
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [tenant.granted]
        assert outcome(lambda c=client: c.create_bucket(
            Bucket=f"new-{uuid.uuid4().hex[:8]}")) == DENIED


def test_copy_needs_read_on_the_source_bucket_too(tenant: Tenant) -> None:
    client = tenant.keys["readwrite"]
    assert outcome(lambda: client.copy_object(
        Bucket=tenant.granted, Key="from-other",
        CopySource={"Bucket": tenant.other, "Key": "existing"})) == DENIED
    assert outcome(lambda: tenant.full.head_object(Bucket=tenant.granted,
                                                   Key="from-other")) != OK


def test_updating_grants_takes_effect_within_a_second(server: ServerProcess,
                                                      tenant: Tenant) -> None:
    key = admin(server, "key", "create", "--account", tenant.name,
                "--grant", f"{tenant.granted}:read")
    client = make_client(server.endpoint, key["access_key"], key["secret_key"])
    put = lambda: client.put_object(Bucket=tenant.granted, Key="later", Body=b"x")  # noqa: E731
    assert outcome(put) == DENIED
    updated = admin(server, "key", "update", key["access_key"],
                    "--grant", f"{tenant.granted}:readwrite", "--grant", f"{tenant.other}:read")
    assert updated["grants"] == {tenant.granted: "readwrite", tenant.other: "read"}
    deadline = time.monotonic() + 5
    while outcome(put) != OK and time.monotonic() < deadline:
        time.sleep(0.2)
    assert outcome(put) == OK
    assert outcome(lambda: client.get_object(Bucket=tenant.other, Key="existing")) == OK
    admin(server, "key", "update", key["access_key"], "--clear-grants")
    deadline = time.monotonic() + 5
    while outcome(put) == OK and time.monotonic() < deadline:
        time.sleep(0.2)
    assert outcome(put) == DENIED
    tenant.full.delete_object(Bucket=tenant.granted, Key="later")


def test_a_full_key_cannot_become_limited(server: ServerProcess, tenant: Tenant) -> None:
    key = admin(server, "key", "create", "--account", tenant.name)
    assert key["access"] == "full" and "grants" not in key
    result = admin(server, "key", "update", key["access_key"], "--grant",
                   f"{tenant.granted}:read", check=False)
    assert result.returncode != 0
    assert "full-access key cannot be limited" in result.stderr
    listed = {k["access_key"]: k for k in admin(server, "key", "list", "--account",
                                                tenant.name)}
    assert listed[key["access_key"]]["access"] == "full"


@pytest.mark.parametrize(("spec", "says"), [
    ("no-permission", "invalid grant"), ("bucket:write", "invalid grant"),
    (":read", "invalid grant"), ("missing-bkt:read", "belongs to the key's account")])
def test_malformed_or_foreign_grants_are_refused(server: ServerProcess, tenant: Tenant,
                                                 spec: str, says: str) -> None:
    result = admin(server, "key", "create", "--account", tenant.name, "--grant", spec,
                   check=False)
    assert result.returncode == 1 and says in result.stderr


def test_a_grant_on_another_accounts_bucket_is_refused(server: ServerProcess, s3: Any,
                                                       bucket: str, tenant: Tenant) -> None:
    result = admin(server, "key", "create", "--account", tenant.name, "--grant",
                   f"{bucket}:read", check=False)
    assert result.returncode != 0
    assert "belongs to the key's account" in result.stderr
