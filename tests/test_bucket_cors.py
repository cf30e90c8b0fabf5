"""Bucket CORS through the real server: the API, preflight, actual responses, and a real
browser (headless Chromium) on another origin."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests import rawhttp
from tests.conftest import ServerProcess, free_port, headless_chromium
from tests.test_buckets import error_code, status

ORIGIN = "https://app.example.com"
RULES = {"CORSRules": [
    {"AllowedOrigins": [ORIGIN, "http://localhost:*"], "AllowedMethods": ["GET", "PUT"],
     "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 600},
]}


def options(server: ServerProcess, path: str, headers: dict[str, str]) -> rawhttp.Response:
    return rawhttp.send("OPTIONS", f"{server.endpoint}{path}", headers)


def test_cors_configuration_round_trips_and_can_be_deleted(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=bucket)
    assert error_code(exc) == "NoSuchCORSConfiguration" and status(exc) == 404
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rules[0]["AllowedOrigins"] == [ORIGIN, "http://localhost:*"]
    assert rules[0]["AllowedMethods"] == ["GET", "PUT"]
    assert rules[0]["MaxAgeSeconds"] == 600
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_cors(Bucket=bucket)
    assert error_code(exc) == "NoSuchCORSConfiguration"


def test_invalid_cors_rules_are_refused(s3: Any, bucket: str) -> None:
    bad = {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]}
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=bad)
    assert error_code(exc) == "InvalidRequest"
    bad = {"CORSRules": [{"AllowedOrigins": ["https://*.*.example.com"],
                          "AllowedMethods": ["GET"]}]}
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=bad)
    assert error_code(exc) == "InvalidRequest"


def test_preflight_needs_no_credentials_and_answers_only_matching_requests(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    path = f"/{bucket}/some/key"
    ask = {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT",
           "Access-Control-Request-Headers": "Content-Type, X-Amz-Meta-Colour"}
    not_enabled = options(server, path, ask)
    assert not_enabled.status == 403 and b"AccessForbidden" in not_enabled.body
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    allowed = options(server, path, ask)
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "PUT" in allowed.headers["access-control-allow-methods"]
    assert allowed.headers["access-control-allow-headers"] == "content-type, x-amz-meta-colour"
    assert allowed.headers["access-control-max-age"] == "600"
    refused = options(server, path, {**ask, "Origin": "https://evil.example"})
    assert refused.status == 403 and b"AccessForbidden" in refused.body
    refused = options(server, path, {**ask, "Access-Control-Request-Method": "DELETE"})
    assert refused.status == 403
    no_origin = options(server, path, {"Access-Control-Request-Method": "PUT"})
    assert no_origin.status == 400 and b"BadRequest" in no_origin.body
    missing = options(server, "/no-such-bucket-here/k", ask)
    assert missing.status == 403


def test_actual_responses_and_errors_carry_cors_headers_for_a_matching_origin(
        server: ServerProcess, s3: Any, bucket: str) -> None:
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    s3.put_object(Bucket=bucket, Key="k", Body=b"cors body")
    url = f"{server.endpoint}/{bucket}/k"
    found = rawhttp.send("GET", url, {**rawhttp.sign_v4("GET", url), "Origin": ORIGIN})
    assert found.status == 200
    assert found.headers["access-control-allow-origin"] == ORIGIN
    assert found.headers["access-control-expose-headers"] == "ETag"
    assert "Origin" in found.headers["vary"]
    missing_url = f"{server.endpoint}/{bucket}/missing"
    missing = rawhttp.send("GET", missing_url,
                           {**rawhttp.sign_v4("GET", missing_url), "Origin": ORIGIN})
    assert missing.status == 404
    assert missing.headers["access-control-allow-origin"] == ORIGIN
    presigned = rawhttp.send("GET", rawhttp.presign_v4("GET", url), {"Origin": ORIGIN})
    assert presigned.status == 200 and presigned.body == b"cors body"
    assert presigned.headers["access-control-allow-origin"] == ORIGIN
    # Refused before its bucket was loaded (a bad signature): the headers still come, so
    # the browser can show the page the real error.
    forged = rawhttp.send("GET", url, {**rawhttp.sign_v4(
        "GET", url, creds=rawhttp.credentials(secret_key="wrong")), "Origin": ORIGIN})
    assert forged.status == 403
    assert forged.headers["access-control-allow-origin"] == ORIGIN
    stranger = rawhttp.send("GET", url, {**rawhttp.sign_v4("GET", url),
                                         "Origin": "https://evil.example"})
    assert stranger.status == 200 and "access-control-allow-origin" not in stranger.headers


# --- a real browser ---

PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
async function run() {
  const out = document.getElementById("out");
  try {
    const put = await fetch(%(put)s, {method: "PUT", body: "hello from a browser",
                                      headers: {"Content-Type": "text/plain"}});
    const get = await fetch(%(get)s);
    out.textContent = "PUT " + put.status + " GET " + get.status + " " + await get.text();
  } catch (e) {
    out.textContent = "blocked: " + e;
  }
}
run();
</script></body></html>"""


@contextlib.contextmanager
def page_server(root: Path) -> Iterator[str]:
    """Serve ``root`` on localhost (a different origin from the S3 server's 127.0.0.1)."""
    port = free_port()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def browser_dom(url: str, profile: Path) -> str:
    return headless_chromium(["--virtual-time-budget=15000", "--dump-dom", url], profile).stdout


@pytest.mark.parametrize("with_rule", [True, False])
def test_a_browser_on_another_origin_puts_and_gets_only_with_a_cors_rule(
        server: ServerProcess, s3: Any, bucket: str, tmp_path: Path, with_rule: bool) -> None:
    if with_rule:
        s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=RULES)
    url = f"{server.endpoint}/{bucket}/from-browser.txt"
    page = PAGE % {"put": repr(rawhttp.presign_v4("PUT", url)),
                   "get": repr(rawhttp.presign_v4("GET", url))}
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(page)
    with page_server(tmp_path / "site") as origin:
        dom = browser_dom(f"{origin}/index.html", tmp_path / "profile")
    if with_rule:
        assert "PUT 200 GET 200 hello from a browser" in dom, dom[-500:]
        got = s3.get_object(Bucket=bucket, Key="from-browser.txt")["Body"].read()
        assert got == b"hello from a browser"
    else:
        assert "blocked: TypeError" in dom, dom[-500:]
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key="from-browser.txt")
