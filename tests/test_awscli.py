"""The aws cli, unchanged, against the real server."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import ServerProcess, aws_cli


def aws(env: dict[str, str], server: ServerProcess, *args: str) -> str:
    result = subprocess.run([aws_cli(), "--endpoint-url", server.endpoint, *args],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_aws_s3_cp_of_100_mib_round_trips_byte_exact(server: ServerProcess, bucket: str,
                                                    aws_env: dict[str, str],
                                                    tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    with open(source, "wb") as fh:
        for _ in range(100):
            fh.write(os.urandom(1024 * 1024))
    aws(aws_env, server, "s3", "cp", str(source), f"s3://{bucket}/big.bin")
    back = tmp_path / "back.bin"
    aws(aws_env, server, "s3", "cp", f"s3://{bucket}/big.bin", str(back))
    assert filecmp.cmp(source, back, shallow=False)


def test_aws_s3_sync_of_200_small_files_works_both_ways(server: ServerProcess, bucket: str,
                                                       aws_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    up = tmp_path / "up"
    for i in range(200):
        path = up / f"dir{i % 7}" / f"file {i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(i * 13 % 3000))
    aws(aws_env, server, "s3", "sync", str(up), f"s3://{bucket}/tree")
    listing = aws(aws_env, server, "s3", "ls", "--recursive", f"s3://{bucket}/tree/")
    assert len(listing.strip().splitlines()) == 200
    down = tmp_path / "down"
    aws(aws_env, server, "s3", "sync", f"s3://{bucket}/tree", str(down))
    mismatch = filecmp.dircmp(up, down)
    assert not mismatch.left_only and not mismatch.right_only
    for i in range(200):
        rel = Path(f"dir{i % 7}") / f"file {i}.txt"
        assert (up / rel).read_bytes() == (down / rel).read_bytes()
    # A second sync has nothing to do.
    assert aws(aws_env, server, "s3", "sync", str(up), f"s3://{bucket}/tree") == ""


def test_aws_s3_rm_recursive_empties_a_prefix(server: ServerProcess, s3: Any, bucket: str,
                                             aws_env: dict[str, str]) -> None:
    for i in range(15):
        s3.put_object(Bucket=bucket, Key=f"junk/{i}", Body=b"x")
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    aws(aws_env, server, "s3", "rm", "--recursive", f"s3://{bucket}/junk/")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["keep"]


def test_aws_s3api_head_and_list_object_versions(server: ServerProcess, s3: Any, bucket: str,
                                                 aws_env: dict[str, str]) -> None:
    s3.put_object(Bucket=bucket, Key="api", Body=b"hello", Metadata={"a": "b"})
    head = json.loads(aws(aws_env, server, "s3api", "head-object", "--bucket", bucket,
                          "--key", "api"))
    assert head["ContentLength"] == 5
    assert head["Metadata"] == {"a": "b"}
    versions = json.loads(aws(aws_env, server, "s3api", "list-object-versions",
                              "--bucket", bucket))
    assert [(v["Key"], v["VersionId"]) for v in versions["Versions"]] == [("api", "null")]


def test_aws_s3_ls_lists_buckets(server: ServerProcess, bucket: str,
                                 aws_env: dict[str, str]) -> None:
    assert bucket in aws(aws_env, server, "s3", "ls")
