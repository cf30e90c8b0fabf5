"""Object tagging through boto3 (and raw HTTP for what boto3 cannot send)."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests import rawhttp
from tests.conftest import ServerProcess
from tests.test_buckets import error_code, status


def tag_set(tags: dict[str, str]) -> dict[str, Any]:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def tags_of(s3: Any, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def message(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Message"])


def test_tags_put_on_an_object_are_returned_in_order_and_can_be_deleted(
        s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    tags = {"project": "cargo", "team": "storage", "empty": "", "spaced": "two words"}
    put = s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(tags))
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 200
    got = s3.get_object_tagging(Bucket=bucket, Key="k")
    assert got["TagSet"] == tag_set(tags)["TagSet"]
    deleted = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []


def test_putting_tags_replaces_the_whole_tag_set(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Tagging="a=1&b=2")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"c": "3"}))
    assert tags_of(s3, bucket, "k") == {"c": "3"}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": []})
    assert tags_of(s3, bucket, "k") == {}


def test_tags_may_use_letters_digits_and_spaces_of_any_script(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    tags = {"日本語": "ñandú", "Ключ": "значение 42", "k+-=._:/@": "v+-=._:/@",
            "ü" * 128: "ß" * 256}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(tags))
    assert tags_of(s3, bucket, "k") == tags


def test_put_object_stores_the_tags_of_its_tagging_header(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data",
                  Tagging="a=1&b=two%20words&c=plus+space&%E6%97%A5=%C3%B1&empty=&bare")
    assert tags_of(s3, bucket, "k") == {"a": "1", "b": "two words", "c": "plus space",
                                         "日": "ñ", "empty": "", "bare": ""}


def test_a_large_object_keeps_its_header_tags_too(s3: Any, bucket: str) -> None:
    # Past the inline size: stored as a blob, tags on the same row.
    s3.put_object(Bucket=bucket, Key="big", Body=b"x" * (200 * 1024), Tagging="size=large")
    assert tags_of(s3, bucket, "big") == {"size": "large"}
    assert s3.head_object(Bucket=bucket, Key="big")["TagCount"] == 1


def test_a_multipart_upload_gives_its_tags_to_the_completed_object(s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="stage=raw&n=2")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1,
                          Body=b"only part")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert tags_of(s3, bucket, "mp") == {"stage": "raw", "n": "2"}
    assert s3.get_object(Bucket=bucket, Key="mp")["TagCount"] == 2


def test_a_multipart_upload_with_invalid_tags_is_refused_at_creation(
        s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="aws:x=1")
    assert error_code(exc) == "InvalidTag"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_get_and_head_report_the_tag_count_only_when_the_object_has_tags(
        s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="plain", Body=b"data")
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="plain")
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="plain")
    s3.put_object_tagging(Bucket=bucket, Key="plain", Tagging=tag_set({"a": "1", "b": "2",
                                                                        "c": "3"}))
    assert s3.get_object(Bucket=bucket, Key="plain")["TagCount"] == 3
    assert s3.head_object(Bucket=bucket, Key="plain")["TagCount"] == 3
    s3.delete_object_tagging(Bucket=bucket, Key="plain")
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="plain")


def test_tagging_changes_neither_the_etag_nor_last_modified_nor_the_body(
        s3: Any, bucket: str) -> None:
    body = b"unchanged bytes"
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    before = s3.head_object(Bucket=bucket, Key="k")
    time.sleep(1.1)  # Last-Modified has whole seconds: a rewrite would show
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"a": "1"}))
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"b": "2"}))
    after = s3.get_object(Bucket=bucket, Key="k")
    assert after["Body"].read() == body
    assert after["ETag"] == before["ETag"]
    assert after["LastModified"] == before["LastModified"]
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert listed["LastModified"].replace(microsecond=0) == before["LastModified"]


def test_overwriting_an_object_without_tagging_drops_its_tags(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", Tagging="a=1")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert tags_of(s3, bucket, "k") == {}
    assert "TagCount" not in s3.head_object(Bucket=bucket, Key="k")


def test_a_deleted_and_recreated_object_starts_without_tags(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"a": "1"}))
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"again")
    assert tags_of(s3, bucket, "k") == {}


INVALID_TAG_SETS = [
    ({f"k{i}": "v" for i in range(11)}, "Object tags cannot be greater than 10"),
    ({"k" * 129: "v"}, "The TagKey you have provided is too long, max 128"),
    ({"k": "v" * 257}, "The TagValue you have provided is too long, max 256"),
    ({"aws:owner": "me"}, "Your TagKey cannot be prefixed with aws:"),
    ({"semi;colon": "v"}, "The TagKey you have provided is invalid"),
    ({"k": "star*"}, "The TagValue you have provided is invalid"),
    ({"k": "tab\there"}, "The TagValue you have provided is invalid"),
]


@pytest.mark.parametrize(("tags", "expected"), INVALID_TAG_SETS,
                         ids=[m for _, m in INVALID_TAG_SETS])
def test_put_object_tagging_refuses_what_s3_refuses_with_its_message(
        s3: Any, bucket: str, tags: dict[str, str], expected: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Tagging="kept=yes")
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(tags))
    assert (error_code(exc), status(exc), message(exc)) == ("InvalidTag", 400, expected)
    assert tags_of(s3, bucket, "k") == {"kept": "yes"}


def test_duplicate_keys_in_a_tag_set_are_an_invalid_tag(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [
            {"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]})
    assert (error_code(exc), message(exc)) == (
        "InvalidTag", "Cannot provide multiple Tags with the same key")


def test_ten_tags_of_the_longest_keys_and_values_are_accepted(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    tags = {f"{i}" + "k" * 127: "v" * 256 for i in range(10)}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(tags))
    assert tags_of(s3, bucket, "k") == tags


HEADER_ERRORS = [
    ("&".join(f"k{i}=v" for i in range(11)), "InvalidTag",
     "Object tags cannot be greater than 10"),
    ("k=" + "v" * 257, "InvalidTag", "The TagValue you have provided is too long, max 256"),
    ("k" * 129 + "=v", "InvalidTag", "The TagKey you have provided is too long, max 128"),
    ("aws:x=1", "InvalidTag", "Your TagKey cannot be prefixed with aws:"),
    ("a=1&a=2", "InvalidArgument", "The header 'x-amz-tagging' shall be encoded as UTF-8 "
     "then URLEncoded URL query parameters without tag name duplicates."),
    ("a=%ZZ", "InvalidArgument", "The header 'x-amz-tagging' shall be encoded as UTF-8 "
     "then URLEncoded URL query parameters without tag name duplicates."),
    ("a=%FF", "InvalidArgument", "The header 'x-amz-tagging' shall be encoded as UTF-8 "
     "then URLEncoded URL query parameters without tag name duplicates."),
    ("a=b%2Ac", "InvalidArgument", "The header 'x-amz-tagging' shall be encoded as UTF-8 "
     "then URLEncoded URL query parameters without tag name duplicates."),
]


@pytest.mark.parametrize(("header", "code", "expected"), HEADER_ERRORS,
                         ids=[h[:20] for h, _, _ in HEADER_ERRORS])
def test_put_object_refuses_an_invalid_tagging_header_and_stores_nothing(
        s3: Any, bucket: str, header: str, code: str, expected: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"data", Tagging=header)
    assert (error_code(exc), status(exc), message(exc)) == (code, 400, expected)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_tagging_a_missing_object_is_no_such_key(s3: Any, bucket: str) -> None:
    calls = [
        lambda: s3.get_object_tagging(Bucket=bucket, Key="missing"),
        lambda: s3.put_object_tagging(Bucket=bucket, Key="missing",
                                      Tagging=tag_set({"a": "1"})),
        lambda: s3.delete_object_tagging(Bucket=bucket, Key="missing"),
    ]
    for call in calls:
        with pytest.raises(ClientError) as exc:
            call()
        assert (error_code(exc), status(exc)) == ("NoSuchKey", 404)


def test_a_version_other_than_null_is_an_invalid_argument(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    s3.put_object_tagging(Bucket=bucket, Key="k", VersionId="null",
                          Tagging=tag_set({"a": "1"}))
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="null")["TagSet"] == [
        {"Key": "a", "Value": "1"}]
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="3HL4kqtJlcpXroDTDmJ")
    assert error_code(exc) == "InvalidArgument"


def _put_tagging_raw(server: ServerProcess, bucket: str, key: str, body: bytes,
                     headers: dict[str, str] | None = None) -> rawhttp.Response:
    url = f"{server.endpoint}/{bucket}/{key}?tagging"
    return rawhttp.send("PUT", url, rawhttp.sign_v4("PUT", url, headers, body=body), body)


@pytest.mark.parametrize("body", [
    b"<Tagging><TagSet><Tag><Key>a</Key>",  # not well-formed
    b"<Tagging><Tag><Key>a</Key><Value>1</Value></Tag></Tagging>",  # no TagSet
    b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",  # no Value
    b"<Tagging><TagSet><Tag><Key>a</Key><Key>b</Key><Value>1</Value></Tag></TagSet>"
    b"</Tagging>",  # two Keys
    b"<Other><TagSet/></Other>",  # another document
    b"",
], ids=["truncated", "no-tagset", "no-value", "two-keys", "other-root", "empty"])
def test_a_tagging_document_not_of_s3_s_shape_is_malformed_xml(
        s3: Any, server: ServerProcess, bucket: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    resp = _put_tagging_raw(server, bucket, "k", body)
    assert resp.status == 400
    assert b"<Code>MalformedXML</Code>" in resp.body


def test_an_empty_tag_key_is_an_invalid_tag(s3: Any, server: ServerProcess,
                                            bucket: str) -> None:
    # boto3 refuses an empty Key itself, so the document goes raw.
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    body = b"<Tagging><TagSet><Tag><Key></Key><Value>v</Value></Tag></TagSet></Tagging>"
    resp = _put_tagging_raw(server, bucket, "k", body)
    assert resp.status == 400
    assert b"<Code>InvalidTag</Code>" in resp.body
    assert b"The TagKey you have provided is invalid" in resp.body


def test_content_md5_of_a_tagging_document_is_verified(
        s3: Any, server: ServerProcess, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    body = (b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag>'
            b"<Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>")
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    resp = _put_tagging_raw(server, bucket, "k", body, {"Content-MD5": wrong})
    assert resp.status == 400 and b"<Code>BadDigest</Code>" in resp.body
    assert tags_of(s3, bucket, "k") == {}
    right = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = _put_tagging_raw(server, bucket, "k", body, {"Content-MD5": right})
    assert resp.status == 200
    assert tags_of(s3, bucket, "k") == {"a": "1"}


def test_a_flexible_checksum_of_a_tagging_document_is_verified(
        s3: Any, server: ServerProcess, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    body = b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet></Tagging>"
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    resp = _put_tagging_raw(server, bucket, "k", body, {"x-amz-checksum-sha256": wrong})
    assert resp.status == 400 and b"<Code>BadDigest</Code>" in resp.body
    assert tags_of(s3, bucket, "k") == {}


BUCKET_TAGGING_CALLS = ["get_bucket_tagging", "put_bucket_tagging", "delete_bucket_tagging"]


@pytest.mark.parametrize("call", BUCKET_TAGGING_CALLS)
def test_bucket_tagging_answers_not_implemented_with_its_own_message(
        s3: Any, bucket: str, call: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if call == "put_bucket_tagging":
        kwargs["Tagging"] = tag_set({"a": "1"})
    with pytest.raises(ClientError) as exc:
        getattr(s3, call)(**kwargs)
    assert (error_code(exc), status(exc), message(exc)) == (
        "NotImplemented", 501, "Bucket tagging is not supported.")
