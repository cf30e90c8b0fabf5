"""Request authentication against requests signed by botocore's real signers.

botocore is what boto3, aws-cli and s3transfer sign with (SigV4 header and presigned URLs,
and HmacV1 for the SigV2 clients such as s3cmd/boto), so a pass here means stock clients
authenticate, not merely that our code agrees with itself.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import hmac
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict, CIMultiDictProxy

from cargohold import errors
from cargohold.auth import AuthResult, PayloadMode, SignedRequest, authenticate
from cargohold.auth import sigv4 as sigv4_module
from cargohold.auth.model import ANONYMOUS
from cargohold.store.base import AccessKey

ACCESS_KEY = "DO00EXAMPLEKEY000001"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ACCOUNT = "c0ffee" * 10 + "beef"
KEYS = {ACCESS_KEY: AccessKey(ACCESS_KEY, SECRET, ACCOUNT, 0.0)}
CREDENTIALS = Credentials(ACCESS_KEY, SECRET)
ENDPOINT = "http://127.0.0.1:9000"


async def lookup(access_key: str) -> AccessKey | None:
    return KEYS.get(access_key)


def run(coro: Coroutine[Any, Any, AuthResult]) -> AuthResult:
    return asyncio.run(coro)


class PayloadSigner(S3SigV4Auth):
    """botocore's S3 SigV4 signer, with a chosen x-amz-content-sha256 value."""

    def __init__(self, payload_value: str, region: str = "us-east-1") -> None:
        super().__init__(CREDENTIALS, "s3", region)
        self.payload_value = payload_value

    def payload(self, request: AWSRequest) -> str:
        return self.payload_value


def to_signed_request(request: AWSRequest, *, host_bucket: str | None = None,
                      drop: tuple[str, ...] = (), method: str | None = None,
                      raw_path: str | None = None,
                      raw_query: str | None = None) -> SignedRequest:
    """What our HTTP layer would hand to ``authenticate`` for this botocore request."""
    url = urlsplit(request.url)
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        headers.add(name, value if isinstance(value, str) else value.decode())
    headers.setdefault("Host", url.netloc)
    for name in drop:
        headers.popall(name, None)
    return SignedRequest(
        method=method if method is not None else request.method,
        raw_path=raw_path if raw_path is not None else url.path,
        raw_query=raw_query if raw_query is not None else url.query,
        headers=CIMultiDictProxy(headers), host_bucket=host_bucket)


def sign_v4(method: str = "GET", url: str = f"{ENDPOINT}/bucket/key",
            headers: dict[str, str] | None = None, body: bytes = b"",
            region: str = "us-east-1") -> AWSRequest:
    request = AWSRequest(method=method, url=url, headers=headers or {}, data=body)
    S3SigV4Auth(CREDENTIALS, "s3", region).add_auth(request)
    return request


def presign_v4(method: str = "GET", url: str = f"{ENDPOINT}/bucket/key",
               headers: dict[str, str] | None = None, expires: int = 3600,
               credentials: Credentials = CREDENTIALS) -> AWSRequest:
    request = AWSRequest(method=method, url=url, headers=headers or {})
    S3SigV4QueryAuth(credentials, "s3", "us-east-1", expires=expires).add_auth(request)
    return request


def amz_time(request: AWSRequest) -> float:
    """The signing time botocore stamped on a request."""
    return float(calendar.timegm(time.strptime(request.context["timestamp"], "%Y%m%dT%H%M%SZ")))


def verify(request: SignedRequest, now: float | None = None) -> AuthResult:
    return run(authenticate(request, lookup, now=now))


# --- SigV4 Authorization header -------------------------------------------------------------

def test_sigv4_header_get_is_attributed_to_the_key_owner() -> None:
    result = verify(to_signed_request(sign_v4()))
    assert result.principal.account_id == ACCOUNT
    assert result.principal.access_key == ACCESS_KEY
    assert (result.signature_version, result.auth_type) == ("SigV4", "AuthHeader")


