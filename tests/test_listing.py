"""Listing through boto3 paginators and raw parameters."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests import rawhttp
from tests.conftest import ServerProcess
from tests.test_buckets import error_code

KEYS = sorted([
    "a.txt", "b/1", "b/2", "b/c/3", "c/", "c/x", "d+e", "d e", "d%e", "dir//double",
    "z/日本", "z/ñ", "zz",
], key=lambda k: k.encode())


@pytest.fixture
def filled(s3: Any, bucket: str) -> str:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode()), KEYS))
    return bucket


def walk(s3: Any, operation: str, bucket: str, **kwargs: Any) -> tuple[list[str], list[str]]:
    """Every key and common prefix a boto3 paginator visits."""
    keys: list[str] = []
    prefixes: list[str] = []
    for page in s3.get_paginator(operation).paginate(Bucket=bucket, **kwargs):
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return keys, prefixes


def all_v2(s3: Any, bucket: str, **kwargs: Any) -> tuple[list[str], list[str]]:
    return walk(s3, "list_objects_v2", bucket, **kwargs)


def all_v1(s3: Any, bucket: str, **kwargs: Any) -> tuple[list[str], list[str]]:
    return walk(s3, "list_objects", bucket, **kwargs)


def test_listing_returns_every_key_in_byte_order(s3: Any, filled: str) -> None:
    assert all_v2(s3, filled) == (KEYS, [])


@pytest.mark.parametrize("page_size", [1, 2, 3, 5])
def test_v2_pagination_with_delimiter_visits_each_key_and_prefix_once(
        s3: Any, filled: str, page_size: int) -> None:
    keys, prefixes = all_v2(s3, filled, Delimiter="/", PaginationConfig={"PageSize": page_size})
    assert keys == ["a.txt", "d e", "d%e", "d+e", "zz"]
    assert prefixes == ["b/", "c/", "dir/", "z/"]


@pytest.mark.parametrize("page_size", [1, 2, 4])
def test_v1_pagination_with_delimiter_visits_each_key_and_prefix_once(
        s3: Any, filled: str, page_size: int) -> None:
    keys, prefixes = all_v1(s3, filled, Delimiter="/", PaginationConfig={"PageSize": page_size})
    assert keys == ["a.txt", "d e", "d%e", "d+e", "zz"]
    assert prefixes == ["b/", "c/", "dir/", "z/"]


def test_prefix_and_delimiter_list_one_level(s3: Any, filled: str) -> None:
    assert all_v2(s3, filled, Prefix="b/", Delimiter="/") == (["b/1", "b/2"], ["b/c/"])
    assert all_v2(s3, filled, Prefix="c/", Delimiter="/") == (["c/", "c/x"], [])


def test_unusual_delimiters_work(s3: Any, filled: str) -> None:
    keys, prefixes = all_v2(s3, filled, Delimiter="e")
    assert prefixes == ["d e", "d%e", "d+e", "dir//double"]
    assert "a.txt" in keys
    keys, prefixes = all_v2(s3, filled, Delimiter="//")
    assert prefixes == ["dir//"]


def test_encoding_type_url_encodes_every_key_like_field_alike(server: ServerProcess,
                                                              filled: str) -> None:
    # boto3 asks for encoding-type=url by itself and decodes Key, Prefix, Delimiter,
    # Marker and NextMarker (the paginated tests above go through that); here the raw XML
    # shows each field is encoded the same way.
    url = (f"{server.endpoint}/{filled}?encoding-type=url&delimiter=%20&max-keys=1"
           "&prefix=d&marker=d")
    body = rawhttp.send("GET", url, rawhttp.sign_v4("GET", url)).body.decode()
    assert "<Prefix>d</Prefix>" in body
    assert "<Delimiter>+</Delimiter>" in body
    assert "<CommonPrefixes><Prefix>d+</Prefix></CommonPrefixes>" in body
    assert "<NextMarker>d+</NextMarker>" in body
    url = f"{server.endpoint}/{filled}?list-type=2&encoding-type=url&prefix=d%25&start-after=d"
    body = rawhttp.send("GET", url, rawhttp.sign_v4("GET", url)).body.decode()
    assert "<Key>d%25e</Key>" in body
    assert "<Prefix>d%25</Prefix>" in body
    assert "<StartAfter>d</StartAfter>" in body


def test_start_after_and_max_keys_zero(s3: Any, filled: str) -> None:
    page = s3.list_objects_v2(Bucket=filled, StartAfter="d+e")
    assert [o["Key"] for o in page["Contents"]] == KEYS[KEYS.index("d+e") + 1:]
    assert page["StartAfter"] == "d+e"
    empty = s3.list_objects_v2(Bucket=filled, MaxKeys=0)
    assert empty["KeyCount"] == 0
    assert empty["IsTruncated"] is False


def test_is_truncated_is_exact_at_a_page_boundary(s3: Any, filled: str) -> None:
    page = s3.list_objects_v2(Bucket=filled, MaxKeys=len(KEYS))
    assert page["IsTruncated"] is False
    assert page["KeyCount"] == len(KEYS)
    page = s3.list_objects_v2(Bucket=filled, MaxKeys=len(KEYS) - 1)
    assert page["IsTruncated"] is True


def test_fetch_owner_adds_the_owner(s3: Any, filled: str) -> None:
    page = s3.list_objects_v2(Bucket=filled, FetchOwner=True, MaxKeys=1)
    assert page["Contents"][0]["Owner"]["DisplayName"] == "root"
    page = s3.list_objects_v2(Bucket=filled, MaxKeys=1)
    assert "Owner" not in page["Contents"][0]


def test_bad_continuation_token_is_invalid_argument(s3: Any, filled: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=filled, ContinuationToken="!!not-a-token")
    assert error_code(exc) == "InvalidArgument"


def test_negative_max_keys_is_invalid_argument(s3: Any, filled: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.list_objects(Bucket=filled, MaxKeys=-1)
    assert error_code(exc) == "InvalidArgument"


def test_list_object_versions_shows_each_object_as_its_null_version(s3: Any,
                                                                   filled: str) -> None:
    versions: list[tuple[str, str, bool]] = []
    for page in s3.get_paginator("list_object_versions").paginate(
            Bucket=filled, PaginationConfig={"PageSize": 4}):
        versions += [(v["Key"], v["VersionId"], v["IsLatest"]) for v in page.get("Versions", [])]
        assert not page.get("DeleteMarkers")
    assert versions == [(k, "null", True) for k in KEYS]


def test_folder_markers_list_as_keys_and_prefixes(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="photos/", Body=b"")
    s3.put_object(Bucket=bucket, Key="photos/cat.jpg", Body=b"x")
    assert all_v2(s3, bucket, Delimiter="/") == ([], ["photos/"])
    assert all_v2(s3, bucket, Prefix="photos/", Delimiter="/") == (
        ["photos/", "photos/cat.jpg"], [])
