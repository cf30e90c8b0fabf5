"""POST Object: browser uploads signed by a POST policy.

Forms come from boto3's ``generate_presigned_post`` (SigV4) or are built by hand (SigV2, and
the malformed ones), are encoded by urllib3's multipart encoder and sent byte for byte to the
real server; one test has headless Chromium submit a real HTML form. S3's answers checked
here are the ones recorded from S3 (see cargohold/auth/postpolicy.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import pytest
from urllib3 import encode_multipart_formdata

from cargohold import errors, postform
from cargohold.auth import postpolicy
from cargohold.store.base import AccessKey
from tests import rawhttp
from tests.conftest import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    ServerProcess,
    free_port,
    headless_chromium,
    make_client,
)

FileSpec = tuple[str | None, bytes, str]  # (filename, content, part Content-Type)


# --- helpers ---------------------------------------------------------------------------------

def post(url: str, fields: Mapping[str, str] | Sequence[tuple[str, str]],
         file: FileSpec | None = ("hello.txt", b"hello, world", "text/plain"), *,
         file_first: bool = False, after: Sequence[tuple[str, str]] = (),
         headers: Mapping[str, str] | None = None) -> rawhttp.Response:
    """POST a form: ``fields``, then the file part, then ``after`` (which S3 ignores)."""
    items: list[Any] = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    if file is not None:
        filename, data, content_type = file
        part: Any = (filename, data, content_type) if filename is not None else data
        items = [("file", part), *items] if file_first else [*items, ("file", part)]
    items.extend(after)
    body, content_type = encode_multipart_formdata(items)
    return rawhttp.send("POST", url, {"Content-Type": content_type, **(headers or {})}, body)


def error_of(response: rawhttp.Response) -> tuple[str, str]:
    root = ElementTree.fromstring(response.body)
    return root.findtext("Code") or "", root.findtext("Message") or ""


def presign(s3: Any, bucket: str, key: str = "uploads/${filename}",
            fields: dict[str, str] | None = None, conditions: list[Any] | None = None,
            expires: int = 300) -> tuple[str, dict[str, str]]:
    presigned = s3.generate_presigned_post(bucket, key, Fields=fields, Conditions=conditions,
                                           ExpiresIn=expires)
    return presigned["url"], dict(presigned["fields"])


def keys_in(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def expiration(seconds: int = 300) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_policy(document: object) -> str:
    text = document if isinstance(document, str) else json.dumps(document)
    return base64.b64encode(text.encode()).decode()


def v2_fields(policy: str, access_key: str = ACCESS_KEY,
              secret: str = SECRET_KEY) -> dict[str, str]:
    """SigV2 form fields: base64 HMAC-SHA1 of the base64 policy."""
    digest = hmac.new(secret.encode(), policy.encode(), hashlib.sha1).digest()
    return {"AWSAccessKeyId": access_key, "policy": policy,
            "signature": base64.b64encode(digest).decode()}


def v4_fields(policy: str, amz_date: str, access_key: str = ACCESS_KEY,
              secret: str = SECRET_KEY) -> dict[str, str]:
    """SigV4 form fields: hex HMAC-SHA256 of the base64 policy under the signing key."""
    signature = hmac.new(rawhttp.signing_key(secret, amz_date[:8]), policy.encode(),
                         hashlib.sha256).hexdigest()
    return {"x-amz-algorithm": "AWS4-HMAC-SHA256",
            "x-amz-credential": f"{access_key}/{amz_date[:8]}/{REGION}/s3/aws4_request",
            "x-amz-date": amz_date, "policy": policy, "x-amz-signature": signature}


def v4_policy(bucket: str, *conditions: object, amz_date: str,
              access_key: str = ACCESS_KEY, seconds: int = 300) -> str:
    return encode_policy({"expiration": expiration(seconds), "conditions": [
        {"bucket": bucket}, *conditions, {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": f"{access_key}/{amz_date[:8]}/{REGION}/s3/aws4_request"},
        {"x-amz-date": amz_date}]})


def blob_files(server: ServerProcess) -> int:
    return sum(1 for path in (server.data_dir / "blobs").rglob("*") if path.is_file())


def temp_files(server: ServerProcess) -> list[Path]:
    return list((server.data_dir / "tmp").iterdir())


def now_amz() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


# --- uploads that succeed --------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 5000, 300_000], ids=["empty", "inline", "blob"])
def test_a_presigned_post_stores_the_file_byte_exact(s3: Any, bucket: str, size: int) -> None:
    data = os.urandom(size)
    url, fields = presign(
        s3, bucket, "photos/cat.png",
        fields={"Content-Type": "image/png", "x-amz-meta-Owner": "Ada",
                "Cache-Control": "max-age=60"},
        conditions=[{"Content-Type": "image/png"}, ["starts-with", "$x-amz-meta-owner", ""],
                    ["eq", "$Cache-Control", "max-age=60"]])
    response = post(url, fields, ("cat.png", data, "application/octet-stream"))
    assert response.status == 204, response.body
    assert response.body == b""
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    assert response.headers["etag"] == etag
    assert response.headers["location"] == f"{url}/photos%2Fcat.png"
    stored = s3.get_object(Bucket=bucket, Key="photos/cat.png")
    assert stored["Body"].read() == data
    assert stored["ETag"] == etag
    assert stored["ContentType"] == "image/png"  # the field, not the file part's type
    assert stored["Metadata"] == {"owner": "Ada"}
    assert stored["CacheControl"] == "max-age=60"


def test_the_filename_variable_takes_the_files_name_without_its_path(s3: Any,
                                                                     bucket: str) -> None:
    url, fields = presign(s3, bucket, "uploads/${filename}",
                          fields={"x-amz-meta-name": "${filename}"},
                          conditions=[["starts-with", "$x-amz-meta-name", "report"]])
    response = post(url, fields, ("C:\\Users\\ada\\report 1.txt", b"numbers", "text/plain"))
    assert response.status == 204, response.body
    stored = s3.get_object(Bucket=bucket, Key="uploads/report 1.txt")
    assert stored["Body"].read() == b"numbers"
    assert stored["Metadata"] == {"name": "report 1.txt"}
    assert stored["ContentType"] == "binary/octet-stream"  # no Content-Type field


def test_success_action_status_201_answers_a_post_response_document(s3: Any,
                                                                    bucket: str) -> None:
    url, fields = presign(s3, bucket, "a dir/r\u00e9sum\u00e9.txt",
                          fields={"success_action_status": "201"},
                          conditions=[{"success_action_status": "201"}])
    response = post(url, fields)
    assert response.status == 201, response.body
    assert response.headers["content-type"] == "application/xml"
    root = ElementTree.fromstring(response.body)
    assert root.tag == "PostResponse"  # no namespace, as S3 writes it
    etag = f'"{hashlib.md5(b"hello, world").hexdigest()}"'
    assert {child.tag: child.text for child in root} == {
        "Location": f"{url}/{quote('a dir/résumé.txt', safe='')}",
        "Bucket": bucket, "Key": "a dir/résumé.txt", "ETag": etag}
    assert response.headers["etag"] == etag


def test_a_virtual_host_style_form_gets_a_virtual_host_style_location(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    _, fields = presign(s3, bucket, "k/1")
    host = f"{bucket}.localhost:{server.port}"
    response = post(f"{server.endpoint}/", fields, headers={"Host": host})
    assert response.status == 204, response.body
    assert response.headers["location"] == f"http://{host}/k%2F1"


@pytest.mark.parametrize(("value", "status"), [("200", 200), ("204", 204), ("404", 204)])
def test_other_success_statuses_answer_an_empty_body(s3: Any, bucket: str, value: str,
                                                     status: int) -> None:
    url, fields = presign(s3, bucket, "k", fields={"success_action_status": value},
                          conditions=[{"success_action_status": value}])
    response = post(url, fields)
    assert (response.status, response.body) == (status, b"")
    assert keys_in(s3, bucket) == ["k"]


def test_success_action_redirect_answers_303_with_bucket_key_and_etag(s3: Any,
                                                                      bucket: str) -> None:
    target = "https://app.example/uploaded?ticket=7"
    url, fields = presign(s3, bucket, "inbox/${filename}",
                          fields={"success_action_redirect": target},
                          conditions=[["starts-with", "$success_action_redirect",
                                       "https://app.example/"]])
    response = post(url, fields, ("a b.txt", b"data", "text/plain"))
    assert response.status == 303, response.body
    md5 = hashlib.md5(b"data").hexdigest()
    assert response.headers["location"] == (
        f"{target}&bucket={bucket}&key=inbox%2Fa+b.txt&etag=%22{md5}%22")
    assert keys_in(s3, bucket) == ["inbox/a b.txt"]


def test_a_redirect_that_is_not_an_absolute_url_is_ignored(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k", fields={"success_action_redirect": "/relative"},
                          conditions=[{"success_action_redirect": "/relative"}])
    assert post(url, fields).status == 204


def test_a_sigv2_form_uploads(server: ServerProcess, s3: Any, bucket: str) -> None:
    policy = encode_policy({"expiration": expiration(), "conditions": [
        {"bucket": bucket}, ["starts-with", "$key", "v2/"], {"acl": "private"},
        ["starts-with", "$Content-Type", "text/"], ["content-length-range", 0, 1024]]})
    fields = {"key": "v2/${filename}", "acl": "private", "Content-Type": "text/plain",
              **v2_fields(policy)}
    response = post(f"{server.endpoint}/{bucket}", fields)
    assert response.status == 204, response.body
    assert s3.get_object(Bucket=bucket, Key="v2/hello.txt")["Body"].read() == b"hello, world"


def test_field_names_are_matched_without_case(server: ServerProcess, s3: Any,
                                              bucket: str) -> None:
    # As ceph s3-tests' case_insensitive_condition_fields (written against S3).
    policy = encode_policy({"expiration": expiration(), "conditions": [
        {"bUcKeT": bucket}, ["StArTs-WiTh", "$KeY", "foo"], {"AcL": "private"},
        ["StArTs-WiTh", "$CoNtEnT-TyPe", "text/plain"], ["content-length-range", 0, 1024]]})
    signed = v2_fields(policy)
    fields = {"kEy": "foo.txt", "AWSAccessKeyId": signed["AWSAccessKeyId"], "aCl": "private",
              "signature": signed["signature"], "pOLICy": policy, "Content-Type": "text/plain",
              "x-ignore-tracking": "anything"}
    assert post(f"{server.endpoint}/{bucket}", fields).status == 204
    assert keys_in(s3, bucket) == ["foo.txt"]


def test_fields_after_the_file_are_ignored(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k")
    response = post(url, fields, after=[("submit", "Upload"), ("x-amz-meta-late", "1")])
    assert response.status == 204, response.body
    assert s3.head_object(Bucket=bucket, Key="k")["Metadata"] == {}


def test_a_public_read_acl_field_makes_the_object_public(server: ServerProcess, s3: Any,
                                                         bucket: str) -> None:
    url, fields = presign(s3, bucket, "shared.txt", fields={"acl": "public-read"},
                          conditions=[{"acl": "public-read"}])
    assert post(url, fields).status == 204
    anonymous = rawhttp.send("GET", f"{server.endpoint}/{bucket}/shared.txt")
    assert (anonymous.status, anonymous.body) == (200, b"hello, world")


def test_an_unknown_acl_is_refused(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k", fields={"acl": "everyone-please"},
                          conditions=[{"acl": "everyone-please"}])
    response = post(url, fields)
    assert (response.status, error_of(response)[0]) == (400, "InvalidArgument")
    assert keys_in(s3, bucket) == []


def test_a_20_mib_file_streams_into_the_store(s3: Any, bucket: str) -> None:
    data = os.urandom(20 * 1024 * 1024)
    url, fields = presign(s3, bucket, "big.bin",
                          conditions=[["content-length-range", 1, 32 * 1024 * 1024]])
    response = post(url, fields, ("big.bin", data, "application/octet-stream"))
    assert response.status == 204, response.body
    assert response.headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    stored = s3.get_object(Bucket=bucket, Key="big.bin")
    assert hashlib.sha256(stored["Body"].read()).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("size", [100, 100_000], ids=["inline", "blob"])
def test_content_md5_and_checksum_fields_are_verified(server: ServerProcess, s3: Any,
                                                      bucket: str, size: int) -> None:
    data = os.urandom(size)
    good_md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
    url, fields = presign(s3, bucket, "k", fields={"Content-MD5": good_md5,
                                                   "x-amz-checksum-sha256": sha},
                          conditions=[["starts-with", "$Content-MD5", ""],
                                      ["starts-with", "$x-amz-checksum-sha256", ""]])
    response = post(url, fields, ("k", data, "text/plain"))
    assert response.status == 204, response.body
    assert response.headers["x-amz-checksum-sha256"] == sha
    before = blob_files(server)
    bad = post(url, fields, ("k", os.urandom(size), "text/plain"))
    assert (bad.status, error_of(bad)[0]) == (400, "BadDigest")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == data
    assert blob_files(server) <= before  # the refused upload's blob was removed at once


def test_tags_come_from_a_tagging_document(s3: Any, bucket: str) -> None:
    tagging = ("<Tagging><TagSet><Tag><Key>team</Key><Value>blue</Value></Tag>"
               "</TagSet></Tagging>")
    url, fields = presign(s3, bucket, "k", fields={"tagging": tagging},
                          conditions=[["starts-with", "$tagging", ""]])
    assert post(url, fields).status == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [
        {"Key": "team", "Value": "blue"}]


def test_an_anonymous_form_writes_only_to_a_bucket_everyone_may_write(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    fields = {"key": "anon.txt", "Content-Type": "text/plain"}
    response = post(f"{server.endpoint}/{bucket}", fields)
    assert (response.status, error_of(response)) == (403, ("AccessDenied", "Access Denied"))
    assert keys_in(s3, bucket) == []
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    response = post(f"{server.endpoint}/{bucket}", fields)
    assert response.status == 204, response.body
    assert s3.get_object(Bucket=bucket, Key="anon.txt")["Body"].read() == b"hello, world"


def test_a_form_signed_for_a_missing_bucket_is_no_such_bucket(s3: Any) -> None:
    name = f"missing-{uuid.uuid4().hex[:12]}"
    url, fields = presign(s3, name, "k")
    response = post(url, fields)
    assert (response.status, error_of(response)[0]) == (404, "NoSuchBucket")


# --- policies that refuse --------------------------------------------------------------------

def _refused(s3: Any, bucket: str, response: rawhttp.Response, status: int, code: str,
             message: str | None = None) -> None:
    assert response.status == status, response.body
    got_code, got_message = error_of(response)
    assert got_code == code
    if message is not None:
        assert got_message == message
    assert keys_in(s3, bucket) == []


def test_a_key_outside_the_starts_with_prefix_is_refused(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "uploads/${filename}")
    fields["key"] = "elsewhere/x.txt"
    _refused(s3, bucket, post(url, fields), 403, "AccessDenied",
             'Invalid according to Policy: Policy Condition failed: '
             '["starts-with", "$key", "uploads/"]')


def test_an_eq_condition_that_fails_is_refused(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k", fields={"Content-Type": "text/html"},
                          conditions=[["eq", "$Content-Type", "text/plain"]])
    _refused(s3, bucket, post(url, fields), 403, "AccessDenied",
             'Invalid according to Policy: Policy Condition failed: '
             '["eq", "$Content-Type", "text/plain"]')


def test_every_item_of_a_content_type_list_must_match(s3: Any, bucket: str) -> None:
    condition = ["starts-with", "$Content-Type", "image/"]
    url, fields = presign(s3, bucket, "k", fields={"Content-Type": "image/png,text/html"},
                          conditions=[condition])
    _refused(s3, bucket, post(url, fields), 403, "AccessDenied")
    url, fields = presign(s3, bucket, "k", fields={"Content-Type": "image/png,image/gif"},
                          conditions=[condition])
    assert post(url, fields).status == 204


def test_a_condition_on_an_absent_field_fails_even_with_an_empty_prefix(s3: Any,
                                                                       bucket: str) -> None:
    url, fields = presign(s3, bucket, "k", conditions=[["starts-with", "$Content-Type", ""]])
    _refused(s3, bucket, post(url, fields), 403, "AccessDenied",
             'Invalid according to Policy: Policy Condition failed: '
             '["starts-with", "$Content-Type", ""]')


@pytest.mark.parametrize(("size", "code", "message", "bound"), [
    (4, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
     ("MinSizeAllowed", "5")),
    (11, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
     ("MaxSizeAllowed", "10")),
])
def test_a_file_outside_the_content_length_range_is_refused(
        s3: Any, bucket: str, size: int, code: str, message: str,
        bound: tuple[str, str]) -> None:
    url, fields = presign(s3, bucket, "k", conditions=[["content-length-range", 5, 10]])
    response = post(url, fields, ("k", b"x" * size, "text/plain"))
    _refused(s3, bucket, response, 400, code, message)
    root = ElementTree.fromstring(response.body)
    assert root.findtext("ProposedSize") == str(size)
    assert root.findtext(bound[0]) == bound[1]
    for edge in (5, 10):  # the bounds are inclusive
        assert post(url, fields, ("k", b"x" * edge, "text/plain")).status == 204


def test_a_large_file_past_the_range_is_refused_and_leaves_no_blob(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k", conditions=[["content-length-range", 0, 100_000]])
    before = blob_files(server)
    response = post(url, fields, ("k", b"x" * 3_000_000, "text/plain"))
    _refused(s3, bucket, response, 400, "EntityTooLarge")
    # Refused once past the range, but read to the end so the error tells the real size.
    assert ElementTree.fromstring(response.body).findtext("ProposedSize") == "3000000"
    assert blob_files(server) <= before  # (the collector may free others meanwhile)
    assert temp_files(server) == []


def test_a_field_no_condition_names_is_refused(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k")
    fields["x-amz-meta-Note"] = "sneaky"
    _refused(s3, bucket, post(url, fields), 403, "AccessDenied",
             "Invalid according to Policy: Extra input fields: x-amz-meta-note")


def test_a_policy_must_name_the_bucket(server: ServerProcess, s3: Any, bucket: str) -> None:
    policy = encode_policy({"expiration": expiration(), "conditions": [{"key": "k"}]})
    response = post(f"{server.endpoint}/{bucket}", {"key": "k", **v2_fields(policy)})
    _refused(s3, bucket, response, 403, "AccessDenied",
             "Invalid according to Policy: Extra input fields: bucket")


def test_a_form_signed_for_another_bucket_is_refused(s3: Any, bucket: str) -> None:
    other = f"other-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=other)
    try:
        url, fields = presign(s3, other, "k")
        response = post(url.rsplit("/", 1)[0] + f"/{bucket}", fields)
        _refused(s3, bucket, response, 403, "AccessDenied",
                 'Invalid according to Policy: Policy Condition failed: '
                 f'["eq", "$bucket", "{other}"]')
    finally:
        s3.delete_bucket(Bucket=other)


def test_an_expired_policy_is_refused(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k", expires=-5)
    _refused(s3, bucket, post(url, fields), 403, "AccessDenied",
             "Invalid according to Policy: Policy expired.")


def test_a_tampered_signature_is_refused(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k")
    signature = fields["x-amz-signature"]
    fields["x-amz-signature"] = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    response = post(url, fields)
    _refused(s3, bucket, response, 403, "SignatureDoesNotMatch")
    root = ElementTree.fromstring(response.body)
    assert root.findtext("StringToSign") == fields["policy"]
    assert root.findtext("AWSAccessKeyId") == ACCESS_KEY


def test_a_tampered_policy_is_refused(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "uploads/${filename}")
    document = json.loads(base64.b64decode(fields["policy"]))
    document["conditions"][1] = ["starts-with", "$key", ""]
    fields["policy"] = encode_policy(document)
    fields["key"] = "anywhere"
    _refused(s3, bucket, post(url, fields), 403, "SignatureDoesNotMatch")


def test_an_unknown_access_key_is_refused(server: ServerProcess, s3: Any, bucket: str) -> None:
    stranger = make_client(server.endpoint, "CHUNKNOWNKEY00000001", SECRET_KEY)
    url, fields = presign(stranger, bucket, "k")
    _refused(s3, bucket, post(url, fields), 403, "InvalidAccessKeyId")


def test_the_wrong_secret_is_refused(server: ServerProcess, s3: Any, bucket: str) -> None:
    forger = make_client(server.endpoint, ACCESS_KEY, "not-the-secret")
    url, fields = presign(forger, bucket, "k")
    _refused(s3, bucket, post(url, fields), 403, "SignatureDoesNotMatch")


def test_a_sigv2_form_with_a_wrong_signature_is_refused(server: ServerProcess, s3: Any,
                                                        bucket: str) -> None:
    policy = encode_policy({"expiration": expiration(), "conditions": [
        {"bucket": bucket}, {"key": "k"}]})
    fields = {"key": "k", **v2_fields(policy, secret="wrong")}
    _refused(s3, bucket, post(f"{server.endpoint}/{bucket}", fields), 403,
             "SignatureDoesNotMatch")


@pytest.mark.parametrize(("drop", "named"), [
    (("x-amz-signature",), "X-Amz-Signature"),
    (("x-amz-algorithm", "x-amz-credential"), "X-Amz-Algorithm"),
])
def test_a_missing_signature_field_is_named(s3: Any, bucket: str, drop: tuple[str, ...],
                                            named: str) -> None:
    url, fields = presign(s3, bucket, "k")
    for name in drop:
        del fields[name]
    response = post(url, fields)
    _refused(s3, bucket, response, 400, "InvalidArgument",
             f"Bucket POST must contain a field named '{named}'.  If it is specified, "
             "please check the order of the fields.")
    assert ElementTree.fromstring(response.body).findtext("ArgumentName") == named


def test_a_policy_that_is_not_json_is_an_invalid_policy_document(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    amz_date = now_amz()
    policy = encode_policy('{"expiration": "2030-01-01T00:00:00Z", "conditions": [')
    fields = {"key": "k", **v4_fields(policy, amz_date)}
    _refused(s3, bucket, post(f"{server.endpoint}/{bucket}", fields), 400,
             "InvalidPolicyDocument", "Invalid Policy: Invalid JSON.")


def test_a_hand_signed_sigv4_form_uploads(server: ServerProcess, s3: Any, bucket: str) -> None:
    amz_date = now_amz()
    policy = v4_policy(bucket, {"key": "v4.txt"}, amz_date=amz_date)
    fields = {"key": "v4.txt", **v4_fields(policy, amz_date)}
    assert post(f"{server.endpoint}/{bucket}", fields).status == 204
    assert keys_in(s3, bucket) == ["v4.txt"]


# --- forms that are not well-formed ----------------------------------------------------------

def test_a_body_that_is_not_multipart_is_a_failed_precondition(server: ServerProcess,
                                                               bucket: str) -> None:
    response = rawhttp.send("POST", f"{server.endpoint}/{bucket}",
                            {"Content-Type": "application/x-www-form-urlencoded"}, b"key=k")
    assert (response.status, error_of(response)[0]) == (412, "PreconditionFailed")
    condition = ElementTree.fromstring(response.body).findtext("Condition")
    assert condition == "Bucket POST must be of the enclosure-type multipart/form-data"


def test_a_multipart_type_without_a_boundary_is_malformed(server: ServerProcess,
                                                         bucket: str) -> None:
    response = rawhttp.send("POST", f"{server.endpoint}/{bucket}",
                            {"Content-Type": "multipart/form-data"}, b"--x\r\n")
    assert response.status == 400
    assert error_of(response) == (
        "MalformedPOSTRequest",
        "The body of your POST request is not well-formed multipart/form-data.")


def test_a_key_after_the_file_is_missing(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k")
    response = post(url, fields, file_first=True)
    _refused(s3, bucket, response, 400, "InvalidArgument",
             "Bucket POST must contain a field named 'key'.  If it is specified, please "
             "check the order of the fields.")


def test_a_form_without_a_file_is_refused(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k")
    response = post(url, fields, None)
    _refused(s3, bucket, response, 400, "InvalidArgument",
             "POST requires exactly one file upload per request.")


def test_fields_over_20_kb_before_the_file_are_refused(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k")
    fields["x-ignore-padding"] = "p" * 21_000
    response = post(url, fields)
    _refused(s3, bucket, response, 400, "MaxPostPreDataLengthExceeded")
    assert ElementTree.fromstring(response.body).findtext("MaxPostPreDataLengthBytes") == "20480"


def test_a_body_cut_off_inside_the_file_stores_nothing(s3: Any, bucket: str) -> None:
    url, fields = presign(s3, bucket, "k")
    body, content_type = encode_multipart_formdata(
        [*fields.items(), ("file", ("f", b"y" * 200_000, "text/plain"))])
    cut = body[:body.rindex(b"y") + 1]  # the whole file, but no delimiter after it
    response = rawhttp.send("POST", url, {"Content-Type": content_type}, cut)
    _refused(s3, bucket, response, 400, "MalformedPOSTRequest")


# --- the form reader and the policy, in process ----------------------------------------------

async def _pieces(body: bytes, size: int, served: list[int]) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        served.append(start)
        yield body[start:start + size]


def test_the_reader_yields_the_file_while_the_body_still_arrives() -> None:
    data = os.urandom(8 * 1024 * 1024)
    body, content_type = encode_multipart_formdata(
        [("key", "k"), ("file", ("f.bin", data, "application/octet-stream")),
         ("submit", "go")])
    chunk = 64 * 1024
    served: list[int] = []

    async def read() -> tuple[postform.FormHead, list[int], bytes]:
        reader = postform.FormReader(_pieces(body, chunk, served),
                                     postform.boundary_of(content_type))
        head = await reader.read_head()
        sizes: list[int] = []
        digest = hashlib.sha256()
        async for piece in reader.file_content():
            if not sizes:
                assert len(served) <= 2  # the first bytes come out long before the end
            sizes.append(len(piece))
            digest.update(piece)
        await reader.skip_rest()
        return head, sizes, digest.digest()

    head, sizes, digest = asyncio.run(read())
    assert head.fields == [("key", "k")]
    assert head.file == postform.FilePart("f.bin", "application/octet-stream")
    assert digest == hashlib.sha256(data).digest()
    assert max(sizes) <= chunk  # never more than one piece of the body held at once


@pytest.mark.parametrize("body", [
    b"--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk",  # no delimiter after
    b"--b\r\nContent-Type: text/plain\r\n\r\nk\r\n--b--\r\n",  # no Content-Disposition
    b"--b\r\nContent-Disposition: form-data\r\n\r\nk\r\n--b--\r\n",  # no name
    b"--bx\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\nk\r\n--b--\r\n",
    b"no delimiter at all",
])
def test_malformed_forms_are_malformed_post_requests(body: bytes) -> None:
    async def read() -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield body

        await postform.FormReader(chunks(), b"b").read_head()

    with pytest.raises(errors.MalformedPOSTRequest):
        asyncio.run(read())


def test_a_form_without_a_file_may_end_right_after_its_close_delimiter() -> None:
    async def read() -> postform.FormHead:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--b--"

        return await postform.FormReader(chunks(), b"b").read_head()

    assert asyncio.run(read()) == postform.FormHead([("key", "k")], None)


def test_a_part_may_be_preceded_by_a_preamble_and_padding() -> None:
    body = (b"preamble\r\n--b  \r\nContent-Disposition: form-data; name=\"Key\"\r\n\r\n"
            b"k\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; "
            b"filename=\"a%22b.txt\"\r\n\r\ndata\r\n--b--\r\n")

    async def read() -> tuple[postform.FormHead, bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            for byte in body:
                yield bytes([byte])  # one byte at a time: delimiters straddle every piece

        reader = postform.FormReader(chunks(), b"b")
        head = await reader.read_head()
        content = b"".join([piece async for piece in reader.file_content()])
        await reader.skip_rest()
        return head, content

    head, content = asyncio.run(read())
    assert head == postform.FormHead([("key", "k")], postform.FilePart("a%22b.txt", None))
    assert content == b"data"


async def _key(access_key: str) -> AccessKey | None:
    if access_key != "AKIAIOSFODNN7EXAMPLE":
        return None
    return AccessKey(access_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "account", 0.0)


# AWS's own example ("Example: Browser-Based Upload using HTTP POST (Using AWS Signature
# Version 4)"): its policy, base64, and the signature the page states.
AWS_EXAMPLE_POLICY = (
    "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAg"
    "ICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAi"
    "dXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25f"
    "cmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxf"
    "dXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQog"
    "ICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRl"
    "LWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAi"
    "Il0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMt"
    "ZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEy"
    "NTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9")
AWS_EXAMPLE_SIGNATURE = "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"


def test_the_signature_of_aws_s_own_example_verifies() -> None:
    fields = {"x-amz-algorithm": "AWS4-HMAC-SHA256",
              "x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request",
              "x-amz-date": "20151229T000000Z", "policy": AWS_EXAMPLE_POLICY,
              "x-amz-signature": AWS_EXAMPLE_SIGNATURE}
    signed = asyncio.run(postpolicy.authenticate(fields, _key))
    assert signed.principal.account_id == "account"
    assert signed.policy is not None
    assert signed.policy.expiration == datetime(2015, 12, 30, 12, tzinfo=UTC).timestamp()
    assert len(signed.policy.conditions) == 11
    with pytest.raises(errors.SignatureDoesNotMatch):
        asyncio.run(postpolicy.authenticate(
            {**fields, "x-amz-signature": "0" * 64}, _key))


@pytest.mark.parametrize(("document", "message"), [
    ('{"conditions": []}', "Invalid Policy: Policy missing expiration."),
    ('{"expiration": "2030-01-01T00:00:00Z"}', "Invalid Policy: Policy missing conditions."),
    ('{"expiration": "2030-01-01T00:00:00Z", "CONDITIONS": []}',
     "Invalid Policy: Unexpected: 'conditions'"),
    ('{"expiration": "2030-01-01 00:00:00+00:00", "conditions": []}',
     "Invalid Policy: Invalid 'expiration' value: '2030-01-01 00:00:00+00:00'"),
    ('{"expiration": "2030-01-01T00:00:00Z", "conditions": [{}]}',
     "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one "
     "property specified."),
    ('{"expiration": "2030-01-01T00:00:00Z", "conditions": [{"a": 1}]}',
     "Invalid Policy: Invalid Simple-Condition: value must be a string."),
    ('{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 0, 5.0]]}',
     "Invalid Policy: Invalid JSON."),
    ('{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", 0]]}',
     "Invalid Policy: Invalid content-length-range: wrong number of arguments."),
    ('{"expiration": "2030-01-01T00:00:00Z", "conditions": [["content-length-range", -1, 0]]}',
     "Invalid Policy: Invalid content-length-range: the bounds must not be negative."),
    ('{"expiration": "2030-01-01T00:00:00Z", "conditions": [[]]}',
     "Invalid Policy: Invalid Condition: missing operation identifier."),
    ('{"expiration": "2030-01-01T00:00:00Z", "conditions": [["ends-with", "$key", "x"]]}',
     "Invalid Policy: Invalid Condition: unknown operation 'ends-with'."),
])
def test_malformed_policies_are_invalid_policy_documents(document: str, message: str) -> None:
    with pytest.raises(errors.InvalidPolicyDocument) as raised:
        postpolicy.parse_policy(encode_policy(document))
    assert raised.value.message == message


def test_size_bounds_may_be_strings_and_other_strings_fail_the_condition() -> None:
    policy = postpolicy.parse_policy(encode_policy(
        {"expiration": "2030-01-01T00:00:00Z", "conditions": [
            {"bucket": "b"}, ["content-length-range", "5", "10"]]}))
    postpolicy.check_form(policy, {}, "b", 0.0)
    postpolicy.check_length(policy, 7)
    bad = postpolicy.parse_policy(encode_policy(
        {"expiration": "2030-01-01T00:00:00Z", "conditions": [
            {"bucket": "b"}, ["content-length-range", "test", "10"]]}))
    with pytest.raises(errors.AccessDenied) as raised:
        postpolicy.check_form(bad, {}, "b", 0.0)
    assert raised.value.message == ("Invalid according to Policy: Policy Condition failed: "
                                    '["content-length-range", "test", "10"]')


# --- a real browser --------------------------------------------------------------------------

@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static web server for the test's pages, on another port than cargohold (so the form
    posts across origins, as a web application's would)."""
    root = tmp_path / "site"
    root.mkdir()
    handler = partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_browser_uploads_through_an_html_form(s3: Any, bucket: str, tmp_path: Path,
                                                page_server: tuple[str, Path]) -> None:
    site, root = page_server
    done = f"{site}/done.html"
    url, fields = presign(s3, bucket, "browser/${filename}",
                          fields={"success_action_redirect": done, "Content-Type": "text/plain"},
                          conditions=[{"success_action_redirect": done},
                                      {"Content-Type": "text/plain"}])
    inputs = "\n".join(f'<input type="hidden" name="{html.escape(name)}" '
                       f'value="{html.escape(value)}">' for name, value in fields.items())
    content = "written by a browser \u2713\n"
    (root / "upload.html").write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"></head><body>
