"""ACLs through the real server: canned ACLs, grant headers, AccessControlPolicy XML, and
what they let anonymous users and other accounts do."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import ServerProcess, admin, make_client
from tests.test_access_keys import OK, outcome
from tests.test_buckets import error_code, status

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def curl_status(url: str, *args: str) -> int:
    result = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *args, url],
                            capture_output=True, text=True, timeout=30)
    return int(result.stdout)


@pytest.fixture(scope="module")
def other(server: ServerProcess) -> tuple[str, str, Any]:
    """Another account: (canonical id, email, client)."""
    email = f"other-{uuid.uuid4().hex[:8]}@example.com"
    created = admin(server, "account", "create", f"other-{uuid.uuid4().hex[:8]}",
                    "--display-name", "Other Person", "--email", email)
    return created["canonical_id"], email, make_client(
        server.endpoint, created["access_key"], created["secret_key"])


def anonymous(server: ServerProcess) -> Any:
    """An unsigned boto3 client: every request anonymous."""
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="nyc3",
                        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))


def test_a_public_read_object_is_fetched_with_plain_curl_until_made_private(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="pub.txt", Body=b"for everyone", ACL="public-read")
    url = f"{server.endpoint}/{bucket}/pub.txt"
    result = subprocess.run(["curl", "-sf", url], capture_output=True, timeout=30)
    assert result.returncode == 0 and result.stdout == b"for everyone"
    s3.put_object_acl(Bucket=bucket, Key="pub.txt", ACL="private")
    assert curl_status(url) == 403
    assert curl_status(f"{server.endpoint}/{bucket}/") == 403  # the bucket was never public


def test_default_acls_show_the_owner_with_full_control(s3: Any, bucket: str) -> None:
    owner = s3.list_buckets()["Owner"]
    got = s3.get_bucket_acl(Bucket=bucket)
    assert got["Owner"]["ID"] == owner["ID"]
    assert got["Grants"] == [{"Grantee": {"ID": owner["ID"], "DisplayName": owner["DisplayName"],
                                          "Type": "CanonicalUser"},
                              "Permission": "FULL_CONTROL"}]
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object_acl(Bucket=bucket, Key="k")["Grants"] == got["Grants"]


def test_canned_bucket_acls_decide_what_anonymous_users_may_do(server: ServerProcess,
                                                               s3: Any) -> None:
    anon = anonymous(server)
    name = f"canned-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name, ACL="public-read")
    s3.put_object(Bucket=name, Key="private-object", Body=b"x")
    grants = s3.get_bucket_acl(Bucket=name)["Grants"]
    assert {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"} in grants
    decisions = {
        "list": outcome(lambda: anon.list_objects_v2(Bucket=name)),
        "get an object that is not public": outcome(
            lambda: anon.get_object(Bucket=name, Key="private-object")),
        "put": outcome(lambda: anon.put_object(Bucket=name, Key="anon", Body=b"a")),
        "read the ACL": outcome(lambda: anon.get_bucket_acl(Bucket=name)),
    }
    assert decisions == {"list": OK, "get an object that is not public": "AccessDenied",
                         "put": "AccessDenied", "read the ACL": "AccessDenied"}
    s3.put_bucket_acl(Bucket=name, ACL="public-read-write")
    assert outcome(lambda: anon.put_object(Bucket=name, Key="anon", Body=b"a")) == OK
    assert s3.get_object(Bucket=name, Key="anon")["Body"].read() == b"a"
    assert outcome(lambda: anon.delete_bucket(Bucket=name)) == "AccessDenied"
    s3.put_bucket_acl(Bucket=name, ACL="private")
    assert outcome(lambda: anon.list_objects_v2(Bucket=name)) == "AccessDenied"
    for key in ("private-object", "anon"):
        s3.delete_object(Bucket=name, Key=key)
    s3.delete_bucket(Bucket=name)


def test_authenticated_read_lets_any_account_read_but_not_anonymous_users(
        server: ServerProcess, s3: Any, bucket: str, other: tuple[str, str, Any]) -> None:
    _, _, client = other
    s3.put_object(Bucket=bucket, Key="members", Body=b"signed only",
                  ACL="authenticated-read")
    assert client.get_object(Bucket=bucket, Key="members")["Body"].read() == b"signed only"
    assert outcome(lambda: anonymous(server).get_object(Bucket=bucket, Key="members")) == (
        "AccessDenied")
    assert curl_status(f"{server.endpoint}/{bucket}/members") == 403


def test_grant_headers_by_id_and_email_give_another_account_exactly_that(
        s3: Any, bucket: str, other: tuple[str, str, Any]) -> None:
    other_id, other_email, client = other
    s3.put_object(Bucket=bucket, Key="by-id", Body=b"1", GrantRead=f'id="{other_id}"')
    s3.put_object(Bucket=bucket, Key="by-email", Body=b"2",
                  GrantRead=f'emailAddress="{other_email}"', GrantReadACP=f"id={other_id}")
    assert client.get_object(Bucket=bucket, Key="by-id")["Body"].read() == b"1"
    assert client.get_object(Bucket=bucket, Key="by-email")["Body"].read() == b"2"
    assert outcome(lambda: client.get_object_acl(Bucket=bucket, Key="by-id")) == "AccessDenied"
    grants = client.get_object_acl(Bucket=bucket, Key="by-email")["Grants"]
    assert {"Grantee": {"ID": other_id, "DisplayName": "Other Person", "Type": "CanonicalUser"},
            "Permission": "READ"} in grants
    assert outcome(lambda: client.put_object_acl(Bucket=bucket, Key="by-email",
                                                 ACL="public-read")) == "AccessDenied"
    assert outcome(lambda: client.put_object(Bucket=bucket, Key="by-id",
                                             Body=b"overwrite")) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="by-id")["Body"].read() == b"1"


def test_an_access_control_policy_body_round_trips(s3: Any, bucket: str,
                                                   other: tuple[str, str, Any]) -> None:
    other_id, _, client = other
    s3.put_object(Bucket=bucket, Key="xml", Body=b"xml acl")
    owner = s3.get_object_acl(Bucket=bucket, Key="xml")["Owner"]
    policy = {"Owner": {"ID": owner["ID"]}, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"Type": "CanonicalUser", "ID": other_id}, "Permission": "READ"},
        {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ_ACP"},
    ]}
    s3.put_object_acl(Bucket=bucket, Key="xml", AccessControlPolicy=policy)
    grants = s3.get_object_acl(Bucket=bucket, Key="xml")["Grants"]
    assert [(g["Grantee"].get("ID") or g["Grantee"]["URI"], g["Permission"])
            for g in grants] == [(owner["ID"], "FULL_CONTROL"), (other_id, "READ"),
                                 (ALL_USERS, "READ_ACP")]
    assert client.get_object(Bucket=bucket, Key="xml")["Body"].read() == b"xml acl"


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"ACL": "public-read", "GrantRead": f'uri="{ALL_USERS}"'}, "InvalidRequest"),
    ({"ACL": "world-writable"}, "InvalidArgument"),
    ({"GrantRead": "fakekey=1234"}, "InvalidArgument"),
    ({"GrantRead": 'uri="http://acs.amazonaws.com/groups/global/Nobody"'}, "InvalidArgument"),
    ({"GrantRead": 'emailAddress="nobody@nowhere.example"'}, "UnresolvableGrantByEmailAddress"),
])
def test_bad_acl_headers_get_s3_errors_and_store_nothing(s3: Any, bucket: str,
                                                         kwargs: dict[str, str],
                                                         code: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="refused", Body=b"x", **kwargs)
    assert error_code(exc) == code and status(exc) == 400
    assert outcome(lambda: s3.head_object(Bucket=bucket, Key="refused")) == "404"


def test_malformed_acl_xml_is_malformed_acl_error_and_keeps_the_old_acl(
        s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"v", ACL="public-read")

    def replace_body(request: Any, **kwargs: Any) -> None:
        request.data = b"<AccessControlPolicy><Owner></Owner><oops>"
        for name in [h for h in request.headers if h.lower().startswith(
                ("content-md5", "x-amz-checksum-", "x-amz-sdk-checksum"))]:
            del request.headers[name]

    s3.meta.events.register_first("before-sign.s3.PutObjectAcl", replace_body)
    try:
        with pytest.raises(ClientError) as exc:
            s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy={
                "Owner": {"ID": "x"}, "Grants": []})
    finally:
        s3.meta.events.unregister("before-sign.s3.PutObjectAcl", replace_body)
    assert error_code(exc) == "MalformedACLError"
    grants = s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]
    assert any(g["Grantee"].get("URI") == ALL_USERS for g in grants)


def test_a_copy_gets_its_own_acl_and_a_multipart_upload_keeps_the_one_it_asked_for(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="public-src", Body=b"src", ACL="public-read")
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "public-src"})
    assert curl_status(f"{server.endpoint}/{bucket}/public-src") == 200
    assert curl_status(f"{server.endpoint}/{bucket}/copy") == 403
    s3.copy_object(Bucket=bucket, Key="public-copy", ACL="public-read",
                   CopySource={"Bucket": bucket, "Key": "public-src"})
    assert curl_status(f"{server.endpoint}/{bucket}/public-copy") == 200
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ACL="public-read")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1,
                          Body=b"part")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert curl_status(f"{server.endpoint}/{bucket}/mp") == 200


def test_an_empty_acl_header_counts_as_none(server: ServerProcess, s3: Any, bucket: str) -> None:
    from tests import rawhttp

    url = f"{server.endpoint}/{bucket}/plain"
    headers = {"x-amz-acl": ""}
    response = rawhttp.send("PUT", url, {**rawhttp.sign_v4("PUT", url, headers, b"x"),
                                         **headers}, b"x")
    assert response.status == 200, response.body
    grants = s3.get_object_acl(Bucket=bucket, Key="plain")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
