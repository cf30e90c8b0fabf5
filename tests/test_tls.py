"""HTTPS: ``cargohold admin tls self-signed`` and ``serve --tls-cert/--tls-key``.

A generated pair serves boto3 over HTTPS with the certificate as the trust anchor; plain HTTP
on the same port is dropped without harm; bad files stop the server with a clear message.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import SSLError
from cryptography import x509

from tests.conftest import ACCESS_KEY, SECRET_KEY, ServerProcess


def cargohold(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARGOHOLD_ROOT_ACCESS_KEY": ACCESS_KEY,
           "CARGOHOLD_ROOT_SECRET_KEY": SECRET_KEY}
    return subprocess.run([sys.executable, "-m", "cargohold", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def self_signed(out_dir: Path, *hosts: str) -> tuple[Path, Path]:
    names = [arg for host in hosts for arg in ("--host", host)]
    result = cargohold("admin", "--data-dir", str(out_dir / "unused"), "tls", "self-signed",
                       "--out-dir", str(out_dir), *names)
    assert result.returncode == 0, result.stderr
    return out_dir / "cert.pem", out_dir / "key.pem"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory,
                 pair: tuple[Path, Path]) -> Iterator[ServerProcess]:
    cert, key = pair
    proc = ServerProcess(data_dir=tmp_path_factory.mktemp("tls-server") / "data",
                         extra_args=["--tls-cert", str(cert), "--tls-key", str(key)])
    proc.start()
    yield proc
    proc.stop()


def make_verified_client(server: ServerProcess, verify: Path | bool) -> Any:
    """boto3 over HTTPS, trusting ``verify`` (a CA file) or the system store (True)."""
    return boto3.client(
        "s3", endpoint_url=f"https://127.0.0.1:{server.port}", aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY, region_name="nyc3",
        verify=str(verify) if isinstance(verify, Path) else verify,
        config=Config(retries={"max_attempts": 1}))


def test_the_generated_pair_names_the_service_hosts(pair: tuple[Path, Path]) -> None:
    cert_path, key_path = pair
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600  # the key is the owner's alone
    assert b"PRIVATE KEY" in key_path.read_bytes()
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "localhost", "*.localhost", "*.nyc3.localhost", "*.nyc3-static.localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]


def test_named_hosts_replace_the_defaults(tmp_path: Path) -> None:
    cert_path, _ = self_signed(tmp_path, "s3.example.test", "10.0.0.7")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["s3.example.test"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]


def test_boto3_works_over_https_trusting_the_generated_certificate(
        https_server: ServerProcess, pair: tuple[Path, Path]) -> None:
    s3 = make_verified_client(https_server, pair[0])
    bucket = f"tls-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(200_000)  # past the inline limit: sent from a file through TLS
    s3.put_object(Bucket=bucket, Key="big.bin", Body=body)
    s3.put_object(Bucket=bucket, Key="small.txt", Body=b"over tls")
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == body
    assert s3.get_object(Bucket=bucket, Key="small.txt")["Body"].read() == b"over tls"
    ranged = s3.get_object(Bucket=bucket, Key="big.bin", Range="bytes=100-199")
    assert ranged["Body"].read() == body[100:200]
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} == {
        "big.bin", "small.txt"}
    # A client that does not trust the certificate refuses the server.
    with pytest.raises(SSLError):
        make_verified_client(https_server, True).list_buckets()


def test_plain_http_on_the_https_port_is_refused_and_the_server_carries_on(
        https_server: ServerProcess, pair: tuple[Path, Path]) -> None:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", https_server.port, timeout=10)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError,
                        http.client.BadStatusLine)):
        conn.request("GET", "/")
        conn.getresponse()
    conn.close()
    assert time.monotonic() - started < 5  # closed at once, not left hanging
    with socket.create_connection(("127.0.0.1", https_server.port), timeout=10) as sock:
        sock.sendall(b"PUT /bucket/key HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        assert sock.recv(1024) == b""  # nothing but the close
    assert make_verified_client(https_server, pair[0]).list_buckets()["Buckets"] is not None
    assert "Traceback" not in https_server.log()


def test_the_website_endpoint_redirects_with_https(https_server: ServerProcess,
                                                   pair: tuple[Path, Path]) -> None:
    s3 = make_verified_client(https_server, pair[0])
    bucket = f"tls-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="docs/index.html", Body=b"<h1>docs</h1>",
                  ContentType="text/html", ACL="public-read")
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
        "IndexDocument": {"Suffix": "index.html"},
        "RoutingRules": [{"Condition": {"KeyPrefixEquals": "old/"},
                          "Redirect": {"ReplaceKeyPrefixWith": "docs/"}}]})
    host = f"{bucket}.nyc3-static.localhost:{https_server.port}"
    context = ssl.create_default_context(cafile=str(pair[0]))
    conn = http.client.HTTPSConnection("127.0.0.1", https_server.port, context=context,
                                       timeout=10)
    try:
        conn.request("GET", "/old/", headers={"Host": host})
        moved = conn.getresponse()
        moved.read()
        assert moved.status == 301
        assert moved.getheader("Location") == f"https://{host}/docs/"
        conn.request("GET", "/docs/", headers={"Host": host})
        page = conn.getresponse()
        assert (page.status, page.read()) == (200, b"<h1>docs</h1>")
    finally:
        conn.close()


def test_every_worker_serves_https(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    cert, key = pair
    proc = ServerProcess(data_dir=tmp_path / "data", extra_args=[
        "--workers", "2", "--tls-cert", str(cert), "--tls-key", str(key)])
    proc.start()
    try:
        deadline = time.monotonic() + 30
        # One line per worker, each serving with its own SSL context.
        while proc.log().count("serving on https://") < 2:
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.1)
        for _ in range(20):  # new connections land on either worker
            assert "Buckets" in make_verified_client(proc, cert).list_buckets()
        assert "serving S3 on https://" in proc.log()
    finally:
        proc.stop()


@pytest.mark.parametrize("case", ["missing-cert", "missing-key", "cert-only", "swapped",
                                  "mismatched", "not-pem"])
def test_bad_certificate_files_stop_the_server_with_a_clear_message(
        tmp_path: Path, pair: tuple[Path, Path], case: str) -> None:
    cert, key = pair
    other_cert, other_key = self_signed(tmp_path / "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    args, expected = {
        "missing-cert": (["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(key)],
                         "TLS certificate file not found"),
        "missing-key": (["--tls-cert", str(cert), "--tls-key", str(tmp_path / "nope.pem")],
                        "TLS private key file not found"),
        "cert-only": (["--tls-cert", str(cert)], "--tls-cert and --tls-key must be given"),
        "swapped": (["--tls-cert", str(key), "--tls-key", str(cert)],
                    "cannot use TLS certificate"),
        "mismatched": (["--tls-cert", str(cert), "--tls-key", str(other_key)],
                       "cannot use TLS certificate"),
        "not-pem": (["--tls-cert", str(garbage), "--tls-key", str(key)],
                    "cannot use TLS certificate"),
    }[case]
    assert other_cert.exists()
    result = cargohold("serve", "--host", "127.0.0.1", "--port", "0", "--workers", "2",
                       "--data-dir", str(tmp_path / "data"), *args, timeout=30)
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
