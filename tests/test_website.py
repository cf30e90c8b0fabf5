"""Static websites: the Put/Get/DeleteBucketWebsite API and the ``-static`` endpoint.

The endpoint is reached as ``<bucket>.nyc3-static.localhost:PORT``: raw requests connect to
127.0.0.1 and name that host; headless Chromium resolves ``*.localhost`` to loopback by
itself. What S3 answers is taken from AWS's documentation and from tests recorded against
AWS (ceph s3-tests' website suite, LocalStack's AWS-validated snapshots).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cargohold.website import BAD_SUFFIX, BOTH_REPLACEMENTS, NO_INDEX, REDIRECT_ALL_ALONE
from tests import rawhttp
from tests.conftest import ServerProcess, headless_chromium

PAGES = {
    "index.html": "<!doctype html><title>Home</title><h1>Welcome home</h1>"
                  '<p><a href="docs/">Docs</a></p>',
    "docs/index.html": "<!doctype html><title>Docs</title><h1>Documentation index</h1>",
    "docs/guide/index.html": "<!doctype html><title>Guide</title><h1>The guide</h1>",
    "docs/guide/page.html": "<!doctype html><title>Page</title><h1>A nested page</h1>"
                            "<p>0123456789</p>",
    "error.html": "<!doctype html><title>Lost</title><h1>Custom error page</h1>",
}
WEBSITE = {
    "IndexDocument": {"Suffix": "index.html"},
    "ErrorDocument": {"Key": "error.html"},
    "RoutingRules": [
        {"Condition": {"KeyPrefixEquals": "old/"},
         "Redirect": {"ReplaceKeyPrefixWith": "docs/"}},
        {"Condition": {"KeyPrefixEquals": "archive/", "HttpErrorCodeReturnedEquals": "404"},
         "Redirect": {"HostName": "archive.example.com", "Protocol": "https",
                      "HttpRedirectCode": "302"}},
    ],
}


def website_host(bucket: str, server: ServerProcess) -> str:
    return f"{bucket}.nyc3-static.localhost:{server.port}"


def visit(server: ServerProcess, bucket: str, path: str, method: str = "GET",
          headers: dict[str, str] | None = None, body: bytes = b"") -> rawhttp.Response:
    """A request to the bucket's website endpoint."""
    return rawhttp.send(method, f"http://127.0.0.1:{server.port}{path}",
                        {"Host": website_host(bucket, server), **(headers or {})}, body)


def publish(s3: Any, bucket: str, website: dict[str, Any] | None = None) -> None:
    """The test site: public pages, one private page, an object-level redirect."""
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")  # anyone may list: 404s, not 403s
    for key, text in PAGES.items():
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), ContentType="text/html",
                      ACL="public-read")
    s3.put_object(Bucket=bucket, Key="private.html", Body=b"<h1>secret</h1>",
                  ContentType="text/html")
    s3.put_object(Bucket=bucket, Key="moved.html", Body=b"", ACL="public-read",
                  WebsiteRedirectLocation="/docs/guide/")
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=website or WEBSITE)


@pytest.fixture
def site(s3: Any, bucket: str) -> str:
    publish(s3, bucket)
    return bucket


def error_code(call: Any) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return (error["Code"], error.get("Message", ""),
            caught.value.response["ResponseMetadata"]["HTTPStatusCode"])


# --- the API ---

def test_website_configuration_round_trip(s3: Any, bucket: str) -> None:
    assert error_code(lambda: s3.get_bucket_website(Bucket=bucket)) == (
        "NoSuchWebsiteConfiguration",
        "The specified bucket does not have a website configuration", 404)
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=WEBSITE)
    got = s3.get_bucket_website(Bucket=bucket)
    got.pop("ResponseMetadata")
    assert got == WEBSITE
    redirect_all = {"RedirectAllRequestsTo": {"HostName": "example.com", "Protocol": "https"}}
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=redirect_all)
    got = s3.get_bucket_website(Bucket=bucket)
    got.pop("ResponseMetadata")
    assert got == redirect_all
    for _ in range(2):  # deleting what is not there succeeds too
        assert s3.delete_bucket_website(Bucket=bucket)["ResponseMetadata"][
            "HTTPStatusCode"] == 204
    assert error_code(lambda: s3.get_bucket_website(Bucket=bucket))[0] == (
        "NoSuchWebsiteConfiguration")