<p id="result">waiting</p>
<iframe name="upload"></iframe>
<form id="form" action="{html.escape(url)}" method="post" enctype="multipart/form-data"
      target="upload">
{inputs}
<input type="file" name="file" id="file">
<input type="submit" name="submit" value="Upload" id="upload">
</form>
<script>
  // What a user does: pick a file, then click Upload (the button's own field comes after
  // the file, where S3 ignores it).
  const files = new DataTransfer();
  files.items.add(new File([{json.dumps(content)}], "note.txt", {{type: "text/plain"}}));
  document.getElementById("file").files = files.files;
  document.getElementById("form").requestSubmit(document.getElementById("upload"));
</script>
</body></html>""", encoding="utf-8")
    (root / "done.html").write_text(
        # S3 redirects the form's frame here; the page (same origin) shows where it landed.
        '<!doctype html><html><body><script>'
        'parent.document.getElementById("result").textContent = "UPLOADED" + location.search;'
        "</script></body></html>", encoding="utf-8")
    result = headless_chromium(["--virtual-time-budget=15000", "--dump-dom", f"{site}/upload.html"],
                               tmp_path / "chromium", timeout=60)
    md5 = hashlib.md5(content.encode()).hexdigest()
    expected = f"UPLOADED?bucket={bucket}&amp;key=browser%2Fnote.txt&amp;etag=%22{md5}%22"
    assert expected in result.stdout, (result.stdout, result.stderr[-2000:])
    stored = s3.get_object(Bucket=bucket, Key="browser/note.txt")
    assert stored["Body"].read() == content.encode()
    assert stored["ContentType"] == "text/plain"


def test_a_form_asking_for_server_side_encryption_is_refused_not_stored_in_plaintext(
        s3: Any, bucket: str) -> None:
    sse = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
           "x-amz-server-side-encryption-customer-key": base64.b64encode(b"k" * 32).decode(),
           "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(
               hashlib.md5(b"k" * 32).digest()).decode()}
    url, fields = presign(s3, bucket, "secret.txt", fields=sse,
                          conditions=[{name: value} for name, value in sse.items()])
    response = post(url, fields, ("secret.txt", b"plaintext", "text/plain"))
    assert response.status == 501
    assert error_of(response)[0] == "NotImplemented"
    assert keys_in(s3, bucket) == []
