"""Object versioning through boto3, the aws cli and raw HTTP, against the real server."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from tests import rawhttp
from tests.conftest import ServerProcess, admin, fresh_bucket, make_client, purge_bucket
from tests.test_awscli import aws
from tests.test_buckets import error_code, status

KIB = 1024
MIB = 1024 * KIB
BIG = 200 * KIB  # past the inline size: stored as a blob file
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


# ----------------------------------------------------------------------------- helpers


def set_versioning(s3: Any, bucket: str, state: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": state})


@pytest.fixture
def versioned(s3: Any, bucket: str) -> str:
    """A fresh bucket with versioning Enabled."""
    set_versioning(s3, bucket, "Enabled")
    return bucket


def url_of(server: ServerProcess, bucket: str, key: str = "", query: str = "") -> str:
    return f"{server.endpoint}/{bucket}/{quote(key)}" + (f"?{query}" if query else "")


def raw(server: ServerProcess, method: str, bucket: str, key: str = "", query: str = "",
        headers: dict[str, str] | None = None, body: bytes = b"") -> rawhttp.Response:
    """A SigV4-signed request sent exactly as given, for the headers boto3 hides."""
    url = url_of(server, bucket, key, query)
    return rawhttp.send(method, url, rawhttp.sign_v4(method, url, headers, body), body)


def error_of(response: rawhttp.Response) -> str:
    root = ET.fromstring(response.body)
    return root.findtext("Code") or ""


def raw_history(server: ServerProcess, bucket: str,
                query: str = "") -> list[tuple[str, str, str, bool]]:
    """ListObjectVersions in the server's own order: (kind, key, version id, IsLatest),
    kind "V" for a version and "M" for a delete marker (boto3 splits the two kinds)."""
    response = raw(server, "GET", bucket, query="versions" + (f"&{query}" if query else ""))
    assert response.status == 200, response.body
    root = ET.fromstring(response.body)
    found = []
    for item in root:
        tag = item.tag.removeprefix(S3_NS)
        if tag in ("Version", "DeleteMarker"):
            found.append(("V" if tag == "Version" else "M",
                          item.findtext(f"{S3_NS}Key") or "",
                          item.findtext(f"{S3_NS}VersionId") or "",
                          item.findtext(f"{S3_NS}IsLatest") == "true"))
    return found


def split(history: list[tuple[str, str, str, bool]]) -> tuple[list[tuple[str, str, bool]],
                                                              list[tuple[str, str, bool]]]:
    """(versions, delete markers) of an ordered history, as boto3 and the aws cli show them."""
    return ([(k, v, latest) for kind, k, v, latest in history if kind == "V"],
            [(k, v, latest) for kind, k, v, latest in history if kind == "M"])


def boto3_history(s3: Any, bucket: str, **kwargs: Any) -> tuple[list[tuple[str, str, bool]],
                                                                list[tuple[str, str, bool]]]:
    page = s3.list_object_versions(Bucket=bucket, **kwargs)
    return ([(v["Key"], v["VersionId"], v["IsLatest"]) for v in page.get("Versions", [])],
            [(m["Key"], m["VersionId"], m["IsLatest"]) for m in page.get("DeleteMarkers", [])])


def cli_history(server: ServerProcess, env: dict[str, str],
                bucket: str) -> tuple[list[tuple[str, str, bool]], list[tuple[str, str, bool]]]:
    listing = json.loads(aws(env, server, "s3api", "list-object-versions", "--bucket", bucket)
                         or "{}")
    return ([(v["Key"], v["VersionId"], v["IsLatest"]) for v in listing.get("Versions", [])],
            [(m["Key"], m["VersionId"], m["IsLatest"])
             for m in listing.get("DeleteMarkers", [])])


def body_of(s3: Any, bucket: str, key: str, version_id: str | None = None) -> bytes:
    extra = {"VersionId": version_id} if version_id is not None else {}
    data: bytes = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
    return data


def headers_of(response: dict[str, Any]) -> dict[str, str]:
    return dict(response["ResponseMetadata"]["HTTPHeaders"])


def multipart(s3: Any, bucket: str, key: str, parts: list[bytes]) -> dict[str, Any]:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    done = []
    for number, data in enumerate(parts, 1):
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                              PartNumber=number, Body=data)
        done.append({"PartNumber": number, "ETag": part["ETag"]})
    result: dict[str, Any] = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"],
        MultipartUpload={"Parts": done})
    return result


# ------------------------------------------------------------- the history of one key


def test_boto3_and_the_aws_cli_show_a_keys_whole_history_through_enabled_and_suspended(
        server: ServerProcess, s3: Any, bucket: str, aws_env: dict[str, str]) -> None:
    def shows(expected: list[tuple[str, str, str, bool]], cli: bool = False) -> None:
        assert raw_history(server, bucket) == expected
        assert boto3_history(s3, bucket) == split(expected)
        if cli:
            assert cli_history(server, aws_env, bucket) == split(expected)

    # Before versioning: the object is its null version.
    zero = s3.put_object(Bucket=bucket, Key="k", Body=b"zero")
    assert "VersionId" not in zero
    shows([("V", "k", "null", True)])
    set_versioning(s3, bucket, "Enabled")
    shows([("V", "k", "null", True)])
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == "null"

    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    assert len({v1, v2, "null"}) == 3
    shows([("V", "k", v2, True), ("V", "k", v1, False), ("V", "k", "null", False)])

    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    m1 = deleted["VersionId"]
    shows([("M", "k", m1, True), ("V", "k", v2, False), ("V", "k", v1, False),
           ("V", "k", "null", False)])

    v3 = s3.put_object(Bucket=bucket, Key="k", Body=b"three")["VersionId"]
    gone = s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert gone["VersionId"] == v2 and "DeleteMarker" not in gone
    shows([("V", "k", v3, True), ("M", "k", m1, False), ("V", "k", v1, False),
           ("V", "k", "null", False)], cli=True)

    # Suspended: a put writes the null version, replacing the old (noncurrent) one.
    set_versioning(s3, bucket, "Suspended")
    four = s3.put_object(Bucket=bucket, Key="k", Body=b"four")
    assert "VersionId" not in four  # S3 answers a Suspended write without a version id
    shows([("V", "k", "null", True), ("V", "k", v3, False), ("M", "k", m1, False),
           ("V", "k", v1, False)], cli=True)
    s3.put_object(Bucket=bucket, Key="k", Body=b"five")
    shows([("V", "k", "null", True), ("V", "k", v3, False), ("M", "k", m1, False),
           ("V", "k", v1, False)])
    assert body_of(s3, bucket, "k", "null") == b"five"

    # A Suspended delete replaces the null version with a null delete marker.
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"] == "null"
    shows([("M", "k", "null", True), ("V", "k", v3, False), ("M", "k", m1, False),
           ("V", "k", v1, False)], cli=True)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k")
    assert error_code(exc) == "NoSuchKey"

    # Deleting the null marker brings v3 back as the current object.
    s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    shows([("V", "k", v3, True), ("M", "k", m1, False), ("V", "k", v1, False)])
    assert body_of(s3, bucket, "k") == b"three"
    assert body_of(s3, bucket, "k", v1) == b"one"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_reenabling_after_suspension_puts_new_versions_on_top_of_the_null_one(
        s3: Any, bucket: str) -> None:
    set_versioning(s3, bucket, "Enabled")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    set_versioning(s3, bucket, "Suspended")
    s3.put_object(Bucket=bucket, Key="k", Body=b"null body")
    set_versioning(s3, bucket, "Enabled")
    v3 = s3.put_object(Bucket=bucket, Key="k", Body=b"three")["VersionId"]
    assert boto3_history(s3, bucket) == (
        [("k", v3, True), ("k", "null", False), ("k", v1, False)], [])
    assert body_of(s3, bucket, "k", "null") == b"null body"
    # An Enabled put never replaces the null version.
    s3.put_object(Bucket=bucket, Key="k", Body=b"four")
    assert body_of(s3, bucket, "k", "null") == b"null body"


def test_a_suspended_delete_keeps_a_real_current_version_and_a_put_replaces_the_null_marker(
        s3: Any, bucket: str) -> None:
    set_versioning(s3, bucket, "Enabled")
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    set_versioning(s3, bucket, "Suspended")
    # The current version is not the null one: it is kept, under a null marker.
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True and deleted["VersionId"] == "null"
    assert boto3_history(s3, bucket) == ([("k", v1, False)], [("k", "null", True)])
    # A Suspended put replaces that null marker with a null version.
    assert "VersionId" not in s3.put_object(Bucket=bucket, Key="k", Body=b"null body")
    assert boto3_history(s3, bucket) == ([("k", "null", True), ("k", v1, False)], [])
    assert body_of(s3, bucket, "k") == b"null body"
    assert body_of(s3, bucket, "k", v1) == b"one"


def test_an_object_written_before_versioning_is_the_null_version_afterwards(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"old", Tagging="a=1")
    # Never versioned: versionId=null names the object, and no version header is sent.
    assert body_of(s3, bucket, "k", "null") == b"old"
    tagged = s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="null")
    assert tagged["TagSet"] == [{"Key": "a", "Value": "1"}]
    assert "VersionId" not in tagged
    set_versioning(s3, bucket, "Enabled")
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["VersionId"] == "null"
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"new")["VersionId"]
    assert body_of(s3, bucket, "k", "null") == b"old"
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="null")["TagSet"] == [
        {"Key": "a", "Value": "1"}]
    response = raw(server, "DELETE", bucket, "k", "versionId=null")
    assert response.status == 204 and response.headers["x-amz-version-id"] == "null"
    assert boto3_history(s3, bucket) == ([("k", v1, True)], [])


def test_deleting_by_version_null_in_a_bucket_that_never_had_versioning_deletes_the_object(
        s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    deleted = s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    assert deleted["VersionId"] == "null"
    assert "DeleteMarker" not in deleted
    assert boto3_history(s3, bucket) == ([], [])
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


def test_an_upload_started_before_versioning_was_enabled_completes_as_a_new_version(
        s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="mp", Body=b"before")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=1,
                          Body=b"after")
    set_versioning(s3, bucket, "Enabled")
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert done["VersionId"] != "null"
    assert boto3_history(s3, bucket) == ([("mp", done["VersionId"], True),
                                          ("mp", "null", False)], [])
    assert body_of(s3, bucket, "mp") == b"after"
    assert body_of(s3, bucket, "mp", "null") == b"before"


def test_concurrent_puts_to_one_key_each_make_a_version_and_the_newest_is_current(
        server: ServerProcess, versioned: str) -> None:
    bodies = [f"body {i}".encode() * (1 + i * 5000) for i in range(16)]  # inline and blob
    made: list[tuple[str, bytes]] = []

    def put(data: bytes) -> None:
        client = make_client(server.endpoint)
        made.append((client.put_object(Bucket=versioned, Key="k", Body=data)["VersionId"],
                     data))

    threads = [threading.Thread(target=put, args=(data,)) for data in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({version for version, _ in made}) == len(bodies)
    s3 = make_client(server.endpoint)
    versions, markers = boto3_history(s3, versioned)
    assert markers == []
    assert sorted(v for _, v, _ in versions) == sorted(version for version, _ in made)
    assert [latest for _, _, latest in versions] == [True] + [False] * (len(bodies) - 1)
    current = s3.get_object(Bucket=versioned, Key="k")
    assert current["VersionId"] == versions[0][1]
    by_version = dict(made)
    assert current["Body"].read() == by_version[versions[0][1]]
    for version, data in made:
        assert body_of(s3, versioned, "k", version) == data


def test_a_conditional_put_sees_no_object_under_a_delete_marker(s3: Any, versioned: str) -> None:
    s3.put_object(Bucket=versioned, Key="k", Body=b"one")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=versioned, Key="k", Body=b"two", IfNoneMatch="*")
    assert status(exc) == 412
    etag = s3.head_object(Bucket=versioned, Key="k")["ETag"]
    s3.delete_object(Bucket=versioned, Key="k")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=versioned, Key="k", Body=b"two", IfMatch=etag)
    assert error_code(exc) == "NoSuchKey"
    created = s3.put_object(Bucket=versioned, Key="k", Body=b"three", IfNoneMatch="*")
    assert body_of(s3, versioned, "k") == b"three"
    assert boto3_history(s3, versioned)[0][0] == ("k", created["VersionId"], True)


# ------------------------------------------------------ Put/GetBucketVersioning


def test_a_new_bucket_has_no_versioning_status(server: ServerProcess, s3: Any,
                                               bucket: str) -> None:
    got = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in got and "MFADelete" not in got
    response = raw(server, "GET", bucket, query="versioning")
    assert response.status == 200
    root = ET.fromstring(response.body)
    assert root.tag == f"{S3_NS}VersioningConfiguration" and len(root) == 0


def test_versioning_goes_between_enabled_and_suspended_but_never_back_to_unversioned(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    for state in ("Enabled", "Suspended", "Enabled", "Suspended"):
        set_versioning(s3, bucket, state)
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == state
    # A configuration without a Status asks for nothing: the state stays.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    # There is no word for "unversioned" to go back to.
    body = (b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Status>Disabled</Status></VersioningConfiguration>")
    response = raw(server, "PUT", bucket, query="versioning", body=body)
    assert response.status == 400 and error_of(response) == "MalformedXML"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


@pytest.mark.parametrize("body", [
    b"<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>",
    b"<VersioningConfiguration><Status></Status></VersioningConfiguration>",
    b"<VersioningConfiguration><Status>Enabled</Status>",
    b"Status=Enabled",
    b"",
    b"<LifecycleConfiguration><Status>Enabled</Status></LifecycleConfiguration>",
    b"<VersioningConfiguration><MfaDelete>Maybe</MfaDelete></VersioningConfiguration>",
], ids=["lowercase-status", "empty-status", "unclosed", "not-xml", "empty", "wrong-root",
        "bad-mfa-delete"])
def test_a_bad_versioning_configuration_is_malformed_xml_and_changes_nothing(
        server: ServerProcess, s3: Any, bucket: str, body: bytes) -> None:
    response = raw(server, "PUT", bucket, query="versioning", body=body)
    assert response.status == 400
    assert error_of(response) == "MalformedXML"
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


def test_mfa_delete_cannot_be_enabled_and_the_request_changes_nothing(
        s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={
            "Status": "Enabled", "MFADelete": "Enabled"})
    assert error_code(exc) == "NotImplemented"
    assert status(exc) == 501
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    # Saying it stays disabled is fine.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={
        "Status": "Enabled", "MFADelete": "Disabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_versioning_of_a_missing_bucket_is_no_such_bucket(s3: Any) -> None:
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_versioning(Bucket=missing)
    assert error_code(exc) == "NoSuchBucket"
    with pytest.raises(ClientError) as exc:
        set_versioning(s3, missing, "Enabled")
    assert error_code(exc) == "NoSuchBucket"


# ------------------------------------------------------------- x-amz-version-id


def test_every_write_and_read_of_a_versioned_bucket_names_its_version(
        s3: Any, versioned: str) -> None:
    put = s3.put_object(Bucket=versioned, Key="k", Body=b"put")
    v_put = put["VersionId"]
    assert headers_of(put)["x-amz-version-id"] == v_put
    copy = s3.copy_object(Bucket=versioned, Key="copy",
                          CopySource={"Bucket": versioned, "Key": "k"})
    assert copy["VersionId"] not in ("null", v_put)
    assert copy["CopySourceVersionId"] == v_put
    done = multipart(s3, versioned, "mp", [b"part"])
    v_mp = done["VersionId"]
    assert headers_of(done)["x-amz-version-id"] == v_mp
    for key, version in (("k", v_put), ("copy", copy["VersionId"]), ("mp", v_mp)):
        assert s3.get_object(Bucket=versioned, Key=key)["VersionId"] == version
        assert s3.head_object(Bucket=versioned, Key=key)["VersionId"] == version
        assert s3.get_object(Bucket=versioned, Key=key, VersionId=version)[
            "VersionId"] == version
        assert s3.head_object(Bucket=versioned, Key=key, VersionId=version)[
            "VersionId"] == version
    assert len({v_put, copy["VersionId"], v_mp}) == 3


def test_a_bucket_that_never_had_versioning_sends_no_version_ids(
        s3: Any, bucket: str, other_bucket: str) -> None:
    results = [
        s3.put_object(Bucket=bucket, Key="k", Body=b"data"),
        s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"}),
        multipart(s3, bucket, "mp", [b"part"]),
        s3.get_object(Bucket=bucket, Key="k"),
        s3.head_object(Bucket=bucket, Key="k"),
        s3.get_object(Bucket=bucket, Key="k", VersionId="null"),
        s3.delete_object(Bucket=bucket, Key="copy"),
        s3.get_object_tagging(Bucket=bucket, Key="k"),
    ]
    for result in results:
        assert "x-amz-version-id" not in headers_of(result)
        assert "x-amz-copy-source-version-id" not in headers_of(result)
    # A copy into a versioned bucket names its new version but not the unversioned source.
    set_versioning(s3, other_bucket, "Enabled")
    copy = s3.copy_object(Bucket=other_bucket, Key="k", CopySource={"Bucket": bucket, "Key": "k"})
    assert copy["VersionId"] != "null"
    assert "CopySourceVersionId" not in copy


def test_a_suspended_bucket_writes_the_null_version_and_reads_name_it(
        s3: Any, bucket: str) -> None:
    set_versioning(s3, bucket, "Suspended")
    # As AWS answers a write to a Suspended bucket: no x-amz-version-id at all.
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    assert "VersionId" not in put
    assert "VersionId" not in multipart(s3, bucket, "mp", [b"p"])
    copy = s3.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "k"})
    assert "VersionId" not in copy
    # Reads and the listing name it "null".
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == "null"
    assert s3.get_object(Bucket=bucket, Key="mp")["VersionId"] == "null"
    listed = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert {v["VersionId"] for v in listed} == {"null"}


# ------------------------------------------------- delete markers and version deletes


def test_delete_without_a_version_puts_a_delete_marker_that_hides_the_key(
        server: ServerProcess, s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")["VersionId"]
    response = raw(server, "DELETE", versioned, "k")
    assert response.status == 204
    assert response.headers["x-amz-delete-marker"] == "true"
    marker = response.headers["x-amz-version-id"]
    assert marker not in ("null", v1)

    for method in ("GET", "HEAD"):
        hidden = raw(server, method, versioned, "k")
        assert hidden.status == 404, method
        assert hidden.headers["x-amz-delete-marker"] == "true"
        assert hidden.headers["x-amz-version-id"] == marker
        if method == "GET":
            assert error_of(hidden) == "NoSuchKey"
        else:
            assert hidden.body == b""
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=versioned, Key="k")
    assert error_code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=versioned, Key="k")
    assert status(exc) == 404
    # The version under the marker is still there.
    assert body_of(s3, versioned, "k", v1) == b"one"


def test_reading_a_delete_marker_by_its_version_id_is_method_not_allowed(
        server: ServerProcess, s3: Any, versioned: str) -> None:
    s3.put_object(Bucket=versioned, Key="k", Body=b"one")
    marker = s3.delete_object(Bucket=versioned, Key="k")["VersionId"]
    for method in ("GET", "HEAD"):
        refused = raw(server, method, versioned, "k", f"versionId={marker}")
        assert refused.status == 405, method
        assert refused.headers["x-amz-delete-marker"] == "true"
        assert refused.headers["x-amz-version-id"] == marker
        assert "last-modified" in refused.headers
        if method == "GET":
            assert error_of(refused) == "MethodNotAllowed"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=versioned, Key="k", VersionId=marker)
    assert error_code(exc) == "MethodNotAllowed"
    assert status(exc) == 405


def test_deleting_a_version_removes_it_for_good_and_the_previous_one_becomes_current(
        s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=versioned, Key="k", Body=b"two")["VersionId"]
    deleted = s3.delete_object(Bucket=versioned, Key="k", VersionId=v2)
    assert deleted["VersionId"] == v2
    assert "DeleteMarker" not in deleted
    assert body_of(s3, versioned, "k") == b"one"
    assert s3.head_object(Bucket=versioned, Key="k")["VersionId"] == v1
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=versioned, Key="k", VersionId=v2)
    assert error_code(exc) == "NoSuchVersion"
    assert boto3_history(s3, versioned) == ([("k", v1, True)], [])
    # Deleting a noncurrent version leaves the current one alone.
    v3 = s3.put_object(Bucket=versioned, Key="k", Body=b"three")["VersionId"]
    s3.delete_object(Bucket=versioned, Key="k", VersionId=v1)
    assert body_of(s3, versioned, "k") == b"three"
    assert boto3_history(s3, versioned) == ([("k", v3, True)], [])
    # The last version gone, the key is gone: no marker is left behind.
    s3.delete_object(Bucket=versioned, Key="k", VersionId=v3)
    assert boto3_history(s3, versioned) == ([], [])
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=versioned, Key="k")
    assert error_code(exc) == "NoSuchKey"


def test_deleting_the_delete_marker_brings_the_object_back(
        server: ServerProcess, s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")["VersionId"]
    marker = s3.delete_object(Bucket=versioned, Key="k")["VersionId"]
    response = raw(server, "DELETE", versioned, "k", f"versionId={marker}")
    assert response.status == 204
    assert response.headers["x-amz-version-id"] == marker
    assert response.headers["x-amz-delete-marker"] == "true"
    assert body_of(s3, versioned, "k") == b"one"
    assert boto3_history(s3, versioned) == ([("k", v1, True)], [])
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=versioned)["Contents"]] == ["k"]


def test_two_delete_markers_in_a_row_both_stay_in_the_history(s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")["VersionId"]
    m1 = s3.delete_object(Bucket=versioned, Key="k")["VersionId"]
    m2 = s3.delete_object(Bucket=versioned, Key="k")["VersionId"]
    assert m1 != m2
    assert boto3_history(s3, versioned) == ([("k", v1, False)],
                                            [("k", m2, True), ("k", m1, False)])
    # Removing the newer marker leaves the older one hiding the key.
    s3.delete_object(Bucket=versioned, Key="k", VersionId=m2)
    assert boto3_history(s3, versioned) == ([("k", v1, False)], [("k", m1, True)])
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=versioned, Key="k")
    assert error_code(exc) == "NoSuchKey"
    s3.delete_object(Bucket=versioned, Key="k", VersionId=m1)
    assert body_of(s3, versioned, "k") == b"one"


def test_a_delete_marker_on_a_key_that_never_existed_is_still_made(
        s3: Any, versioned: str) -> None:
    deleted = s3.delete_object(Bucket=versioned, Key="never")
    assert deleted["DeleteMarker"] is True
    assert boto3_history(s3, versioned) == ([], [("never", deleted["VersionId"], True)])


def test_deleting_a_well_formed_version_that_does_not_exist_is_204_with_its_id(
        server: ServerProcess, s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")["VersionId"]
    unknown = "0" * 32
    response = raw(server, "DELETE", versioned, "k", f"versionId={unknown}")
    assert response.status == 204
    assert response.headers["x-amz-version-id"] == unknown
    assert "x-amz-delete-marker" not in response.headers
    response = raw(server, "DELETE", versioned, "nokey", "versionId=null")
    assert response.status == 204
    assert response.headers["x-amz-version-id"] == "null"
    assert boto3_history(s3, versioned) == ([("k", v1, True)], [])


@pytest.mark.parametrize("version_id", ["nonsense", "NULL", "0" * 31, "0" * 33, "G" * 32,
                                        "A" * 32, ""])
def test_a_malformed_version_id_is_invalid_argument(
        server: ServerProcess, s3: Any, versioned: str, version_id: str) -> None:
    s3.put_object(Bucket=versioned, Key="k", Body=b"one")
    query = f"versionId={quote(version_id)}"
    for method, extra in (("GET", ""), ("HEAD", ""), ("DELETE", ""), ("GET", "&tagging"),
                          ("DELETE", "&tagging"), ("GET", "&acl")):
        response = raw(server, method, versioned, "k", query + extra)
        assert response.status == 400, (method, extra)
        if method != "HEAD":
            assert error_of(response) == "InvalidArgument", (method, extra)
    tagging = (b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag></TagSet>"
               b"</Tagging>")
    response = raw(server, "PUT", versioned, "k", query + "&tagging", body=tagging)
    assert response.status == 400 and error_of(response) == "InvalidArgument"
    # Nothing was deleted or tagged.
    assert len(boto3_history(s3, versioned)[0]) == 1
    assert s3.get_object_tagging(Bucket=versioned, Key="k")["TagSet"] == []


def test_a_well_formed_version_id_that_does_not_exist_is_no_such_version(
        server: ServerProcess, s3: Any, versioned: str) -> None:
    s3.put_object(Bucket=versioned, Key="k", Body=b"one")
    for version_id in ("f" * 32, "null"):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=versioned, Key="k", VersionId=version_id)
        assert error_code(exc) == "NoSuchVersion"
        assert status(exc) == 404
        with pytest.raises(ClientError) as exc:
            s3.head_object(Bucket=versioned, Key="k", VersionId=version_id)
        assert status(exc) == 404
        with pytest.raises(ClientError) as exc:
            s3.get_object_tagging(Bucket=versioned, Key="k", VersionId=version_id)
        assert error_code(exc) == "NoSuchVersion"
    response = raw(server, "GET", versioned, "k", f"versionId={'f' * 32}")
    root = ET.fromstring(response.body)
    assert root.findtext("VersionId") == "f" * 32 and root.findtext("Key") == "k"


# ------------------------------------------- reading and changing one version


def test_get_and_head_of_an_old_version_return_its_bytes_and_attributes(
        s3: Any, versioned: str) -> None:
    old = os.urandom(BIG + 17)
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=old, ContentType="text/x-old",
                       Metadata={"era": "old"})["VersionId"]
    s3.put_object(Bucket=versioned, Key="k", Body=b"new", ContentType="text/x-new")
    got = s3.get_object(Bucket=versioned, Key="k", VersionId=v1)
    assert got["Body"].read() == old
    assert got["ContentType"] == "text/x-old"
    assert got["Metadata"] == {"era": "old"}
    assert got["ETag"] == f'"{hashlib.md5(old).hexdigest()}"'
    head = s3.head_object(Bucket=versioned, Key="k", VersionId=v1)
    assert head["ContentLength"] == len(old) and head["VersionId"] == v1
    ranged = s3.get_object(Bucket=versioned, Key="k", VersionId=v1, Range="bytes=100-199")
    assert ranged["Body"].read() == old[100:200]
    assert body_of(s3, versioned, "k") == b"new"



def test_a_304_not_modified_names_the_version_it_validated(
        server: ServerProcess, s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")
    v2 = s3.put_object(Bucket=versioned, Key="k", Body=b"two")
    for query, put in (("", v2), (f"versionId={v1['VersionId']}", v1)):
        for method in ("GET", "HEAD"):
            response = raw(server, method, versioned, "k", query,
                           headers={"If-None-Match": put["ETag"]})
            assert response.status == 304, (method, query)
            assert response.headers["etag"] == put["ETag"]
            assert response.headers["x-amz-version-id"] == put["VersionId"], (method, query)

def test_an_old_inline_version_reads_back_byte_exact(s3: Any, versioned: str) -> None:
    small = os.urandom(1000)
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=small)["VersionId"]
    s3.put_object(Bucket=versioned, Key="k", Body=os.urandom(BIG))
    s3.delete_object(Bucket=versioned, Key="k")
    assert body_of(s3, versioned, "k", v1) == small


def test_copying_an_old_version_over_its_key_restores_it_as_a_new_version(
        s3: Any, versioned: str) -> None:
    old = os.urandom(BIG)
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=old, Metadata={"v": "1"})["VersionId"]
    v2 = s3.put_object(Bucket=versioned, Key="k", Body=b"two")["VersionId"]
    copy = s3.copy_object(Bucket=versioned, Key="k",
                          CopySource={"Bucket": versioned, "Key": "k", "VersionId": v1})
    assert copy["CopySourceVersionId"] == v1
    v3 = copy["VersionId"]
    assert v3 not in (v1, v2)
    got = s3.get_object(Bucket=versioned, Key="k")
    assert got["Body"].read() == old and got["VersionId"] == v3
    assert got["Metadata"] == {"v": "1"}
    assert boto3_history(s3, versioned) == (
        [("k", v3, True), ("k", v2, False), ("k", v1, False)], [])
    assert body_of(s3, versioned, "k", v1) == old


def test_copying_the_current_object_onto_itself_unchanged_is_still_refused(
        s3: Any, versioned: str) -> None:
    s3.put_object(Bucket=versioned, Key="k", Body=b"one")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=versioned, Key="k", CopySource={"Bucket": versioned, "Key": "k"})
    assert error_code(exc) == "InvalidRequest"


def test_copying_from_a_delete_marker_is_refused(s3: Any, versioned: str) -> None:
    s3.put_object(Bucket=versioned, Key="k", Body=b"one")
    marker = s3.delete_object(Bucket=versioned, Key="k")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=versioned, Key="dst",
                       CopySource={"Bucket": versioned, "Key": "k", "VersionId": marker})
    assert error_code(exc) == "InvalidRequest"
    assert status(exc) == 400
    # Without a version id the marker simply hides the source.
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=versioned, Key="dst", CopySource={"Bucket": versioned, "Key": "k"})
    assert error_code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=versioned, Key="dst",
                       CopySource={"Bucket": versioned, "Key": "k", "VersionId": "e" * 32})
    assert error_code(exc) == "NoSuchVersion"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=versioned, Key="dst",
                       CopySource={"Bucket": versioned, "Key": "k", "VersionId": "bogus"})
    assert error_code(exc) == "InvalidArgument"
    versions, markers = boto3_history(s3, versioned)
    assert [v[0] for v in versions + markers] == ["k", "k"]  # nothing written to dst


def test_a_copy_from_a_hidden_source_does_not_answer_with_the_markers_version_id(
        server: ServerProcess, s3: Any, versioned: str) -> None:
    s3.put_object(Bucket=versioned, Key="k", Body=b"one")
    s3.delete_object(Bucket=versioned, Key="k")
    # On a CopyObject response x-amz-version-id names the new copy: the source's delete
    # marker must not appear under that name.
    response = raw(server, "PUT", versioned, "dst",
                   headers={"x-amz-copy-source": f"/{versioned}/k"})
    assert response.status == 404 and error_of(response) == "NoSuchKey"
    assert "x-amz-version-id" not in response.headers
    assert "x-amz-delete-marker" not in response.headers

def test_upload_part_copy_reads_the_version_it_names(s3: Any, versioned: str,
                                                    other_bucket: str) -> None:
    old = os.urandom(5 * MIB + 3)
    v1 = s3.put_object(Bucket=versioned, Key="src", Body=old)["VersionId"]
    s3.put_object(Bucket=versioned, Key="src", Body=b"replaced")
    upload = s3.create_multipart_upload(Bucket=other_bucket, Key="dst")
    whole = s3.upload_part_copy(Bucket=other_bucket, Key="dst", UploadId=upload["UploadId"],
                                PartNumber=1,
                                CopySource={"Bucket": versioned, "Key": "src", "VersionId": v1})
    assert whole["CopySourceVersionId"] == v1
    ranged = s3.upload_part_copy(Bucket=other_bucket, Key="dst", UploadId=upload["UploadId"],
                                 PartNumber=2, CopySourceRange="bytes=10-1033",
                                 CopySource={"Bucket": versioned, "Key": "src",
                                             "VersionId": v1})
    assert ranged["CopySourceVersionId"] == v1
    s3.complete_multipart_upload(
        Bucket=other_bucket, Key="dst", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": whole["CopyPartResult"]["ETag"]},
            {"PartNumber": 2, "ETag": ranged["CopyPartResult"]["ETag"]}]})
    assert body_of(s3, other_bucket, "dst") == old + old[10:1034]
    marker = s3.delete_object(Bucket=versioned, Key="src")["VersionId"]
    upload = s3.create_multipart_upload(Bucket=other_bucket, Key="dst2")
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=other_bucket, Key="dst2", UploadId=upload["UploadId"],
                            PartNumber=1, CopySource={"Bucket": versioned, "Key": "src",
                                                      "VersionId": marker})
    assert error_code(exc) == "InvalidRequest"


def test_tagging_with_a_version_id_reads_and_changes_only_that_version(
        s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one", Tagging="era=old")["VersionId"]
    v2 = s3.put_object(Bucket=versioned, Key="k", Body=b"two", Tagging="era=new")["VersionId"]
    got = s3.get_object_tagging(Bucket=versioned, Key="k", VersionId=v1)
    assert got["TagSet"] == [{"Key": "era", "Value": "old"}] and got["VersionId"] == v1
    put = s3.put_object_tagging(Bucket=versioned, Key="k", VersionId=v1,
                                Tagging={"TagSet": [{"Key": "changed", "Value": "yes"}]})
    assert put["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=versioned, Key="k", VersionId=v1)["TagSet"] == [
        {"Key": "changed", "Value": "yes"}]
    current = s3.get_object_tagging(Bucket=versioned, Key="k")
    assert current["TagSet"] == [{"Key": "era", "Value": "new"}]
    assert current["VersionId"] == v2
    assert s3.head_object(Bucket=versioned, Key="k", VersionId=v1)["ResponseMetadata"][
        "HTTPHeaders"]["x-amz-tagging-count"] == "1"
    deleted = s3.delete_object_tagging(Bucket=versioned, Key="k", VersionId=v1)
    assert deleted["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=versioned, Key="k", VersionId=v1)["TagSet"] == []
    assert s3.get_object_tagging(Bucket=versioned, Key="k")["TagSet"] == [
        {"Key": "era", "Value": "new"}]
    # Tagging the current version by its id works too; tagging leaves the bytes alone.
    s3.put_object_tagging(Bucket=versioned, Key="k", VersionId=v2,
                          Tagging={"TagSet": [{"Key": "c", "Value": "2"}]})
    assert s3.get_object_tagging(Bucket=versioned, Key="k")["TagSet"] == [
        {"Key": "c", "Value": "2"}]
    assert body_of(s3, versioned, "k", v1) == b"one"
    assert boto3_history(s3, versioned) == ([("k", v2, True), ("k", v1, False)], [])


def test_tagging_a_delete_marker_or_a_missing_version_is_refused(
        s3: Any, versioned: str) -> None:
    s3.put_object(Bucket=versioned, Key="k", Body=b"one")
    marker = s3.delete_object(Bucket=versioned, Key="k")["VersionId"]
    tags = {"TagSet": [{"Key": "a", "Value": "1"}]}
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=versioned, Key="k", VersionId=marker, Tagging=tags)
    assert error_code(exc) == "MethodNotAllowed"
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=versioned, Key="k", VersionId=marker)
    assert error_code(exc) == "MethodNotAllowed"
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=versioned, Key="k", VersionId="1" * 32, Tagging=tags)
    assert error_code(exc) == "NoSuchVersion"
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=versioned, Key="k")
    assert error_code(exc) == "NoSuchKey"


def test_an_acl_with_a_version_id_reads_and_changes_only_that_version(
        s3: Any, versioned: str) -> None:
    all_users = "http://acs.amazonaws.com/groups/global/AllUsers"

    def public(**version: str) -> bool:
        grants = s3.get_object_acl(Bucket=versioned, Key="k", **version)["Grants"]
        return any(g["Grantee"].get("URI") == all_users for g in grants)

    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=versioned, Key="k", Body=b"two")["VersionId"]
    s3.put_object_acl(Bucket=versioned, Key="k", VersionId=v1, ACL="public-read")
    assert public(VersionId=v1)
    assert not public(VersionId=v2) and not public()
    anonymous = make_client(s3.meta.endpoint_url, signature_version=UNSIGNED)
    assert body_of(anonymous, versioned, "k", v1) == b"one"
    with pytest.raises(ClientError) as exc:
        anonymous.get_object(Bucket=versioned, Key="k")
    assert status(exc) == 403
    marker = s3.delete_object(Bucket=versioned, Key="k")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.put_object_acl(Bucket=versioned, Key="k", VersionId=marker, ACL="public-read")
    assert error_code(exc) == "MethodNotAllowed"
    with pytest.raises(ClientError) as exc:
        s3.get_object_acl(Bucket=versioned, Key="k", VersionId=marker)
    assert error_code(exc) == "MethodNotAllowed"
    with pytest.raises(ClientError) as exc:
        s3.get_object_acl(Bucket=versioned, Key="k", VersionId="2" * 32)
    assert error_code(exc) == "NoSuchVersion"


# -------------------------------------------------------- policies on version requests


@pytest.fixture
def stranger(server: ServerProcess) -> tuple[str, Any]:
    created = admin(server, "account", "create", f"stranger-{uuid.uuid4().hex[:8]}")
    return created["canonical_id"], make_client(server.endpoint, created["access_key"],
                                                created["secret_key"])


def test_a_policy_denying_delete_object_version_protects_old_versions(
        s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")["VersionId"]
    s3.put_object(Bucket=versioned, Key="k", Body=b"two")
    s3.put_bucket_policy(Bucket=versioned, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObjectVersion",
            "Resource": f"arn:aws:s3:::{versioned}/*"}]}))
    try:
        # A plain delete only puts a marker on top: s3:DeleteObject, not denied.
        marker = s3.delete_object(Bucket=versioned, Key="k")["VersionId"]
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=versioned, Key="k", VersionId=v1)
        assert error_code(exc) == "AccessDenied"
        assert body_of(s3, versioned, "k", v1) == b"one"
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=versioned, Key="k", VersionId=marker)
        assert error_code(exc) == "AccessDenied"
    finally:
        s3.delete_bucket_policy(Bucket=versioned)


def test_delete_objects_asks_the_policy_about_each_entry_and_its_version_action(
        s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="a", Body=b"one")["VersionId"]
    s3.put_object(Bucket=versioned, Key="b", Body=b"two")
    s3.put_object(Bucket=versioned, Key="locked/c", Body=b"three")
    s3.put_bucket_policy(Bucket=versioned, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObjectVersion",
             "Resource": f"arn:aws:s3:::{versioned}/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
             "Resource": f"arn:aws:s3:::{versioned}/locked/*"}]}))
    try:
        result = s3.delete_objects(Bucket=versioned, Delete={"Objects": [
            {"Key": "a", "VersionId": v1}, {"Key": "b"}, {"Key": "locked/c"}]})
    finally:
        s3.delete_bucket_policy(Bucket=versioned)
    assert sorted((e["Key"], e["Code"]) for e in result["Errors"]) == [
        ("a", "AccessDenied"), ("locked/c", "AccessDenied")]
    assert [(d["Key"], d.get("DeleteMarker")) for d in result["Deleted"]] == [("b", True)]
    assert body_of(s3, versioned, "a", v1) == b"one"
    assert s3.get_object(Bucket=versioned, Key="locked/c")["Body"].read() == b"three"


def test_reading_a_version_takes_get_object_version_not_get_object(
        s3: Any, versioned: str, stranger: tuple[str, Any]) -> None:
    stranger_id, other = stranger
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")["VersionId"]
    s3.put_object(Bucket=versioned, Key="k", Body=b"two")

    def allow(action: str) -> None:
        s3.put_bucket_policy(Bucket=versioned, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": stranger_id}, "Action": action,
                "Resource": f"arn:aws:s3:::{versioned}/*"}]}))

    allow("s3:GetObject")
    assert body_of(other, versioned, "k") == b"two"
    with pytest.raises(ClientError) as exc:
        other.get_object(Bucket=versioned, Key="k", VersionId=v1)
    assert error_code(exc) == "AccessDenied"
    allow("s3:GetObjectVersion")
    assert body_of(other, versioned, "k", v1) == b"one"
    with pytest.raises(ClientError) as exc:
        other.get_object(Bucket=versioned, Key="k")
    assert error_code(exc) == "AccessDenied"


def test_copying_a_source_version_takes_get_object_version_on_the_source(
        s3: Any, versioned: str, stranger: tuple[str, Any]) -> None:
    stranger_id, other = stranger
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")["VersionId"]
    s3.put_object(Bucket=versioned, Key="k", Body=b"two")
    s3.put_bucket_policy(Bucket=versioned, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": stranger_id}, "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{versioned}/*"}]}))
    with contextlib.contextmanager(fresh_bucket)(other) as target:
        other.copy_object(Bucket=target, Key="current",
                          CopySource={"Bucket": versioned, "Key": "k"})
        with pytest.raises(ClientError) as exc:
            other.copy_object(Bucket=target, Key="old",
                              CopySource={"Bucket": versioned, "Key": "k", "VersionId": v1})
        assert error_code(exc) == "AccessDenied"


# --------------------------------------------------------------------- DeleteObjects


def deleted_entries(result: dict[str, Any]) -> dict[tuple[str, str | None], dict[str, Any]]:
    return {(d["Key"], d.get("VersionId")): d for d in result.get("Deleted", [])}


def test_delete_objects_reports_versions_and_markers_as_s3_does(
        server: ServerProcess, s3: Any, versioned: str) -> None:
    a1 = s3.put_object(Bucket=versioned, Key="a", Body=b"a1")["VersionId"]
    a2 = s3.put_object(Bucket=versioned, Key="a", Body=b"a2")["VersionId"]
    s3.put_object(Bucket=versioned, Key="b", Body=b"b1")
    c1 = s3.put_object(Bucket=versioned, Key="c", Body=b"c1")["VersionId"]
    c_marker = s3.delete_object(Bucket=versioned, Key="c")["VersionId"]
    unknown = "3" * 32
    result = s3.delete_objects(Bucket=versioned, Delete={"Objects": [
        {"Key": "a", "VersionId": a1},        # a noncurrent version, for good
        {"Key": "b"},                         # no version: a new delete marker
        {"Key": "c", "VersionId": c_marker},  # a delete marker, for good
        {"Key": "d", "VersionId": unknown},   # nothing there: still reported deleted
        {"Key": "e"},                         # a key that never existed: a marker too
    ]})
    assert "Errors" not in result
    deleted = deleted_entries(result)
    assert deleted[("a", a1)] == {"Key": "a", "VersionId": a1}
    b = deleted[("b", None)]
    assert b["DeleteMarker"] is True and b["DeleteMarkerVersionId"] not in ("null", "")
    assert deleted[("c", c_marker)] == {"Key": "c", "VersionId": c_marker, "DeleteMarker": True,
                                        "DeleteMarkerVersionId": c_marker}
    assert deleted[("d", unknown)] == {"Key": "d", "VersionId": unknown}
    e = deleted[("e", None)]
    assert e["DeleteMarker"] is True
    versions, markers = boto3_history(s3, versioned)
    assert versions == [("a", a2, True), ("b", versions[1][1], False), ("c", c1, True)]
    assert markers == [("b", b["DeleteMarkerVersionId"], True),
                       ("e", e["DeleteMarkerVersionId"], True)]
    assert body_of(s3, versioned, "c") == b"c1"
    # The raw XML: the element order S3 uses, nothing more.
    body = (f"<Delete><Object><Key>a</Key><VersionId>{a2}</VersionId></Object>"
            "<Object><Key>f</Key></Object></Delete>").encode()
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    response = raw(server, "POST", versioned, query="delete", body=body,
                   headers={"Content-MD5": md5})
    assert response.status == 200
    text = response.body.decode()
    assert f"<Deleted><Key>a</Key><VersionId>{a2}</VersionId></Deleted>" in text
    assert "<Deleted><Key>f</Key><DeleteMarker>true</DeleteMarker><DeleteMarkerVersionId>" \
        in text


def test_delete_objects_in_a_suspended_bucket_makes_null_markers(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"null body")
    set_versioning(s3, bucket, "Suspended")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert result["Deleted"] == [{"Key": "k", "DeleteMarker": True,
                                  "DeleteMarkerVersionId": "null"}]
    assert boto3_history(s3, bucket) == ([], [("k", "null", True)])


def test_delete_objects_in_an_unversioned_bucket_reports_plain_deletes(
        s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert result["Deleted"] == [{"Key": "k"}]


def test_delete_objects_refuses_a_malformed_version_id_per_key(s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"x")["VersionId"]
    result = s3.delete_objects(Bucket=versioned, Delete={"Objects": [
        {"Key": "k", "VersionId": "not-a-version"}, {"Key": "k", "VersionId": v1}]})
    assert [(e["Key"], e["VersionId"], e["Code"]) for e in result["Errors"]] == [
        ("k", "not-a-version", "InvalidArgument")]
    assert result["Deleted"] == [{"Key": "k", "VersionId": v1}]
    assert boto3_history(s3, versioned) == ([], [])


# ---------------------------------------------------------------- ListObjectVersions


@pytest.fixture
def histories(s3: Any, versioned: str) -> dict[str, list[str]]:
    """Keys a/1, a/2, b/1, c with histories (newest first): version ids per key."""
    made: dict[str, list[str]] = {}
    for key, steps in (("a/1", "PPP"), ("a/2", "PD"), ("b/1", "P"), ("c", "PPDP")):
        for step in steps:
            if step == "P":
                version = s3.put_object(Bucket=versioned, Key=key, Body=key.encode())["VersionId"]
            else:
                version = s3.delete_object(Bucket=versioned, Key=key)["VersionId"]
            made.setdefault(key, []).insert(0, version)
    return made


def test_list_object_versions_with_a_prefix_shows_only_keys_under_it(
        s3: Any, versioned: str, histories: dict[str, list[str]]) -> None:
    versions, markers = boto3_history(s3, versioned, Prefix="a/")
    assert versions == [("a/1", v, i == 0) for i, v in enumerate(histories["a/1"])] + [
        ("a/2", histories["a/2"][1], False)]
    assert markers == [("a/2", histories["a/2"][0], True)]
    assert boto3_history(s3, versioned, Prefix="zzz") == ([], [])
    page = s3.list_object_versions(Bucket=versioned, Prefix="a/2")
    version, marker = page["Versions"][0], page["DeleteMarkers"][0]
    assert version["ETag"] == f'"{hashlib.md5(b"a/2").hexdigest()}"'
    assert version["Size"] == 3 and version["StorageClass"] == "STANDARD"
    assert version["Owner"]["DisplayName"] == "root"
    assert marker["Owner"]["DisplayName"] == "root"
    assert marker["LastModified"] >= version["LastModified"]
    assert page["Prefix"] == "a/2" and page["IsTruncated"] is False


def test_list_object_versions_with_a_delimiter_rolls_keys_up_into_common_prefixes(
        s3: Any, versioned: str, histories: dict[str, list[str]]) -> None:
    page = s3.list_object_versions(Bucket=versioned, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["a/", "b/"]
    assert [(v["Key"], v["VersionId"]) for v in page["Versions"]] == [
        ("c", histories["c"][0]), ("c", histories["c"][2]), ("c", histories["c"][3])]
    assert [(m["Key"], m["VersionId"]) for m in page["DeleteMarkers"]] == [
        ("c", histories["c"][1])]
    inner = s3.list_object_versions(Bucket=versioned, Prefix="a/", Delimiter="/")
    assert "CommonPrefixes" not in inner
    assert len(inner["Versions"]) == 4 and len(inner["DeleteMarkers"]) == 1


def test_list_object_versions_resumes_after_a_key_marker_and_a_version_id_marker(
        s3: Any, versioned: str, histories: dict[str, list[str]]) -> None:
    # A key marker alone: every version of later keys.
    versions, markers = boto3_history(s3, versioned, KeyMarker="a/2")
    assert [v[0] for v in versions] == ["b/1", "c", "c", "c"]
    assert [m[0] for m in markers] == ["c"]
    # With a version id marker: the marker key's older versions first.
    a1 = histories["a/1"]
    page = s3.list_object_versions(Bucket=versioned, KeyMarker="a/1", VersionIdMarker=a1[0],
                                   MaxKeys=4)
    assert [(v["Key"], v["VersionId"]) for v in page["Versions"]] == [
        ("a/1", a1[1]), ("a/1", a1[2]), ("a/2", histories["a/2"][1])]
    assert [(m["Key"], m["VersionId"]) for m in page["DeleteMarkers"]] == [
        ("a/2", histories["a/2"][0])]
    assert page["KeyMarker"] == "a/1" and page["VersionIdMarker"] == a1[0]
    assert page["IsTruncated"] is True
    assert (page["NextKeyMarker"], page["NextVersionIdMarker"]) == ("a/2", histories["a/2"][1])
    # The oldest version as the marker: on to the next key.
    versions, _ = boto3_history(s3, versioned, KeyMarker="a/1", VersionIdMarker=a1[2],
                                MaxKeys=1)
    assert versions == []
    _, markers = boto3_history(s3, versioned, KeyMarker="a/1", VersionIdMarker=a1[2],
                               MaxKeys=1)
    assert markers == [("a/2", histories["a/2"][0], True)]


def test_a_version_id_marker_without_a_key_marker_is_invalid_argument(
        s3: Any, versioned: str, histories: dict[str, list[str]]) -> None:
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket=versioned, VersionIdMarker=histories["c"][0])
    assert error_code(exc) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket=versioned, KeyMarker="c", VersionIdMarker="junk")
    assert error_code(exc) == "InvalidArgument"


def test_the_paginator_over_3_keys_with_4_versions_each_equals_one_page(
        s3: Any, versioned: str) -> None:
    for key in ("k1", "k2/x", "k3"):
        for i in range(4):
            if key == "k2/x" and i == 2:
                s3.delete_object(Bucket=versioned, Key=key)
            else:
                s3.put_object(Bucket=versioned, Key=key, Body=f"{key}{i}".encode())
    whole = boto3_history(s3, versioned)
    assert len(whole[0]) == 11 and len(whole[1]) == 1
    for page_size in range(1, 6):
        versions: list[tuple[str, str, bool]] = []
        markers: list[tuple[str, str, bool]] = []
        pages = 0
        for page in s3.get_paginator("list_object_versions").paginate(
                Bucket=versioned, PaginationConfig={"PageSize": page_size}):
            pages += 1
            got = page.get("Versions", []) + page.get("DeleteMarkers", [])
            assert len(got) <= page_size
            versions += [(v["Key"], v["VersionId"], v["IsLatest"])
                         for v in page.get("Versions", [])]
            markers += [(m["Key"], m["VersionId"], m["IsLatest"])
                        for m in page.get("DeleteMarkers", [])]
        assert (versions, markers) == whole, page_size
        assert pages == -(-12 // page_size)
    # With a delimiter, a common prefix counts once and pages resume past it.
    one_page = s3.list_object_versions(Bucket=versioned, Delimiter="/")
    for page_size in range(1, 4):
        keys: list[str] = []
        prefixes: list[str] = []
        for page in s3.get_paginator("list_object_versions").paginate(
                Bucket=versioned, Delimiter="/", PaginationConfig={"PageSize": page_size}):
            keys += [v["VersionId"] for v in page.get("Versions", [])]
            prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert keys == [v["VersionId"] for v in one_page["Versions"]]
        assert prefixes == ["k2/"]


def test_list_object_versions_encodes_odd_keys_the_way_boto3_decodes(
        s3: Any, versioned: str) -> None:
    key = "dir/with space+plus%pct/ü"
    version = s3.put_object(Bucket=versioned, Key=key, Body=b"x")["VersionId"]
    marker = s3.delete_object(Bucket=versioned, Key=key)["VersionId"]
    assert boto3_history(s3, versioned) == ([(key, version, False)], [(key, marker, True)])
    page = s3.list_object_versions(Bucket=versioned, MaxKeys=1)
    assert page["NextKeyMarker"] == key
    rest = s3.list_object_versions(Bucket=versioned, KeyMarker=page["NextKeyMarker"],
                                   VersionIdMarker=page["NextVersionIdMarker"])
    assert [v["VersionId"] for v in rest["Versions"]] == [version]


def test_list_objects_v1_and_v2_show_only_current_objects(s3: Any, versioned: str,
                                                          histories: dict[str, list[str]]
                                                          ) -> None:
    v2 = s3.list_objects_v2(Bucket=versioned)
    assert [o["Key"] for o in v2["Contents"]] == ["a/1", "b/1", "c"]
    assert v2["KeyCount"] == 3
    v1 = s3.list_objects(Bucket=versioned)
    assert [o["Key"] for o in v1["Contents"]] == ["a/1", "b/1", "c"]
    assert [p["Prefix"] for p in s3.list_objects_v2(
        Bucket=versioned, Delimiter="/")["CommonPrefixes"]] == ["a/", "b/"]
    # A prefix whose keys are all hidden by markers is no common prefix.
    s3.delete_object(Bucket=versioned, Key="b/1")
    assert [p["Prefix"] for p in s3.list_objects_v2(
        Bucket=versioned, Delimiter="/")["CommonPrefixes"]] == ["a/"]


# ----------------------------------------------------------------- bucket emptiness


def test_a_bucket_with_only_old_versions_or_markers_is_not_empty(
        s3: Any, versioned: str) -> None:
    v1 = s3.put_object(Bucket=versioned, Key="k", Body=b"one")["VersionId"]
    marker = s3.delete_object(Bucket=versioned, Key="k")["VersionId"]
    assert "Contents" not in s3.list_objects_v2(Bucket=versioned)
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=versioned)
    assert error_code(exc) == "BucketNotEmpty"
    assert status(exc) == 409
    s3.delete_object(Bucket=versioned, Key="k", VersionId=v1)
    # Only a delete marker left: still not empty.
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=versioned)
    assert error_code(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket=versioned, Key="k", VersionId=marker)
    s3.delete_bucket(Bucket=versioned)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=versioned)
    assert status(exc) == 404


# ------------------------------------------------------------------------- multipart


def test_multipart_uploads_make_versions_whose_old_bytes_read_back_byte_exact(
        s3: Any, versioned: str) -> None:
    first = [os.urandom(5 * MIB), os.urandom(123 * KIB)]
    second = [os.urandom(5 * MIB + 1), os.urandom(5 * MIB), os.urandom(7)]
    v1 = multipart(s3, versioned, "mp", first)["VersionId"]
    v2 = multipart(s3, versioned, "mp", second)["VersionId"]
    v3 = s3.put_object(Bucket=versioned, Key="mp", Body=b"plain")["VersionId"]
    assert len({v1, v2, v3}) == 3
    assert boto3_history(s3, versioned) == (
        [("mp", v3, True), ("mp", v2, False), ("mp", v1, False)], [])
    assert body_of(s3, versioned, "mp", v1) == b"".join(first)
    assert body_of(s3, versioned, "mp", v2) == b"".join(second)
    part = s3.get_object(Bucket=versioned, Key="mp", VersionId=v2, PartNumber=2)
    assert part["Body"].read() == second[1]
    assert part["PartsCount"] == 3 and part["VersionId"] == v2
    head = s3.head_object(Bucket=versioned, Key="mp", VersionId=v1)
    assert head["ETag"].endswith('-2"') and head["ContentLength"] == sum(map(len, first))
    # Deleting the current version makes the multipart one current again, parts and all.
    s3.delete_object(Bucket=versioned, Key="mp", VersionId=v3)
    assert body_of(s3, versioned, "mp") == b"".join(second)
    assert s3.get_object(Bucket=versioned, Key="mp", PartNumber=3)["Body"].read() == second[2]


# ------------------------------------------------------------------ blob collection


GC_BUCKET = "gc-versions"


def blob_files(data_dir: Path) -> int:
    return sum(1 for p in (data_dir / "blobs").rglob("*") if p.is_file())


@pytest.fixture
def gc_server(tmp_path: Path) -> Iterator[ServerProcess]:
    # Passes every 0.1 s; an unreferenced blob file is an orphan after half a second, so an
    # old version's blob not counted as referenced would be swept within the test.
    proc = ServerProcess(data_dir=tmp_path / "data",
                         extra_args=["--gc-interval-seconds", "0.1",
                                     "--orphan-grace-seconds", "0.5"]).start()
    yield proc
    proc.stop()


def test_noncurrent_versions_keep_their_bytes_through_blob_collection(
        gc_server: ServerProcess) -> None:
    s3 = make_client(gc_server.endpoint)
    s3.create_bucket(Bucket=GC_BUCKET)
    expected: dict[tuple[str, str], bytes] = {}

    def put(key: str, data: bytes) -> str:
        version: str = s3.put_object(Bucket=GC_BUCKET, Key=key, Body=data).get("VersionId", "null")
        expected[(key, version)] = data
        return version

    put("k", os.urandom(BIG))  # before versioning: the null version
    set_versioning(s3, GC_BUCKET, "Enabled")
    v1 = put("k", os.urandom(BIG + 1))
    put("k", os.urandom(1000))  # inline
    put("k", os.urandom(BIG + 2))
    s3.delete_object(Bucket=GC_BUCKET, Key="k")
    first = [os.urandom(5 * MIB), os.urandom(300 * KIB)]
    expected[("mp", multipart(s3, GC_BUCKET, "mp", first)["VersionId"])] = b"".join(first)
    second = [os.urandom(5 * MIB), os.urandom(5)]
    expected[("mp", multipart(s3, GC_BUCKET, "mp", second)["VersionId"])] = b"".join(second)
    copy = s3.copy_object(Bucket=GC_BUCKET, Key="copy",
                          CopySource={"Bucket": GC_BUCKET, "Key": "k", "VersionId": v1})
    expected[("copy", copy["VersionId"])] = expected[("k", v1)]
    put("copy", b"over the copy")
    # Freed for good: a version deleted by id, and null versions a Suspended write replaces.
    gone = put("gone", os.urandom(BIG))
    s3.delete_object(Bucket=GC_BUCKET, Key="gone", VersionId=gone)
    del expected[("gone", gone)]
    put("s", os.urandom(BIG))
    set_versioning(s3, GC_BUCKET, "Suspended")
    put("s", os.urandom(BIG))
    put("s", os.urandom(BIG))  # replaces the null version just written
    del expected[("s", "null")]
    s3.delete_object(Bucket=GC_BUCKET, Key="s")  # and the null marker replaces this one

    # One blob file per blob-stored version (per part for multipart ones).
    referenced = 3 + 2 + 2 + 1 + 1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and blob_files(gc_server.data_dir) != referenced:
        time.sleep(0.1)
    assert blob_files(gc_server.data_dir) == referenced
    time.sleep(1.5)  # many more passes, each sweeping orphans older than 0.5 s
    assert blob_files(gc_server.data_dir) == referenced
    listed = s3.list_object_versions(Bucket=GC_BUCKET)
    assert sorted((v["Key"], v["VersionId"]) for v in listed["Versions"]) == sorted(expected)
    for (key, version), data in expected.items():
        assert body_of(s3, GC_BUCKET, key, version) == data, (key, version)

    # Deleting every version frees every blob.
    purge_bucket(s3, GC_BUCKET)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and blob_files(gc_server.data_dir) != 0:
        time.sleep(0.1)
    assert blob_files(gc_server.data_dir) == 0
