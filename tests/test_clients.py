"""Stock clients' multipart uploads, downloads and server-side copies, unchanged.

The aws cli (1 GiB up, down and bucket to bucket), boto3's transfer manager, rclone and
s3cmd each move a file big enough to go multipart and get it back byte for byte. Files are
compared by streaming SHA-256; none is read into memory whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess, missing_client
from tests.test_awscli import aws

MIB = 1024 * 1024
GIB = 1024 * MIB
AWSCLI_CHUNK = 8 * MIB  # the aws cli's default multipart_threshold and multipart_chunksize


def write_random_file(path: Path, size: int) -> str:
    """Write ``size`` incompressible bytes to ``path``; return their SHA-256.

    Each MiB starts with its own index and continues with one of 16 random blocks, so no two
    MiB are alike (a misplaced part or range cannot go unnoticed) while generating 1 GiB
    costs a few hundred milliseconds rather than seconds of ``os.urandom``.
    """
    blocks = [os.urandom(MIB) for _ in range(16)]
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for index, start in enumerate(range(0, size, MIB)):
            chunk = (index.to_bytes(8, "little") + blocks[index % 16][8:])[:size - start]
            fh.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def object_sha256(s3: Any, bucket: str, key: str) -> str:
    """SHA-256 of an object's body, streamed 1 MiB at a time."""
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in body.iter_chunks(MIB):
        digest.update(chunk)
    return digest.hexdigest()


def multipart_parts(s3: Any, bucket: str, key: str) -> int:
    """The part count of the stored ETag's ``-N`` suffix (fails for a single-part ETag)."""
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"]
    match = re.fullmatch(r'"[0-9a-f]{32}-(\d+)"', etag)
    assert match, f"not a multipart ETag: {etag}"
    return int(match.group(1))