def test_sigv4_header_over_http_signs_the_payload_hash_which_the_result_carries() -> None:
    body = b"hello world"
    result = verify(to_signed_request(sign_v4("PUT", body=body)))
    assert result.payload_mode is PayloadMode.SIGNED
    assert result.payload_sha256 == (
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")


def test_sigv4_result_carries_what_chunk_signatures_need() -> None:
    request = sign_v4()
    result = verify(to_signed_request(request))
    authorization = request.headers["Authorization"]
    assert authorization.endswith("Signature=" + result.seed_signature)
    stamp = request.context["timestamp"]
    assert result.amz_date == stamp
    assert result.scope == f"{stamp[:8]}/us-east-1/s3/aws4_request"
    assert result.signing_key == sigv4_module.signing_key(SECRET, stamp[:8], "us-east-1")
    assert len(result.signing_key) == 32


@pytest.mark.parametrize("region", ["us-east-1", "nyc3", "ams3", "eu-west-7"])
def test_any_region_in_the_credential_scope_is_accepted(region: str) -> None:
    result = verify(to_signed_request(sign_v4(region=region)))
    assert result.scope.split("/")[1] == region


@pytest.mark.parametrize(("value", "mode"), [
    ("UNSIGNED-PAYLOAD", PayloadMode.UNSIGNED),
    ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", PayloadMode.STREAMING_SIGNED),
    ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", PayloadMode.STREAMING_UNSIGNED_TRAILER),
    ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", PayloadMode.STREAMING_SIGNED_TRAILER),
])
def test_x_amz_content_sha256_selects_the_payload_mode(value: str, mode: PayloadMode) -> None:
    request = AWSRequest(method="PUT", url=f"{ENDPOINT}/bucket/key")
    PayloadSigner(value).add_auth(request)
    result = verify(to_signed_request(request))
    assert result.payload_mode is mode
    assert result.payload_sha256 is None


def test_streaming_is_detected_from_x_amz_content_sha256_even_without_content_encoding() -> None:
    request = AWSRequest(method="PUT", url=f"{ENDPOINT}/bucket/key")
    PayloadSigner("STREAMING-UNSIGNED-PAYLOAD-TRAILER").add_auth(request)
    signed = to_signed_request(request, drop=("Content-Encoding",))
    assert verify(signed).payload_mode.is_chunked


def test_an_unknown_x_amz_content_sha256_value_is_an_invalid_argument() -> None:
    request = AWSRequest(method="PUT", url=f"{ENDPOINT}/bucket/key")
    PayloadSigner("STREAMING-SOMETHING-NEW").add_auth(request)
    with pytest.raises(errors.InvalidArgument):
        verify(to_signed_request(request))


def test_sigv4_header_without_x_amz_content_sha256_is_missing_a_security_header() -> None:
    signed = to_signed_request(sign_v4(), drop=("X-Amz-Content-SHA256",))
    with pytest.raises(errors.MissingSecurityHeader):
        verify(signed)


def test_object_keys_with_special_characters_verify_against_the_raw_path() -> None:
    # botocore percent-encodes the key itself; the canonical URI is the path as sent.
    url = f"{ENDPOINT}/bucket/dir%20one/%C3%BCber%2Bplus~tilde%3Dequals%2Ftail"
    result = verify(to_signed_request(sign_v4(url=url)))
    assert result.principal.account_id == ACCOUNT


def test_a_path_sent_escaped_differently_than_signed_still_verifies() -> None:
    # Signed as AWS-encoded "%2C", sent with a bare "," (an HTTP library unescaped it).
    request = sign_v4(url=f"{ENDPOINT}/bucket/a%2Cb%28c%29")
    result = verify(to_signed_request(request, raw_path="/bucket/a,b(c)"))
    assert result.principal.account_id == ACCOUNT


def test_query_parameters_are_canonicalized_from_the_raw_query() -> None:
    url = (f"{ENDPOINT}/bucket?list-type=2&prefix=a%20b%2Fc&delimiter=%2F&max-keys=5"
           "&x-id=ListObjectsV2&encoding-type=url")
    request = sign_v4(url=url)
    assert verify(to_signed_request(request)).principal.account_id == ACCOUNT
    # Same parameters, other order and lower-case escapes: still the same canonical query.
    reordered = ("x-id=ListObjectsV2&encoding-type=url&max-keys=5&delimiter=%2f"
                 "&prefix=a%20b%2fc&list-type=2")
    assert verify(to_signed_request(request, raw_query=reordered)).principal.access_key


def test_a_query_parameter_without_a_value_signs_as_an_empty_value() -> None:
    request = sign_v4("POST", url=f"{ENDPOINT}/bucket/key?uploads")
    assert verify(to_signed_request(request)).principal.account_id == ACCOUNT
    assert verify(to_signed_request(request, raw_query="uploads=")).principal.access_key


@pytest.mark.parametrize(("method", "path", "query"), [
    ("DELETE", "/bucket/key", "prefix=a"),
    ("GET", "/bucket/other-key", "prefix=a"),
    ("GET", "/other-bucket/key", "prefix=a"),
    ("GET", "/bucket/key", "versionId=2"),
    ("GET", "/bucket/key", "prefix=a&prefix=b&extra"),
])
def test_a_tampered_request_line_does_not_match_the_signature(
        method: str, path: str, query: str) -> None:
    request = sign_v4(url=f"{ENDPOINT}/bucket/key?prefix=a")
    assert verify(to_signed_request(request)).principal.account_id == ACCOUNT
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(to_signed_request(request, method=method, raw_path=path, raw_query=query))


def test_a_tampered_signed_header_does_not_match_the_signature() -> None:
    request = sign_v4("PUT", headers={"x-amz-meta-owner": "alice", "Content-Type": "text/plain"})
    signed = to_signed_request(request)
    headers = CIMultiDict(signed.headers)
    headers["x-amz-meta-owner"] = "mallory"
    forged = SignedRequest(signed.method, signed.raw_path, signed.raw_query,
                           CIMultiDictProxy(headers))
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(forged)


def test_a_swapped_payload_hash_does_not_match_the_signature() -> None:
    signed = to_signed_request(sign_v4("PUT", body=b"original"))
    headers = CIMultiDict(signed.headers)
    headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    forged = SignedRequest(signed.method, signed.raw_path, signed.raw_query,
                           CIMultiDictProxy(headers))
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(forged)


def test_header_values_are_compared_after_whitespace_is_collapsed() -> None:
    request = sign_v4("PUT", headers={"x-amz-meta-note": "two  spaces\tand tab"})
    signed = to_signed_request(request)
    headers = CIMultiDict(signed.headers)
    headers["x-amz-meta-note"] = "  two spaces   and tab  "
    relaxed = SignedRequest(signed.method, signed.raw_path, signed.raw_query,
                            CIMultiDictProxy(headers))
    assert verify(relaxed).principal.account_id == ACCOUNT


def test_a_missing_signed_header_does_not_match_the_signature() -> None:
    request = sign_v4("PUT", headers={"x-amz-meta-owner": "alice"})
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(to_signed_request(request, drop=("x-amz-meta-owner",)))


def test_headers_added_after_signing_are_ignored_when_not_signed() -> None:
    request = sign_v4()
    signed = to_signed_request(request)
    headers = CIMultiDict(signed.headers)
    headers["User-Agent"] = "proxy/1.0"
    headers["Expect"] = "100-continue"
    relaxed = SignedRequest(signed.method, signed.raw_path, signed.raw_query,
                            CIMultiDictProxy(headers))
    assert verify(relaxed).principal.account_id == ACCOUNT


def test_a_signature_made_with_the_wrong_secret_does_not_match() -> None:
    request = AWSRequest(method="GET", url=f"{ENDPOINT}/bucket/key")
    S3SigV4Auth(Credentials(ACCESS_KEY, "not-the-secret"), "s3", "us-east-1").add_auth(request)
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(to_signed_request(request))


def test_an_unknown_access_key_is_an_invalid_access_key_id() -> None:
    request = AWSRequest(method="GET", url=f"{ENDPOINT}/bucket/key")
    S3SigV4Auth(Credentials("NOSUCHKEY", SECRET), "s3", "us-east-1").add_auth(request)
    with pytest.raises(errors.InvalidAccessKeyId):
        verify(to_signed_request(request))


@pytest.mark.parametrize("offset", [-901.0, 901.0, -86400.0])
def test_a_request_dated_beyond_the_allowed_skew_is_refused(offset: float) -> None:
    request = sign_v4()
    with pytest.raises(errors.RequestTimeTooSkewed):
        verify(to_signed_request(request), now=amz_time(request) + offset)


@pytest.mark.parametrize("offset", [-899.0, 899.0])
def test_a_request_dated_within_the_allowed_skew_is_accepted(offset: float) -> None:
    request = sign_v4()
    assert verify(to_signed_request(request), now=amz_time(request) + offset).principal


def test_sigv4_accepts_a_date_header_instead_of_x_amz_date() -> None:
    # botocore signs with the Date header (and drops x-amz-date) when one is set.
    request = sign_v4(headers={"Date": "placeholder"})
    assert "X-Amz-Date" not in request.headers
    assert verify(to_signed_request(request)).principal.account_id == ACCOUNT


def test_sigv4_without_any_date_is_access_denied() -> None:
    with pytest.raises(errors.AccessDenied):
        verify(to_signed_request(sign_v4(), drop=("X-Amz-Date",)))


def test_a_credential_date_other_than_the_request_date_is_malformed() -> None:
    request = sign_v4()
    stamp = request.context["timestamp"]
    signed = to_signed_request(request)
    headers = CIMultiDict(signed.headers)
    headers["Authorization"] = headers["Authorization"].replace(
        f"/{stamp[:8]}/", "/20000101/")
    with pytest.raises(errors.AuthorizationHeaderMalformed):
        verify(SignedRequest("GET", "/bucket/key", "", CIMultiDictProxy(headers)))


@pytest.mark.parametrize("authorization", [
    "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={sh}",
    "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={sh}, Signature={sig}, Extra=1",
    "AWS4-HMAC-SHA256 Credential={cred}, Credential={cred}, Signature={sig}",
    "AWS4-HMAC-SHA256 Credential={ak}/{day}/us-east-1/s3, SignedHeaders={sh}, Signature={sig}",
    "AWS4-HMAC-SHA256 Credential={ak}/{day}/us-east-1/sqs/aws4_request, SignedHeaders={sh}, "
    "Signature={sig}",
    "AWS4-HMAC-SHA256 Credential={ak}/yesterday/us-east-1/s3/aws4_request, "
    "SignedHeaders={sh}, Signature={sig}",
    "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={sh}, Signature=nothex",
    "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=x-amz-date, Signature={sig}",
    "AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host;;x-amz-date, Signature={sig}",
    "AWS4-HMAC-SHA256 Credential={cred} SignedHeaders={sh} Signature={sig}",
    "AWS4-HMAC-SHA256",
])
def test_a_malformed_sigv4_authorization_header_is_reported_as_malformed(
        authorization: str) -> None:
    request = sign_v4()
    stamp = request.context["timestamp"]
    value = authorization.format(
        cred=f"{ACCESS_KEY}/{stamp[:8]}/us-east-1/s3/aws4_request", ak=ACCESS_KEY,
        day=stamp[:8], sh="host;x-amz-content-sha256;x-amz-date", sig="a" * 64)
    signed = to_signed_request(request)
    headers = CIMultiDict(signed.headers)
    headers["Authorization"] = value
    with pytest.raises(errors.AuthorizationHeaderMalformed):
        verify(SignedRequest("GET", "/bucket/key", "", CIMultiDictProxy(headers)))


def test_an_unsupported_authorization_scheme_is_an_invalid_argument() -> None:
    headers = CIMultiDictProxy(CIMultiDict({"Host": "h", "Authorization": "Bearer abc"}))
    with pytest.raises(errors.InvalidArgument):
        verify(SignedRequest("GET", "/", "", headers))


def test_header_and_query_authentication_together_are_refused() -> None:
    presigned = presign_v4()
    header_signed = to_signed_request(sign_v4())
    mixed = SignedRequest("GET", "/bucket/key", urlsplit(presigned.url).query,
                          header_signed.headers)
    with pytest.raises(errors.InvalidArgument, match="Only one auth mechanism"):
        verify(mixed)


def test_the_signing_key_cache_stays_bounded() -> None:
    for i in range(2000):
        sigv4_module.signing_key(f"secret-{i}", "20250101", "us-east-1")
    assert len(sigv4_module._key_cache) <= sigv4_module._KEY_CACHE_SIZE
    # and the cached key is the one derived from scratch
    fresh = sigv4_module.signing_key("secret-1999", "20250101", "us-east-1", service="s3")
    assert fresh == sigv4_module._key_cache[("secret-1999", "20250101", "us-east-1")]


def test_the_aws_documented_signing_key_example_is_reproduced() -> None:
    # AWS General Reference, "Examples of how to derive a signing key for Signature V4".
    key = sigv4_module.signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
                                   "us-east-1", service="iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


# --- SigV4 presigned URLs --------------------------------------------------------------------

def test_a_presigned_v4_url_authenticates_as_query_string_with_unsigned_payload() -> None:
    result = verify(to_signed_request(presign_v4()))
    assert result.principal.account_id == ACCOUNT
    assert (result.signature_version, result.auth_type) == ("SigV4", "QueryString")
    assert result.payload_mode is PayloadMode.UNSIGNED
    assert len(result.seed_signature) == 64


def test_a_presigned_v4_url_is_refused_after_it_expires() -> None:
    request = presign_v4(expires=60)
    with pytest.raises(errors.AccessDenied, match="Request has expired"):
        verify(to_signed_request(request), now=amz_time(request) + 61)
    assert verify(to_signed_request(request), now=amz_time(request) + 59).principal


def test_a_presigned_v4_url_dated_in_the_future_is_not_valid_yet() -> None:
    request = presign_v4()
    with pytest.raises(errors.AccessDenied, match="not valid yet"):
        verify(to_signed_request(request), now=amz_time(request) - 3600)


def test_a_presigned_put_with_a_checksum_in_its_query_verifies_as_an_ordinary_parameter() -> None:
    # The JS SDK signs the CRC32 of an empty body into presigned PUT URLs.
    url = f"{ENDPOINT}/bucket/upload.bin?x-id=PutObject&x-amz-checksum-crc32=AAAAAA%3D%3D"
    request = presign_v4("PUT", url=url, headers={"Content-Type": "application/octet-stream"})
    result = verify(to_signed_request(request))
    assert result.payload_mode is PayloadMode.UNSIGNED
    assert result.principal.account_id == ACCOUNT


def test_a_presigned_url_carrying_a_security_token_signs_it_like_any_parameter() -> None:
    credentials = Credentials(ACCESS_KEY, SECRET, token="session/token+value==")
    result = verify(to_signed_request(presign_v4(credentials=credentials)))
    assert result.principal.account_id == ACCOUNT


def test_a_presigned_v4_url_with_a_stretched_expiry_does_not_match() -> None:
    signed = to_signed_request(presign_v4(expires=3600))
    stretched = signed.raw_query.replace("X-Amz-Expires=3600", "X-Amz-Expires=604800")
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(to_signed_request(presign_v4(), raw_query=stretched))


def test_a_presigned_v4_url_pointed_at_another_key_does_not_match() -> None:
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(to_signed_request(presign_v4(), raw_path="/bucket/another-key"))


def test_a_parameter_added_to_a_presigned_v4_url_does_not_match() -> None:
    signed = to_signed_request(presign_v4())
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(to_signed_request(presign_v4(), raw_query=signed.raw_query + "&acl"))


@pytest.mark.parametrize("missing", ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                                     "X-Amz-Expires", "X-Amz-SignedHeaders",
                                     "X-Amz-Signature"])
