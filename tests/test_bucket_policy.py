"""Bucket policies through the real server: the API, and decisions as AWS makes them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ServerProcess, admin, make_client
from tests.test_access_keys import OK, outcome
from tests.test_buckets import error_code, status


def policy(bucket: str, *statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def anonymous_get(server: ServerProcess, path: str, headers: dict[str, str] | None = None
                  ) -> int:
    request = urllib.request.Request(f"{server.endpoint}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def stranger(server: ServerProcess) -> tuple[str, Any]:
    created = admin(server, "account", "create", f"stranger-{uuid.uuid4().hex[:8]}")
    return created["canonical_id"], make_client(server.endpoint, created["access_key"],
                                                created["secret_key"])


def test_policy_round_trips_and_a_missing_one_is_no_such_bucket_policy(s3: Any,
                                                                       bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=bucket)
    assert error_code(exc) == "NoSuchBucketPolicy" and status(exc) == 404
    document = policy(bucket, {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                               "Resource": f"arn:aws:s3:::{bucket}/*"})
    s3.put_bucket_policy(Bucket=bucket, Policy=document)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(document)
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    s3.delete_bucket_policy(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=bucket)
    assert error_code(exc) == "NoSuchBucketPolicy"
    s3.delete_bucket_policy(Bucket=bucket)  # deleting nothing is fine


@pytest.mark.parametrize("document", [
    "{not json",
    json.dumps({"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "s3:GetObject",
                               "Resource": "arn:aws:s3:::BUCKET/*"}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                               "Resource": "arn:aws:s3:::some-other-bucket/*"}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                               "Resource": "arn:aws:s3:::BUCKET/*",
                               "Condition": {"StringSortOf": {"aws:Referer": "x"}}}]}),
    json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                               "Resource": "arn:aws:s3:::BUCKET/" + "k" * 30000}]}),
])
def test_malformed_policies_are_refused_and_nothing_is_stored(s3: Any, bucket: str,
                                                              document: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=bucket, Policy=document.replace("BUCKET", bucket))
    assert error_code(exc) == "MalformedPolicy" and status(exc) == 400
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=bucket)
    assert error_code(exc) == "NoSuchBucketPolicy"


def test_a_policy_grants_another_account_read_on_a_prefix_only(
        s3: Any, bucket: str, stranger: tuple[str, Any]) -> None:
    stranger_id, other = stranger
    for key in ("public/a", "private/b"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        bucket,
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{stranger_id}:root"},
         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/public/*"},
        {"Effect": "Allow", "Principal": {"CanonicalUser": stranger_id},
         "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
         "Condition": {"StringLike": {"s3:prefix": "public/*"}}},
    ))
    decisions = {
        "get public/a": outcome(lambda: other.get_object(Bucket=bucket, Key="public/a")),
        "get private/b": outcome(lambda: other.get_object(Bucket=bucket, Key="private/b")),
        "list public/": outcome(lambda: other.list_objects_v2(Bucket=bucket, Prefix="public/")),
        "list everything": outcome(lambda: other.list_objects_v2(Bucket=bucket)),
        "put public/x": outcome(lambda: other.put_object(Bucket=bucket, Key="public/x",
                                                         Body=b"x")),
        "delete public/a": outcome(lambda: other.delete_object(Bucket=bucket, Key="public/a")),
        "read the policy": outcome(lambda: other.get_bucket_policy(Bucket=bucket)),
    }
    # Even a policy that grants policy management to another account does not let it in.
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        bucket, {"Effect": "Allow", "Principal": {"AWS": stranger_id},
                 "Action": ["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:GetObject"],
                 "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}))
    assert outcome(lambda: other.get_bucket_policy(Bucket=bucket)) == "AccessDenied"
    assert outcome(lambda: other.delete_bucket_policy(Bucket=bucket)) == "AccessDenied"
    assert decisions == {
        "get public/a": OK, "get private/b": "AccessDenied", "list public/": OK,
        "list everything": "AccessDenied", "put public/x": "AccessDenied",
        "delete public/a": "AccessDenied", "read the policy": "AccessDenied",
    }
    assert s3.get_object(Bucket=bucket, Key="public/a")["Body"].read() == b"public/a"


def test_a_public_read_policy_serves_anonymous_gets_but_not_listing(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello")
    assert anonymous_get(server, f"/{bucket}/hello.txt") == 403
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        bucket, {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{bucket}/*"}))
    assert anonymous_get(server, f"/{bucket}/hello.txt") == 200
    assert anonymous_get(server, f"/{bucket}") == 403
    # Without ListBucket, a missing key is not told apart from a forbidden one (as S3).
    assert anonymous_get(server, f"/{bucket}/missing") == 403


def test_a_deny_by_source_ip_refuses_even_the_owner_who_can_still_remove_it(
        s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{bucket}/*",
                 "Condition": {"IpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}}))
    assert outcome(lambda: s3.get_object(Bucket=bucket, Key="k")) == "AccessDenied"
    assert outcome(lambda: s3.list_objects_v2(Bucket=bucket)) == OK  # not a GetObject
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{bucket}/*",
                 "Condition": {"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}))
    assert outcome(lambda: s3.get_object(Bucket=bucket, Key="k")) == OK
    s3.delete_bucket_policy(Bucket=bucket)


def test_referer_conditions_decide_anonymous_reads(server: ServerProcess, s3: Any,
                                                   bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="img.png", Body=b"png")
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        bucket,
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringLike": {"aws:Referer": "https://example.com/*"}}},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringLike": {"aws:Referer": "https://example.com/banned/*"}}},
    ))
    path = f"/{bucket}/img.png"
    assert anonymous_get(server, path, {"Referer": "https://example.com/page"}) == 200
    assert anonymous_get(server, path, {"Referer": "https://evil.example/page"}) == 403
    assert anonymous_get(server, path) == 403
    assert anonymous_get(server, path, {"Referer": "https://example.com/banned/x"}) == 403


def test_limited_keys_and_bucket_policies_exclude_each_other(server: ServerProcess) -> None:
    name = f"spaces-{uuid.uuid4().hex[:8]}"
    created = admin(server, "account", "create", name)
    owner = make_client(server.endpoint, created["access_key"], created["secret_key"])
    granted, with_policy = f"granted-{uuid.uuid4().hex[:8]}", f"pol-{uuid.uuid4().hex[:8]}"
    owner.create_bucket(Bucket=granted)
    owner.create_bucket(Bucket=with_policy)
    admin(server, "key", "create", "--account", name, "--grant", f"{granted}:read")
    document = policy(granted, {"Effect": "Allow", "Principal": "*",
                                "Action": "s3:GetObject",
                                "Resource": f"arn:aws:s3:::{granted}/*"})
    with pytest.raises(ClientError) as exc:
        owner.put_bucket_policy(Bucket=granted, Policy=document)
    assert error_code(exc) == "InvalidRequest"
    assert "limited access key" in exc.value.response["Error"]["Message"]
    owner.put_bucket_policy(Bucket=with_policy, Policy=document.replace(granted, with_policy))
    refused = admin(server, "key", "create", "--account", name, "--grant",
                    f"{with_policy}:read", check=False)
    assert refused.returncode != 0 and "bucket policy" in refused.stderr


def test_existing_object_tags_decide_a_tag_conditioned_grant(
        s3: Any, bucket: str, stranger: tuple[str, Any]) -> None:
    stranger_id, other = stranger
    s3.put_object(Bucket=bucket, Key="blue", Body=b"b", Tagging="team=blue")
    s3.put_object(Bucket=bucket, Key="red", Body=b"r", Tagging="team=red")
    s3.put_object(Bucket=bucket, Key="untagged", Body=b"u")
    s3.put_bucket_policy(Bucket=bucket, Policy=policy(
        bucket, {"Effect": "Allow", "Principal": {"AWS": stranger_id},
                 "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
                 "Condition": {"StringEquals": {"s3:ExistingObjectTag/team": "blue"}}}))
    assert {key: outcome(lambda key=key: other.get_object(Bucket=bucket, Key=key))
            for key in ("blue", "red", "untagged")} == {
        "blue": OK, "red": "AccessDenied", "untagged": "AccessDenied"}