@pytest.mark.parametrize(("config", "code", "message"), [
    ({"ErrorDocument": {"Key": "e.html"}}, "InvalidArgument", NO_INDEX),
    ({"IndexDocument": {"Suffix": "a/index.html"}}, "InvalidArgument", BAD_SUFFIX),
    ({"IndexDocument": {"Suffix": "index.html"},
      "RedirectAllRequestsTo": {"HostName": "example.com"}}, "InvalidArgument",
     REDIRECT_ALL_ALONE),
    ({"IndexDocument": {"Suffix": "index.html"},
      "RoutingRules": [{"Redirect": {"ReplaceKeyPrefixWith": "a/", "ReplaceKeyWith": "b"}}]},
     "InvalidRequest", BOTH_REPLACEMENTS),
    ({"IndexDocument": {"Suffix": "index.html"},
      "RoutingRules": [{"Redirect": {"HttpRedirectCode": "300"}}]}, "InvalidRequest",
     "The provided HTTP redirect code (300) is not valid. Valid codes are 3XX except 300."),
])
def test_put_bucket_website_refuses_as_s3_does(s3: Any, bucket: str, config: dict[str, Any],
                                               code: str, message: str) -> None:
    assert error_code(lambda: s3.put_bucket_website(
        Bucket=bucket, WebsiteConfiguration=config)) == (code, message, 400)
    # A refused document leaves no configuration behind.
    assert error_code(lambda: s3.get_bucket_website(Bucket=bucket))[0] == (
        "NoSuchWebsiteConfiguration")


def test_a_malformed_document_is_malformed_xml(server: ServerProcess, bucket: str) -> None:
    url = f"{server.endpoint}/{bucket}?website"
    body = b"<WebsiteConfiguration><IndexDocument>"
    response = rawhttp.send("PUT", url, rawhttp.sign_v4("PUT", url, body=body), body)
    assert response.status == 400
    assert b"<Code>MalformedXML</Code>" in response.body


def test_only_the_owner_manages_the_website_configuration(server: ServerProcess, s3: Any,
                                                          site: str) -> None:
    s3.put_bucket_acl(Bucket=site, ACL="public-read-write")
    for method in ("GET", "PUT", "DELETE"):
        response = rawhttp.send(method, f"{server.endpoint}/{site}?website")
        assert response.status == 403, method
        assert b"<Code>AccessDenied</Code>" in response.body
    assert s3.get_bucket_website(Bucket=site)["IndexDocument"] == {"Suffix": "index.html"}


def test_the_object_redirect_location_is_kept_and_returned_by_the_api(s3: Any,
                                                                      site: str) -> None:
    head = s3.head_object(Bucket=site, Key="moved.html")
    assert head["WebsiteRedirectLocation"] == "/docs/guide/"
    assert s3.get_object(Bucket=site, Key="moved.html")["WebsiteRedirectLocation"] == (
        "/docs/guide/")


# --- the website endpoint ---

def test_the_index_document_answers_for_the_root_and_every_folder(server: ServerProcess,
                                                                   site: str) -> None:
    for path, key in (("/", "index.html"), ("/docs/", "docs/index.html"),
                      ("/docs/guide/", "docs/guide/index.html"),
                      ("/docs/guide/page.html", "docs/guide/page.html"),
                      ("/index.html", "index.html")):
        response = visit(server, site, path)
        assert response.status == 200, path
        assert response.body == PAGES[key].encode(), path
        assert response.headers["content-type"] == "text/html"
        assert response.headers["etag"].startswith('"')
    # Query strings never reach the S3 API here: this is the page, not a listing.
    listing = visit(server, site, "/?list-type=2")
    assert listing.status == 200
    assert listing.body == PAGES["index.html"].encode()


def test_a_folder_without_its_slash_is_redirected_to_it(server: ServerProcess,
                                                        site: str) -> None:
    for path in ("/docs", "/docs/guide"):
        response = visit(server, site, path)
        assert response.status == 302, path
        assert response.headers["location"] == path + "/"
        assert response.body == b""


def test_missing_pages_get_the_error_document_with_404(server: ServerProcess,
                                                       site: str) -> None:
    for path in ("/nope.html", "/docs/nope/", "/nope"):
        response = visit(server, site, path)
        assert response.status == 404, path
        assert response.body == PAGES["error.html"].encode(), path
        assert response.headers["content-type"] == "text/html"
        assert response.headers["x-amz-error-code"] == "NoSuchKey"
    head = visit(server, site, "/nope.html", method="HEAD")
    assert head.status == 404
    assert head.body == b""
    assert head.headers["content-length"] == str(len(PAGES["error.html"]))


def test_private_objects_get_the_error_document_with_403(server: ServerProcess,
                                                         site: str) -> None:
    response = visit(server, site, "/private.html")
    assert response.status == 403
    assert response.body == PAGES["error.html"].encode()
    assert response.headers["x-amz-error-code"] == "AccessDenied"
    assert b"secret" not in response.body


