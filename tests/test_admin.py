"""The admin CLI: accounts and keys, against the store of a running server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ServerProcess, admin, make_client
from tests.test_buckets import error_code


def test_the_admin_console_command_prints_json_and_refuses_with_a_message(
        server: ServerProcess) -> None:
    # The real entry point, once; other tests call the same main() in-process (admin()).
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cargohold", "admin", "--data-dir", str(server.data_dir),
             "--json", *args], capture_output=True, text=True, timeout=60,
            env={**os.environ, "CARGOHOLD_META": server.meta})

    listed = run("account", "list")
    assert listed.returncode == 0 and "root" in {a["name"] for a in json.loads(listed.stdout)}
    refused = run("account", "delete", f"nobody-{uuid.uuid4().hex[:6]}")
    assert refused.returncode == 1
    assert refused.stderr.startswith("cargohold admin: ") and "Traceback" not in refused.stderr


def test_a_new_account_gets_working_keys_and_its_own_buckets(server: ServerProcess,
                                                             s3: Any, bucket: str) -> None:
    name = f"alice-{uuid.uuid4().hex[:6]}"
    created = admin(server, "account", "create", name, "--display-name", "Alice A.",
                    "--email", "alice@example.com")
    assert len(created["canonical_id"]) == 64
    assert created["secret_key"]
    alice = make_client(server.endpoint, created["access_key"], created["secret_key"])
    own = f"alice-{uuid.uuid4().hex[:8]}"
    alice.create_bucket(Bucket=own)
    listing = alice.list_buckets()
    assert [b["Name"] for b in listing["Buckets"]] == [own]
    assert listing["Owner"] == {"ID": created["canonical_id"], "DisplayName": "Alice A."}
    # Another account's bucket is off limits, and its name is taken.
    with pytest.raises(ClientError) as exc:
        alice.list_objects_v2(Bucket=bucket)
    assert error_code(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        alice.create_bucket(Bucket=bucket)
    assert error_code(exc) == "BucketAlreadyExists"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=own, Key="intruder", Body=b"x")
    assert error_code(exc) == "AccessDenied"
    accounts = {a["name"]: a for a in admin(server, "account", "list")}
    assert accounts[name]["display_name"] == "Alice A."
    assert accounts[name]["canonical_id"] != accounts["root"]["canonical_id"]


def test_a_deleted_key_stops_working_within_a_second(server: ServerProcess) -> None:
    name = f"bob-{uuid.uuid4().hex[:6]}"
    admin(server, "account", "create", name)
    key = admin(server, "key", "create", "--account", name,
                "--access-key", f"BOBKEY{uuid.uuid4().hex[:10].upper()}",
                "--secret-key", "bob-secret-0123456789")
    bob = make_client(server.endpoint, key["access_key"], key["secret_key"])
    bob.list_buckets()
    listed = [k["access_key"] for k in admin(server, "key", "list", "--account", name)]
    assert key["access_key"] in listed
    assert all("secret_key" not in k for k in admin(server, "key", "list"))
    admin(server, "key", "delete", key["access_key"])
    time.sleep(1.2)
    with pytest.raises(ClientError) as exc:
        bob.list_buckets()
    assert error_code(exc) == "InvalidAccessKeyId"


def test_an_account_that_owns_buckets_cannot_be_deleted(server: ServerProcess) -> None:
    name = f"carol-{uuid.uuid4().hex[:6]}"
    created = admin(server, "account", "create", name)
    carol = make_client(server.endpoint, created["access_key"], created["secret_key"])
    own = f"carol-{uuid.uuid4().hex[:8]}"
    carol.create_bucket(Bucket=own)
    refused = admin(server, "account", "delete", name, check=False)
    assert refused.returncode == 1 and "bucket" in refused.stderr
    carol.delete_bucket(Bucket=own)
    admin(server, "account", "delete", name)
    assert name not in [a["name"] for a in admin(server, "account", "list")]


def test_duplicate_account_names_and_keys_are_refused(server: ServerProcess) -> None:
    name = f"dave-{uuid.uuid4().hex[:6]}"
    admin(server, "account", "create", name)
    again = admin(server, "account", "create", name, check=False)
    assert again.returncode == 1 and "cargohold admin: " in again.stderr
    root_key = admin(server, "key", "list", "--account", "root")[0]["access_key"]
    duplicate = admin(server, "key", "create", "--account", name, "--access-key", root_key,
                      "--secret-key", "x" * 20, check=False)
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr


def test_a_bucket_name_taken_over_by_another_account_is_closed_to_its_old_owner(
        server: ServerProcess) -> None:
    first = admin(server, "account", "create", f"erin-{uuid.uuid4().hex[:6]}")
    second = admin(server, "account", "create", f"fay-{uuid.uuid4().hex[:6]}")
    erin = make_client(server.endpoint, first["access_key"], first["secret_key"])
    fay = make_client(server.endpoint, second["access_key"], second["secret_key"])
    name = f"handover-{uuid.uuid4().hex[:8]}"
    erin.create_bucket(Bucket=name)
    erin.list_objects_v2(Bucket=name)
    erin.delete_bucket(Bucket=name)
    fay.create_bucket(Bucket=name)
    fay.put_object(Bucket=name, Key="fay-only", Body=b"private")
    for call in (lambda: erin.get_object(Bucket=name, Key="fay-only"),
                 lambda: erin.put_object(Bucket=name, Key="erin", Body=b"x")):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_code(exc) == "AccessDenied"
