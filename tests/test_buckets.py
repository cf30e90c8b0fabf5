"""Bucket operations through boto3."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import REGION


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def status(exc: pytest.ExceptionInfo[ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def test_created_bucket_is_listed_with_its_owner_and_region(s3: Any, bucket: str) -> None:
    listing = s3.list_buckets()
    names = [b["Name"] for b in listing["Buckets"]]
    assert bucket in names
    assert listing["Owner"]["DisplayName"] == "root"
    assert len(listing["Owner"]["ID"]) == 64
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPHeaders"][
        "x-amz-bucket-region"] == REGION


def test_creating_a_bucket_twice_says_it_is_already_owned_by_you(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=bucket)
    assert error_code(exc) == "BucketAlreadyOwnedByYou"
    assert status(exc) == 409


@pytest.mark.parametrize("name", ["ab", "A-upper", "-leading", "trailing-", "has_underscore",
                                  "192.168.1.1", "two..dots", "x" * 64])
def test_invalid_bucket_names_are_refused(s3: Any, name: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert error_code(exc) == "InvalidBucketName"
    assert status(exc) == 400


def test_location_constraint_of_the_server_region_or_us_east_1_is_accepted(s3: Any) -> None:
    for constraint in (REGION, "us-east-1"):
        name = f"loc-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=name,
                         CreateBucketConfiguration={"LocationConstraint": constraint})
        assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == REGION
        s3.delete_bucket(Bucket=name)


def test_location_constraint_of_another_region_is_refused(s3: Any) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=f"loc-{uuid.uuid4().hex[:12]}",
                         CreateBucketConfiguration={"LocationConstraint": "ams3"})
    assert error_code(exc) == "IllegalLocationConstraintException"


def test_deleting_a_non_empty_bucket_is_refused_and_keeps_its_objects(s3: Any,
                                                                      bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="keep", Body=b"data")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert error_code(exc) == "BucketNotEmpty"
    assert status(exc) == 409
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"data"


def test_missing_bucket_answers_no_such_bucket(s3: Any) -> None:
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket="no-such-bucket-here")
    assert error_code(exc) == "NoSuchBucket"
    assert status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="no-such-bucket-here")
    assert status(exc) == 404


def test_deleted_bucket_is_gone(s3: Any) -> None:
    name = f"gone-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert error_code(exc) == "NoSuchBucket"


def test_list_buckets_pages_with_prefix_and_max_buckets(s3: Any) -> None:
    prefix = f"pg{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{i}" for i in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)
    try:
        seen: list[str] = []
        kwargs: dict[str, Any] = {"Prefix": prefix, "MaxBuckets": 2}
        while True:
            page = s3.list_buckets(**kwargs)
            seen += [b["Name"] for b in page["Buckets"]]
            token = page.get("ContinuationToken")
            if not token:
                break
            kwargs["ContinuationToken"] = token
        assert seen == sorted(names)
    finally:
        for name in names:
            s3.delete_bucket(Bucket=name)