def test_without_an_error_document_errors_are_s3_html_pages(server: ServerProcess, s3: Any,
                                                            bucket: str) -> None:
    publish(s3, bucket, {"IndexDocument": {"Suffix": "index.html"}})
    missing = visit(server, bucket, "/nope.html")
    assert missing.status == 404
    assert missing.headers["content-type"] == "text/html; charset=utf-8"
    page = missing.body.decode()
    assert page.startswith("<html>")
    assert "<h1>404 Not Found</h1>" in page
    assert "<li>Code: NoSuchKey</li>" in page
    assert "<li>Key: nope.html</li>" in page
    assert "<?xml" not in page
    private = visit(server, bucket, "/private.html")
    assert private.status == 403
    assert "<li>Code: AccessDenied</li>" in private.body.decode()


def test_an_unreadable_error_document_is_named_in_the_page(server: ServerProcess, s3: Any,
                                                           site: str) -> None:
    s3.put_object_acl(Bucket=site, Key="error.html", ACL="private")
    response = visit(server, site, "/nope.html")
    assert response.status == 404
    page = response.body.decode()
    assert "<li>Code: NoSuchKey</li>" in page
    assert "An Error Occurred While Attempting to Retrieve a Custom Error Document" in page
    assert "<li>Key: error.html</li>" in page
    assert "Custom error page" not in page


def test_a_bucket_nobody_may_list_answers_403_for_missing_pages(server: ServerProcess,
                                                                s3: Any, bucket: str) -> None:
    publish(s3, bucket, {"IndexDocument": {"Suffix": "index.html"}})
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    assert visit(server, bucket, "/").status == 200  # the index is public-read itself
    response = visit(server, bucket, "/nope.html")
    assert response.status == 403
    assert "<li>Code: AccessDenied</li>" in response.body.decode()


def test_a_bucket_policy_can_publish_the_site(server: ServerProcess, s3: Any,
                                              bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="index.html", Body=b"<h1>by policy</h1>",
                  ContentType="text/html")
    s3.put_bucket_website(Bucket=bucket,
                          WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}})
    assert visit(server, bucket, "/").status == 403
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    response = visit(server, bucket, "/")
    assert (response.status, response.body) == (200, b"<h1>by policy</h1>")
    # GetObject without ListBucket: a missing page is 403, as in S3.
    assert visit(server, bucket, "/nope.html").status == 403


def test_routing_rules_redirect_by_prefix_and_by_error(server: ServerProcess,
                                                       site: str) -> None:
    host = website_host(site, server)
    moved = visit(server, site, "/old/guide/page.html")
    assert moved.status == 301
    assert moved.headers["location"] == f"http://{host}/docs/guide/page.html"
    assert moved.body == b""
    # The 404 rule takes only what is missing under archive/.
    gone = visit(server, site, "/archive/2019/report.html")
    assert gone.status == 302
    assert gone.headers["location"] == "https://archive.example.com/archive/2019/report.html"
    assert visit(server, site, "/elsewhere.html").status == 404


def test_an_object_redirect_answers_301(server: ServerProcess, site: str) -> None:
    response = visit(server, site, "/moved.html")
    assert response.status == 301
    assert response.headers["location"] == "/docs/guide/"


def test_redirect_all_requests_sends_every_path_to_the_host(server: ServerProcess, s3: Any,
                                                            bucket: str) -> None:
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "RedirectAllRequestsTo": {"HostName": "www.example.com", "Protocol": "https"}})
    for path in ("/", "/a/b.html"):
        response = visit(server, bucket, path)
        assert response.status == 301
        assert response.headers["location"] == f"https://www.example.com{path}"


