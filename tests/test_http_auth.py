"""Authentication and HTTP behaviour end to end, over raw HTTP against the real server."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import subprocess
import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import pytest
from botocore.exceptions import ClientError

from tests import rawhttp
from tests.conftest import ACCESS_KEY, SECRET_KEY, ServerProcess, make_client


def xml_code(body: bytes) -> str:
    found = re.search(rb"<Code>([^<]*)</Code>", body)
    return found.group(1).decode() if found else ""


def test_errors_are_s3_xml_with_the_request_id_of_the_header(server: ServerProcess) -> None:
    url = f"{server.endpoint}/no-such-bucket-xyz/key"
    resp = rawhttp.send("GET", url, rawhttp.sign_v4("GET", url))
    assert resp.status == 404
    assert xml_code(resp.body) == "NoSuchBucket"
    request_id = resp.headers["x-amz-request-id"]
    assert f"<RequestId>{request_id}</RequestId>".encode() in resp.body
    assert b"<Resource>/no-such-bucket-xyz/key</Resource>" in resp.body
    assert resp.headers["x-amz-id-2"]


def test_successful_responses_carry_request_ids(server: ServerProcess) -> None:
    url = f"{server.endpoint}/"
    resp = rawhttp.send("GET", url, rawhttp.sign_v4("GET", url))
    assert resp.status == 200
    assert re.fullmatch(r"[0-9A-F]{16}", resp.headers["x-amz-request-id"])


@pytest.mark.parametrize(("method", "query"), [
    ("GET", "?replication"), ("PUT", "?analytics&id=x"), ("GET", "?inventory"),
    ("POST", "?restore"), ("PATCH", ""),
])
def test_unimplemented_operations_answer_501_not_implemented_xml(
        server: ServerProcess, s3: Any, bucket: str, method: str, query: str) -> None:
    key_path = "/obj" if method == "POST" else ""
    url = f"{server.endpoint}/{bucket}{key_path}{query}"
    resp = rawhttp.send(method, url, rawhttp.sign_v4(method, url))
    assert resp.status == 501
    assert xml_code(resp.body) == "NotImplemented"


def test_anonymous_requests_are_denied(server: ServerProcess, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    for method in ("GET", "HEAD", "PUT", "DELETE"):
        resp = rawhttp.send(method, f"{server.endpoint}/{bucket}/private")
        assert resp.status == 403
        if method != "HEAD":
            assert xml_code(resp.body) == "AccessDenied"
    assert s3.get_object(Bucket=bucket, Key="private")["Body"].read() == b"secret"


def test_unknown_access_key_is_invalid_access_key_id(server: ServerProcess) -> None:
    url = f"{server.endpoint}/"
    headers = rawhttp.sign_v4("GET", url, creds=rawhttp.credentials("NOSUCHKEY", "x" * 40))
    resp = rawhttp.send("GET", url, headers)
    assert resp.status == 403
    assert xml_code(resp.body) == "InvalidAccessKeyId"


def test_wrong_secret_is_signature_does_not_match(server: ServerProcess) -> None:
    url = f"{server.endpoint}/"
    headers = rawhttp.sign_v4("GET", url,
                              creds=rawhttp.credentials(secret_key="wrong-secret"))
    resp = rawhttp.send("GET", url, headers)
    assert resp.status == 403
    assert xml_code(resp.body) == "SignatureDoesNotMatch"


def test_tampered_body_is_a_content_sha256_mismatch_and_stores_nothing(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    url = f"{server.endpoint}/{bucket}/tampered"
    headers = rawhttp.sign_v4("PUT", url, body=b"the signed body")
    resp = rawhttp.send("PUT", url, headers, body=b"another  body!!")
    assert resp.status == 400
    assert xml_code(resp.body) == "XAmzContentSHA256Mismatch"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_tampered_large_body_is_refused_and_the_old_object_survives(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    # Above the inline size, the payload hash is computed in the blob writer's thread.
    s3.put_object(Bucket=bucket, Key="big-victim", Body=b"original")
    url = f"{server.endpoint}/{bucket}/big-victim"
    signed = os.urandom(300_000)
    headers = rawhttp.sign_v4("PUT", url, body=signed)
    resp = rawhttp.send("PUT", url, headers, body=signed[:-1] + b"!")
    assert resp.status == 400
    assert xml_code(resp.body) == "XAmzContentSHA256Mismatch"
    assert s3.get_object(Bucket=bucket, Key="big-victim")["Body"].read() == b"original"
    assert rawhttp.send("PUT", url, headers, body=signed).status == 200
    assert s3.get_object(Bucket=bucket, Key="big-victim")["Body"].read() == signed


def test_tampered_path_or_header_is_refused(server: ServerProcess, bucket: str) -> None:
    url = f"{server.endpoint}/{bucket}/a"
    headers = rawhttp.sign_v4("PUT", url, headers={"x-amz-meta-a": "1"}, body=b"x")
    resp = rawhttp.send("PUT", f"{server.endpoint}/{bucket}/b", headers, body=b"x")
    assert xml_code(resp.body) == "SignatureDoesNotMatch"
    headers["x-amz-meta-a"] = "2"
    resp = rawhttp.send("PUT", url, headers, body=b"x")
    assert xml_code(resp.body) == "SignatureDoesNotMatch"


def test_clock_skew_over_15_minutes_is_refused(server: ServerProcess) -> None:
    url = f"{server.endpoint}/"
    skewed = datetime.now(UTC) - timedelta(minutes=20)
    resp = rawhttp.send("GET", url, rawhttp.sign_v4("GET", url, when=skewed))
    assert resp.status == 403
    assert xml_code(resp.body) == "RequestTimeTooSkewed"
    nearly = datetime.now(UTC) - timedelta(minutes=10)
    assert rawhttp.send("GET", url, rawhttp.sign_v4("GET", url, when=nearly)).status == 200


def test_malformed_authorization_header_is_refused(server: ServerProcess) -> None:
    url = f"{server.endpoint}/"
    headers = rawhttp.sign_v4("GET", url)
    headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=garbage"
    resp = rawhttp.send("GET", url, headers)
    assert resp.status == 400
    assert xml_code(resp.body) == "AuthorizationHeaderMalformed"


def test_missing_content_sha256_is_a_missing_security_header(server: ServerProcess) -> None:
    url = f"{server.endpoint}/"
    headers = {k: v for k, v in rawhttp.sign_v4("GET", url).items()
               if k.lower() != "x-amz-content-sha256"}
    resp = rawhttp.send("GET", url, headers)
    assert resp.status == 400
    assert xml_code(resp.body) == "MissingSecurityHeader"


def test_any_region_in_the_credential_scope_is_accepted(server: ServerProcess,
                                                        bucket: str) -> None:
    other = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                         aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    other.put_object(Bucket=bucket, Key="east", Body=b"x")
    assert other.get_object(Bucket=bucket, Key="east")["Body"].read() == b"x"


def test_sigv2_header_auth_works_for_put_and_get(server: ServerProcess, bucket: str) -> None:
    url = f"{server.endpoint}/{bucket}/v2%20key"
    headers = rawhttp.sign_v2("PUT", url, {"Content-Type": "text/plain",
                                           "x-amz-meta-k": "v"})
    assert rawhttp.send("PUT", url, headers, body=b"v2 body").status == 200
    resp = rawhttp.send("GET", url, rawhttp.sign_v2("GET", url))
    assert resp.status == 200
    assert resp.body == b"v2 body"
    bad = rawhttp.sign_v2("GET", url, creds=rawhttp.credentials(secret_key="nope"))
    assert xml_code(rawhttp.send("GET", url, bad).body) == "SignatureDoesNotMatch"


def _curl(url: str) -> tuple[int, bytes]:
    out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", url],
                         capture_output=True, check=True, timeout=30).stdout
    body, _, code = out.rpartition(b"\n")
    return int(code), body


@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_presigned_get_works_with_curl_and_tampering_is_refused(
        server: ServerProcess, s3: Any, bucket: str, signature_version: str) -> None:
    s3.put_object(Bucket=bucket, Key="shared file.txt", Body=b"presigned content")
    signer = make_client(server.endpoint, signature_version=signature_version)
    url = signer.generate_presigned_url("get_object", ExpiresIn=300,
                                        Params={"Bucket": bucket, "Key": "shared file.txt"})
    assert _curl(url) == (200, b"presigned content")
    tampered = url.replace("shared%20file.txt", "shared%20file.tx")
    code, body = _curl(tampered)
    assert code == 403
    assert xml_code(body) == "SignatureDoesNotMatch"
    sig_param = "X-Amz-Signature=" if signature_version == "s3v4" else "Signature="
    bad_sig = re.sub(sig_param + r"[^&]+", sig_param + "00" * 32, url)
    assert _curl(bad_sig)[0] == 403


@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_expired_presigned_url_is_access_denied(server: ServerProcess, s3: Any, bucket: str,
                                                signature_version: str) -> None:
    s3.put_object(Bucket=bucket, Key="expiring", Body=b"x")
    signer = make_client(server.endpoint, signature_version=signature_version)
    url = signer.generate_presigned_url("get_object", ExpiresIn=1,
                                        Params={"Bucket": bucket, "Key": "expiring"})
    time.sleep(2.2)
    code, body = _curl(url)
    assert code == 403
    assert xml_code(body) == "AccessDenied"


def test_presigned_put_uploads_with_curl(server: ServerProcess, s3: Any, bucket: str,
                                         tmp_path: Any) -> None:
    url = s3.generate_presigned_url("put_object", ExpiresIn=300,
                                    Params={"Bucket": bucket, "Key": "up"})
    source = tmp_path / "up.bin"
    source.write_bytes(b"uploaded via presigned PUT")
    subprocess.run(["curl", "-sf", "-X", "PUT", "--upload-file", str(source), url],
                   check=True, timeout=30)
    assert s3.get_object(Bucket=bucket, Key="up")["Body"].read() == source.read_bytes()


def test_presigned_put_with_empty_body_checksum_in_query_accepts_any_body(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    # The JS SDK signs x-amz-checksum-crc32 of an empty body into presigned PUT URLs, in
    # the query string: signed, but not a checksum of the body.
    url = rawhttp.presign_v4("PUT", f"{server.endpoint}/{bucket}/js"
                             "?x-amz-checksum-crc32=AAAAAA%3D%3D&x-id=PutObject")
    resp = rawhttp.send("PUT", url, body=b"real body")
    assert resp.status == 200, resp.body
    assert s3.get_object(Bucket=bucket, Key="js")["Body"].read() == b"real body"


def test_lower_case_x_amz_headers_moved_into_a_presigned_url_count_as_headers(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    # Signers (the JS SDK, botocore's SigV2 presigner) move x-amz-* headers into the query;
    # S3 takes them as the headers they were. A header actually sent wins.
    # Query parameters are case-sensitive: only the lower-case spelling signers write counts
    # (the one that picks a copy operation too).
    query = urlencode({"x-amz-meta-colour": "blue", "x-amz-tagging": "team=storage",
                       "x-amz-website-redirect-location": "/elsewhere",
                       "X-Amz-Meta-Shade": "dark"})
    url = rawhttp.presign_v4("PUT", f"{server.endpoint}/{bucket}/hoisted?{query}")
    resp = rawhttp.send("PUT", url, {"x-amz-meta-colour": "green"}, b"body")
    assert resp.status == 200, resp.body
    head = s3.head_object(Bucket=bucket, Key="hoisted")
    assert head["Metadata"] == {"colour": "green"}
    assert head["WebsiteRedirectLocation"] == "/elsewhere"
    assert s3.get_object_tagging(Bucket=bucket, Key="hoisted")["TagSet"] == [
        {"Key": "team", "Value": "storage"}]

    checksum = base64.b64encode(zlib.crc32(b"body").to_bytes(4, "big")).decode()
    s3.put_object(Bucket=bucket, Key="summed", Body=b"body", ChecksumCRC32=checksum)
    for extra, expected in (("", None), ("?x-amz-checksum-mode=ENABLED", checksum)):
        url = rawhttp.presign_v4("GET", f"{server.endpoint}/{bucket}/summed{extra}")
        resp = rawhttp.send("GET", url)
        assert resp.status == 200 and resp.body == b"body"
        assert resp.headers.get("x-amz-checksum-crc32") == expected


@pytest.mark.parametrize("chunk_size", [8192, 65536])
def test_signed_aws_chunked_upload_is_decoded_and_verified(
        server: ServerProcess, s3: Any, bucket: str, chunk_size: int) -> None:
    payload = os.urandom(200_000)
    url = f"{server.endpoint}/{bucket}/chunked"
    headers, body = rawhttp.chunked_upload(url, payload, chunk_size=chunk_size)
    resp = rawhttp.send("PUT", url, headers, body)
    assert resp.status == 200, resp.body
    assert resp.headers["etag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    assert s3.get_object(Bucket=bucket, Key="chunked")["Body"].read() == payload


def test_chunked_upload_detected_without_content_encoding(server: ServerProcess, s3: Any,
                                                          bucket: str) -> None:
    payload = os.urandom(70_000)
    url = f"{server.endpoint}/{bucket}/no-encoding"
    headers, body = rawhttp.chunked_upload(url, payload, content_encoding=False)
    resp = rawhttp.send("PUT", url, headers, body)
    assert resp.status == 200, resp.body
    got = s3.get_object(Bucket=bucket, Key="no-encoding")
    assert got["Body"].read() == payload
    assert "ContentEncoding" not in got


def test_bad_chunk_signature_mid_stream_stores_nothing(server: ServerProcess, s3: Any,
                                                       bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="victim", Body=b"original")
    url = f"{server.endpoint}/{bucket}/victim"
    headers, body = rawhttp.chunked_upload(url, os.urandom(300_000), tamper_chunk=2)
    resp = rawhttp.send("PUT", url, headers, body)
    assert resp.status == 403
    assert xml_code(resp.body) == "SignatureDoesNotMatch"
    assert s3.get_object(Bucket=bucket, Key="victim")["Body"].read() == b"original"


@pytest.mark.parametrize("signed", [True, False])
def test_chunked_upload_with_checksum_trailer_is_verified(server: ServerProcess, s3: Any,
                                                          bucket: str, signed: bool) -> None:
    payload = os.urandom(100_000)
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
    url = f"{server.endpoint}/{bucket}/trailer"
    headers, body = rawhttp.chunked_upload(url, payload, signed=signed,
                                           trailer=("x-amz-checksum-crc32", crc))
    resp = rawhttp.send("PUT", url, headers, body)
    assert resp.status == 200, resp.body
    head = s3.head_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc
    wrong = base64.b64encode(zlib.crc32(b"x").to_bytes(4, "big")).decode()
    headers, body = rawhttp.chunked_upload(f"{server.endpoint}/{bucket}/trailer2", payload,
                                           signed=signed,
                                           trailer=("x-amz-checksum-crc32", wrong))
    resp = rawhttp.send("PUT", f"{server.endpoint}/{bucket}/trailer2", headers, body)
    assert resp.status == 400
    assert xml_code(resp.body) == "BadDigest"


def test_truncated_chunked_body_is_incomplete(server: ServerProcess, s3: Any,
                                              bucket: str) -> None:
    url = f"{server.endpoint}/{bucket}/short"
    payload = os.urandom(50_000)
    headers, body = rawhttp.chunked_upload(url, payload, decoded_length=60_000)
    resp = rawhttp.send("PUT", url, headers, body)
    assert resp.status == 400
    assert xml_code(resp.body) == "IncompleteBody"


def test_expect_100_continue_refusal_arrives_before_the_body(server: ServerProcess,
                                                            bucket: str) -> None:
    url = f"{server.endpoint}/{bucket}/expect"
    headers = rawhttp.sign_v4("PUT", url, body=b"x" * 10,
                              creds=rawhttp.credentials(secret_key="wrong"))
    with rawhttp.open_request(server.port, "PUT", f"/{bucket}/expect", headers,
                              ["Expect: 100-Continue", "Content-Length: 10"]) as sock:
        first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 403"), first[:100]


def test_a_refused_upload_closes_its_connection_so_no_body_is_read_as_a_request(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    # The client waits for "100 Continue", gets the 403 instead and never sends the body;
    # a server that kept the connection open would read the next request as that body.
    url = f"{server.endpoint}/{bucket}/refused"
    headers = rawhttp.sign_v4("PUT", url, body=b"0123456789")
    headers["Authorization"] = headers["Authorization"][:-4] + "0000"  # a wrong signature
    with rawhttp.open_request(server.port, "PUT", f"/{bucket}/refused", headers,
                              ["Expect: 100-continue", "Content-Length: 10"]) as sock:
        response = b""
        while chunk := sock.recv(65536):
            response += chunk  # read to EOF: the server must close
    head = response.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 403")
    assert b"connection: close" in head
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="refused")


def test_expect_100_continue_is_answered_after_authentication(server: ServerProcess, s3: Any,
                                                             bucket: str) -> None:
    body = b"y" * 10
    url = f"{server.endpoint}/{bucket}/expect-ok"
    headers = rawhttp.sign_v4("PUT", url, body=body)
    with rawhttp.open_request(server.port, "PUT", f"/{bucket}/expect-ok", headers,
                              ["Expect: 100-continue", "Content-Length: 10"]) as sock:
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        final = sock.recv(65536)
    assert final.startswith(b"HTTP/1.1 200")
    assert s3.get_object(Bucket=bucket, Key="expect-ok")["Body"].read() == body


def test_body_shorter_than_content_length_is_incomplete(server: ServerProcess, s3: Any,
                                                        bucket: str) -> None:
    body = b"z" * 100
    url = f"{server.endpoint}/{bucket}/short-plain"
    headers = rawhttp.sign_v4("PUT", url, body=body, payload_hash="UNSIGNED-PAYLOAD")
    with rawhttp.open_request(server.port, "PUT", f"/{bucket}/short-plain", headers,
                              ["Content-Length: 100"]) as sock:
        sock.sendall(body[:40])
        sock.shutdown(socket.SHUT_WR)
        sock.recv(65536)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_virtual_host_style_addressing_works(server: ServerProcess, s3: Any,
                                             bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="vh/key", Body=b"virtual")
    for host in (f"{bucket}.nyc3.localhost", f"{bucket}.localhost"):
        url = f"http://{host}:{server.port}/vh/key"
        headers = rawhttp.sign_v4("GET", url)
        headers["Host"] = f"{host}:{server.port}"
        resp = rawhttp.send("GET", f"{server.endpoint}/vh/key", headers)
        assert resp.status == 200, resp.body
        assert resp.body == b"virtual"
        headers = rawhttp.sign_v2("GET", url, auth_path=f"/{bucket}/vh/key")
        headers["Host"] = f"{host}:{server.port}"
        resp = rawhttp.send("GET", f"{server.endpoint}/vh/key", headers)
        assert resp.status == 200, resp.body


def test_keys_with_reserved_characters_sign_and_route(server: ServerProcess, s3: Any,
                                                      bucket: str) -> None:
    key = "a+b c%d/é?&=#"
    url = f"{server.endpoint}/{bucket}/{quote(key, safe='/~')}"
    headers = rawhttp.sign_v4("PUT", url, body=b"reserved")
    assert rawhttp.send("PUT", url, headers, body=b"reserved").status == 200
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"reserved"