def test_a_presigned_v4_url_missing_a_parameter_is_a_query_parameters_error(
        missing: str) -> None:
    query = urlsplit(presign_v4().url).query
    kept = "&".join(p for p in query.split("&") if not p.startswith(missing + "="))
    request = SignedRequest("GET", "/bucket/key", kept,
                            CIMultiDictProxy(CIMultiDict({"Host": "127.0.0.1:9000"})))
    with pytest.raises(errors.AuthorizationQueryParametersError):
        verify(request)


@pytest.mark.parametrize(("name", "value"), [
    ("X-Amz-Expires", "0"), ("X-Amz-Expires", "604801"), ("X-Amz-Expires", "soon"),
    ("X-Amz-Algorithm", "AWS4-HMAC-SHA512"), ("X-Amz-Date", "2025-01-01T00:00:00Z"),
    ("X-Amz-Credential", "just-a-key"), ("X-Amz-SignedHeaders", "x-amz-date"),
    ("X-Amz-Signature", "xyz"),
])
def test_an_invalid_presigned_v4_parameter_is_a_query_parameters_error(
        name: str, value: str) -> None:
    query = urlsplit(presign_v4().url).query
    edited = "&".join(f"{name}={value}" if p.startswith(name + "=") else p
                      for p in query.split("&"))
    request = SignedRequest("GET", "/bucket/key", edited,
                            CIMultiDictProxy(CIMultiDict({"Host": "127.0.0.1:9000"})))
    with pytest.raises(errors.AuthorizationQueryParametersError):
        verify(request)