def test_ranges_and_conditional_requests_work_as_on_the_api(server: ServerProcess,
                                                            site: str) -> None:
    body = PAGES["docs/guide/page.html"].encode()
    part = visit(server, site, "/docs/guide/page.html", headers={"Range": "bytes=0-14"})
    assert part.status == 206
    assert part.body == body[:15]
    assert part.headers["content-range"] == f"bytes 0-14/{len(body)}"
    etag = part.headers["etag"]
    assert visit(server, site, "/docs/guide/page.html",
                 headers={"If-None-Match": etag}).status == 304
    failed = visit(server, site, "/docs/guide/page.html", headers={"If-Match": '"other"'})
    assert failed.status == 412
    assert failed.headers["content-type"] == "text/html; charset=utf-8"
    unsatisfiable = visit(server, site, "/docs/guide/page.html",
                          headers={"Range": "bytes=9999-"})
    assert unsatisfiable.status == 416
    head = visit(server, site, "/", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == str(len(PAGES["index.html"]))


def test_only_get_and_head_are_served(server: ServerProcess, site: str) -> None:
    for method in ("PUT", "POST", "DELETE", "OPTIONS"):
        response = visit(server, site, "/index.html", method=method, body=b"x")
        assert response.status == 405, method
        assert response.headers["allow"] == "GET, HEAD"
        assert "<li>Code: MethodNotAllowed</li>" in response.body.decode()
        assert f"<li>Method: {method}</li>" in response.body.decode()
    assert visit(server, site, "/index.html").body == PAGES["index.html"].encode()


def test_signatures_are_ignored_on_the_website(server: ServerProcess, site: str) -> None:
    # Even the owner's signed request is anonymous here: private pages stay private.
    url = f"http://{website_host(site, server)}/private.html"
    signed = rawhttp.sign_v4("GET", url)
    response = visit(server, site, "/private.html", headers=signed)
    assert response.status == 403


def test_buckets_without_a_site_and_missing_buckets_are_404_pages(server: ServerProcess,
                                                                  bucket: str) -> None:
    plain = visit(server, bucket, "/")
    assert plain.status == 404
    assert "<li>Code: NoSuchWebsiteConfiguration</li>" in plain.body.decode()
    assert f"<li>BucketName: {bucket}</li>" in plain.body.decode()
    missing = visit(server, "no-such-bucket-" + uuid.uuid4().hex[:8], "/")
    assert missing.status == 404
    assert "<li>Code: NoSuchBucket</li>" in missing.body.decode()


# --- a browser ---

def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return headless_chromium(["--window-size=800,600", *args], profile)


def test_a_browser_shows_the_site(server: ServerProcess, site: str, tmp_path: Path) -> None:
    """Index, nested folders, the error page and a redirect rule in headless Chromium; the
    screenshots are this test's artifacts (under its tmp_path)."""
    origin = f"http://{website_host(site, server)}"
    visits = {
        "home": ("/", "Welcome home"),
        "docs": ("/docs", "Documentation index"),  # the 302 to /docs/ is followed
        "nested": ("/docs/guide/page.html", "A nested page"),
        "error": ("/no/such/page.html", "Custom error page"),
        "redirect-rule": ("/old/guide/", "The guide"),  # old/ -> docs/
    }
    for name, (path, text) in visits.items():
        dom = chromium(["--dump-dom", origin + path], tmp_path / "profile")
        assert text in dom.stdout, (name, dom.stdout[-500:], dom.stderr[-1000:])
        shot = tmp_path / f"{name}.png"
        result = chromium([f"--screenshot={shot}", origin + path], tmp_path / "profile")
        assert shot.exists(), (name, result.stderr[-1000:])
        assert shot.stat().st_size > 2000, name  # a rendered page, not an empty image
        assert shot.read_bytes().startswith(b"\x89PNG")


def test_objects_encrypted_with_a_customer_key_are_not_served(server: ServerProcess, s3: Any,
                                                              site: str) -> None:
    key = os.urandom(32)
    s3.put_object(Bucket=site, Key="sealed.html", Body=b"<h1>top secret</h1>",
                  ContentType="text/html", ACL="public-read",
                  SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    response = visit(server, site, "/sealed.html")
    assert response.status == 400
    assert "<li>Code: InvalidRequest</li>" in response.body.decode()
    assert b"top secret" not in response.body


def test_a_website_redirect_location_must_be_a_path_or_an_http_url(s3: Any,
                                                                    bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="r", Body=b"", WebsiteRedirectLocation="ftp://x/y")
    assert exc.value.response["Error"]["Code"] == "InvalidRedirectLocation"
    s3.put_object(Bucket=bucket, Key="r", Body=b"", WebsiteRedirectLocation="/elsewhere")
    assert s3.head_object(Bucket=bucket, Key="r")["WebsiteRedirectLocation"] == "/elsewhere"


def test_a_private_folder_is_not_revealed_by_the_slash_redirect(server: ServerProcess, s3: Any,
                                                                 bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="secret/index.html", Body=b"<h1>hidden</h1>")
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"}})
    # Nobody may list the bucket or read the folder's index: a folder that exists and one
    # that does not must look the same.
    assert visit(server, bucket, "/secret").status == 403
    assert visit(server, bucket, "/nothing").status == 403
    s3.put_object_acl(Bucket=bucket, Key="secret/index.html", ACL="public-read")
    assert visit(server, bucket, "/secret").status == 302


def test_a_refused_website_upload_closes_its_connection_at_once(server: ServerProcess,
                                                                site: str) -> None:
    start = time.monotonic()
    head = (f"PUT /page.html HTTP/1.1\r\nHost: {website_host(site, server)}\r\n"
            "Expect: 100-continue\r\nContent-Length: 10\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 405")
    assert b"connection: close" in response.lower()
    assert time.monotonic() - start < 5  # not aiohttp's 10-second wait for the body