def parts_of(size: int, part_size: int) -> int:
    return -(-size // part_size)


PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def scenario_runner(command: list[str], server: ServerProcess, bucket: str, tmp_path: Path,
                    cwd: Path | None = None,
                    extra_env: dict[str, str] | None = None) -> Callable[..., dict[str, Any]]:
    """A function that runs ``command SCENARIO`` (a client's scenario program: tests/js,
    tests/go, tests/fsspec) against ``server`` and ``bucket`` and returns the one JSON object
    it prints. Keyword arguments become CH_* variables. No inherited AWS_* variable, proxy or
    AWS config file may change one of the client's defaults."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("AWS_") and k.lower() not in PROXY_VARIABLES}
    base.update({
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "CH_ENDPOINT": server.endpoint, "CH_ACCESS_KEY": ACCESS_KEY,
        "CH_SECRET_KEY": SECRET_KEY, "CH_REGION": REGION, "CH_BUCKET": bucket,
        **(extra_env or {}),
    })

    def run(scenario: str, **settings: str) -> dict[str, Any]:
        env = {**base, **{f"CH_{k.upper()}": v for k, v in settings.items()}}
        result = subprocess.run([*command, scenario], cwd=cwd or tmp_path, env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, (
            f"scenario {scenario} failed:\n{result.stdout}\n{result.stderr}")
        out: dict[str, Any] = json.loads(result.stdout)
        return out

    return run


def run(argv: list[str], env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def require(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        missing_client(f"{binary} is not installed (apt-get install {binary}; .ci/run installs it)")
    return found


@pytest.fixture(autouse=True)
def _remove_big_files(tmp_path: Path) -> Iterator[None]:
    """pytest keeps recent temp dirs; do not leave gigabytes of test files in them."""
    yield
    for path in tmp_path.glob("*.bin"):
        path.unlink(missing_ok=True)


def test_aws_s3_cp_uploads_a_1_gib_file_in_parts_and_downloads_it_byte_exact(
        server: ServerProcess, s3: Any, bucket: str, aws_env: dict[str, str],
        tmp_path: Path) -> None:
    source = tmp_path / "gib.bin"
    digest = write_random_file(source, GIB)
    aws(aws_env, server, "s3", "cp", "--no-progress", str(source), f"s3://{bucket}/gib.bin")
    assert multipart_parts(s3, bucket, "gib.bin") == parts_of(GIB, AWSCLI_CHUNK)
    source.unlink()
    back = tmp_path / "back.bin"
    aws(aws_env, server, "s3", "cp", "--no-progress", f"s3://{bucket}/gib.bin", str(back))
    assert back.stat().st_size == GIB
    assert file_sha256(back) == digest


def test_aws_s3_cp_between_buckets_copies_a_1_gib_object_on_the_server(
        server: ServerProcess, s3: Any, bucket: str, other_bucket: str,
        aws_env: dict[str, str], tmp_path: Path) -> None:
    # Over its multipart threshold the aws cli copies with UploadPartCopy, one ranged
    # part-copy per 8 MiB; no object data passes through the client.
    source = tmp_path / "gib.bin"
    digest = write_random_file(source, GIB)
    aws(aws_env, server, "s3", "cp", "--no-progress", str(source), f"s3://{bucket}/x")
    source.unlink()
    aws(aws_env, server, "s3", "cp", "--no-progress", f"s3://{bucket}/x",
        f"s3://{other_bucket}/y")
    head = s3.head_object(Bucket=other_bucket, Key="y")
    assert head["ContentLength"] == GIB
    assert multipart_parts(s3, other_bucket, "y") == parts_of(GIB, AWSCLI_CHUNK)
    assert object_sha256(s3, other_bucket, "y") == digest
    # The source is untouched.
    assert s3.head_object(Bucket=bucket, Key="x")["ContentLength"] == GIB


def test_boto3_upload_file_and_download_file_with_8_mib_parts_and_8_threads_round_trip(
        s3: Any, bucket: str, tmp_path: Path) -> None:
    size = 64 * MIB + 12345  # a short last part
    source = tmp_path / "boto3.bin"
    digest = write_random_file(source, size)
    config = TransferConfig(multipart_threshold=8 * MIB, max_concurrency=8)
    s3.upload_file(str(source), bucket, "boto3.bin", Config=config)
    assert multipart_parts(s3, bucket, "boto3.bin") == parts_of(size, config.multipart_chunksize)
    back = tmp_path / "back.bin"
    s3.download_file(bucket, "boto3.bin", str(back), Config=config)
    assert back.stat().st_size == size
    assert file_sha256(back) == digest


def test_rclone_uploads_100_mib_in_5_mib_parts_and_downloads_it_back_byte_exact(
        server: ServerProcess, s3: Any, bucket: str, tmp_path: Path) -> None:
    rclone = require("rclone")
    # No user config, and no AWS_* settings: the AWS SDK inside rclone refuses to start
    # when AWS_CA_BUNDLE is set, even for a plain-HTTP endpoint.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))},
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
        "RCLONE_CONFIG_CARGOHOLD_TYPE": "s3",
        "RCLONE_CONFIG_CARGOHOLD_PROVIDER": "Other",
        "RCLONE_CONFIG_CARGOHOLD_ENDPOINT": server.endpoint,
        "RCLONE_CONFIG_CARGOHOLD_ACCESS_KEY_ID": ACCESS_KEY,
        "RCLONE_CONFIG_CARGOHOLD_SECRET_ACCESS_KEY": SECRET_KEY,
        "RCLONE_CONFIG_CARGOHOLD_REGION": REGION,
    }
    size = 100 * MIB
    source = tmp_path / "rclone.bin"
    digest = write_random_file(source, size)
    run([rclone, "copyto", str(source), f"cargohold:{bucket}/rclone.bin",
         "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--retries", "1",
         "--low-level-retries", "1"], env)
    assert multipart_parts(s3, bucket, "rclone.bin") == parts_of(size, 5 * MIB)
    back = tmp_path / "back.bin"
    run([rclone, "copyto", f"cargohold:{bucket}/rclone.bin", str(back), "--retries", "1",
         "--low-level-retries", "1"], env)
    assert back.stat().st_size == size
    assert file_sha256(back) == digest


def test_s3cmd_uploads_100_mib_in_5_mib_parts_and_downloads_it_back_byte_exact(
        server: ServerProcess, s3: Any, bucket: str, tmp_path: Path) -> None:
    s3cmd = require("s3cmd")
    config = tmp_path / "s3cmd.cfg"
    host = f"127.0.0.1:{server.port}"
    config.write_text(
        "[default]\n"
        f"access_key = {ACCESS_KEY}\n"
        f"secret_key = {SECRET_KEY}\n"
        f"host_base = {host}\n"
        f"host_bucket = {host}\n"  # no %(bucket)s: path-style addressing
        f"bucket_location = {REGION}\n"
        "use_https = False\n"
        "signature_v2 = False\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    size = 100 * MIB
    source = tmp_path / "s3cmd.bin"
    digest = write_random_file(source, size)
    run([s3cmd, "-c", str(config), "--no-progress", "put", str(source),
         f"s3://{bucket}/s3cmd.bin", "--multipart-chunk-size-mb=5"], env)
    assert multipart_parts(s3, bucket, "s3cmd.bin") == parts_of(size, 5 * MIB)
    back = tmp_path / "back.bin"
    run([s3cmd, "-c", str(config), "--no-progress", "get", f"s3://{bucket}/s3cmd.bin",
         str(back)], env)
    assert back.stat().st_size == size
    assert file_sha256(back) == digest