def test_a_presigned_v4_url_for_an_unknown_key_is_an_invalid_access_key_id() -> None:
    request = presign_v4(credentials=Credentials("NOSUCHKEY", SECRET))
    with pytest.raises(errors.InvalidAccessKeyId):
        verify(to_signed_request(request))


# --- SigV2 -----------------------------------------------------------------------------------

def sign_v2(method: str = "GET", url: str = f"{ENDPOINT}/bucket/key",
            headers: dict[str, str] | None = None, auth_path: str | None = None,
            secret: str = SECRET, access_key: str = ACCESS_KEY) -> AWSRequest:
    request = AWSRequest(method=method, url=url, headers=headers or {})
    if auth_path is not None:
        request.auth_path = auth_path
    HmacV1Auth(Credentials(access_key, secret)).add_auth(request)
    return request


def test_the_aws_documented_sigv2_example_is_reproduced() -> None:
    # "Signing and authenticating REST requests", Example Object GET (virtual-host style).
    key = AccessKey("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    ACCOUNT, 0.0)

    async def doc_lookup(access_key: str) -> AccessKey | None:
        return key if access_key == key.access_key else None

    date = "Tue, 27 Mar 2007 19:36:42 +0000"
    headers = CIMultiDictProxy(CIMultiDict({
        "Host": "awsexamplebucket1.us-west-1.s3.amazonaws.com", "Date": date,
        "Authorization": "AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g="}))
    request = SignedRequest("GET", "/photos/puppy.jpg", "", headers,
                            host_bucket="awsexamplebucket1")
    result = run(authenticate(request, doc_lookup, now=1175024202.0))
    assert (result.signature_version, result.auth_type) == ("SigV2", "AuthHeader")


def test_a_sigv2_header_request_is_attributed_to_the_key_owner() -> None:
    result = verify(to_signed_request(sign_v2()))
    assert result.principal.account_id == ACCOUNT
    assert (result.signature_version, result.auth_type) == ("SigV2", "AuthHeader")
    assert result.payload_mode is PayloadMode.UNSIGNED


def test_a_sigv2_virtual_host_request_signs_the_bucket_into_the_resource() -> None:
    request = sign_v2(url="http://bucket.nyc3.example.com/dir/key",
                      auth_path="/bucket/dir/key")
    assert verify(to_signed_request(request, host_bucket="bucket")).principal.access_key
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(to_signed_request(request))  # without the host bucket, the resource differs


def test_sigv2_signs_subresources_but_not_other_query_parameters() -> None:
    url = f"{ENDPOINT}/bucket/key?uploadId=abc%2Fdef&partNumber=2"
    request = sign_v2("PUT", url=url)
    assert verify(to_signed_request(request)).principal.account_id == ACCOUNT
    # Non-subresource parameters are outside the signature ...
    query = "partNumber=2&uploadId=abc%2Fdef&x-id=UploadPart"
    assert verify(to_signed_request(request, raw_query=query)).principal.account_id
    # ... subresources are inside it.
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(to_signed_request(request, raw_query="uploadId=abc%2Fdef&partNumber=3"))


def test_a_sigv2_path_style_bucket_request_verifies_with_botocores_trailing_slash() -> None:
    # boto3 signs "/bucket/" as the resource of "GET /bucket?list-type=2".
    request = sign_v2(url=f"{ENDPOINT}/bucket?list-type=2&prefix=a%20b%2F&delimiter=%2F",
                      auth_path="/bucket/")
    assert verify(to_signed_request(request)).principal.account_id == ACCOUNT


def test_sigv2_signs_a_value_less_subresource() -> None:
    request = sign_v2(url=f"{ENDPOINT}/bucket?acl")
    assert verify(to_signed_request(request)).principal.account_id == ACCOUNT
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(to_signed_request(request, raw_query="cors"))


@pytest.mark.parametrize(("header", "value"), [
    ("Content-Type", "text/html"), ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
    ("x-amz-meta-owner", "mallory"), ("x-amz-acl", "public-read"),
])
def test_a_tampered_sigv2_request_does_not_match(header: str, value: str) -> None:
    request = sign_v2("PUT", headers={"Content-Type": "text/plain",
                                      "Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww==",
                                      "x-amz-meta-owner": "alice"})
    signed = to_signed_request(request)
    assert verify(signed).principal.account_id == ACCOUNT
    headers = CIMultiDict(signed.headers)
    headers[header] = value
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(SignedRequest("PUT", signed.raw_path, "", CIMultiDictProxy(headers)))


def test_sigv2_with_x_amz_date_signs_an_empty_date_line() -> None:
    # Per the SigV2 spec the Date line is empty when x-amz-date is sent; botocore instead
    # keeps its Date there. Both forms must verify.
    stamp = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    botocore_style = sign_v2(headers={"x-amz-date": stamp})
    assert verify(to_signed_request(botocore_style)).principal.account_id == ACCOUNT
    string_to_sign = f"GET\n\n\n\nx-amz-date:{stamp}\n/bucket/key"
    signature = base64.b64encode(hmac.digest(SECRET.encode(), string_to_sign.encode(),
                                                    "sha1")).decode()
    headers = CIMultiDictProxy(CIMultiDict({
        "Host": "127.0.0.1:9000", "x-amz-date": stamp,
        "Authorization": f"AWS {ACCESS_KEY}:{signature}"}))
    assert verify(SignedRequest("GET", "/bucket/key", "", headers)).principal.access_key


def test_sigv2_with_the_wrong_secret_does_not_match() -> None:
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(to_signed_request(sign_v2(secret="wrong")))


def test_sigv2_with_an_unknown_key_is_an_invalid_access_key_id() -> None:
    with pytest.raises(errors.InvalidAccessKeyId):
        verify(to_signed_request(sign_v2(access_key="NOSUCHKEY")))


def test_sigv2_header_request_outside_the_allowed_skew_is_refused() -> None:
    with pytest.raises(errors.RequestTimeTooSkewed):
        verify(to_signed_request(sign_v2()), now=time.time() + 3600)


def test_sigv2_header_request_without_a_date_is_access_denied() -> None:
    with pytest.raises(errors.AccessDenied):
        verify(to_signed_request(sign_v2(), drop=("Date",)))


@pytest.mark.parametrize("authorization", ["AWS ", "AWS nocolon", "AWS :sig", "AWS key:"])
def test_a_malformed_sigv2_authorization_header_is_an_invalid_argument(
        authorization: str) -> None:
    signed = to_signed_request(sign_v2())
    headers = CIMultiDict(signed.headers)
    headers["Authorization"] = authorization
    with pytest.raises(errors.InvalidArgument):
        verify(SignedRequest("GET", "/bucket/key", "", CIMultiDictProxy(headers)))


def presign_v2(url: str = f"{ENDPOINT}/bucket/key", expires: int = 3600,
               headers: dict[str, str] | None = None) -> AWSRequest:
    request = AWSRequest(method="GET", url=url, headers=headers or {})
    HmacV1QueryAuth(CREDENTIALS, expires=expires).add_auth(request)
    return request


def test_a_presigned_v2_url_authenticates_as_query_string() -> None:
    result = verify(to_signed_request(presign_v2(), drop=("Date",)))
    assert result.principal.account_id == ACCOUNT
    assert (result.signature_version, result.auth_type) == ("SigV2", "QueryString")


def test_a_presigned_v2_url_with_headers_moved_into_its_query_verifies_without_them() -> None:
    request = presign_v2(headers={"Content-Type": "text/plain", "x-amz-meta-a": "1"})
    signed = to_signed_request(request, drop=("Date", "Content-Type", "x-amz-meta-a"))
    assert "content-type=text%2Fplain" in signed.raw_query
    assert verify(signed).principal.account_id == ACCOUNT


def test_a_presigned_v2_url_is_refused_after_it_expires() -> None:
    request = presign_v2(expires=60)
    with pytest.raises(errors.AccessDenied, match="Request has expired"):
        verify(to_signed_request(request, drop=("Date",)), now=time.time() + 120)


def test_a_tampered_presigned_v2_url_does_not_match() -> None:
    signed = to_signed_request(presign_v2(), drop=("Date",))
    forged = to_signed_request(presign_v2(), drop=("Date",), raw_path="/bucket/other")
    assert verify(signed).principal.access_key
    with pytest.raises(errors.SignatureDoesNotMatch):
        verify(forged)


def test_a_presigned_v2_url_missing_its_expiry_is_access_denied() -> None:
    query = urlsplit(presign_v2().url).query
    kept = "&".join(p for p in query.split("&") if not p.startswith("Expires="))
    request = SignedRequest("GET", "/bucket/key", kept,
                            CIMultiDictProxy(CIMultiDict({"Host": "127.0.0.1:9000"})))
    with pytest.raises(errors.AccessDenied):
        verify(request)


# --- anonymous -------------------------------------------------------------------------------

def anonymous(query: str = "", **headers: str) -> SignedRequest:
    return SignedRequest("GET", "/bucket/key", query,
                         CIMultiDictProxy(CIMultiDict({"Host": "h", **headers})))


def test_a_request_without_credentials_is_anonymous_with_an_unsigned_payload() -> None:
    result = verify(anonymous("list-type=2&prefix=a"))
    assert result.principal is ANONYMOUS
    assert result.principal.is_anonymous
    assert result.payload_mode is PayloadMode.UNSIGNED
    assert result.signature_version is None


def test_an_anonymous_request_may_still_declare_its_payload_hash() -> None:
    digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    result = verify(anonymous(**{"x-amz-content-sha256": digest}))
    assert result.payload_mode is PayloadMode.SIGNED
    assert result.payload_sha256 == digest


def test_an_anonymous_request_cannot_claim_signed_chunks() -> None:
    with pytest.raises(errors.InvalidRequest):
        verify(anonymous(**{"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}))
