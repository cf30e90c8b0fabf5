"""pyarrow's S3FileSystem (the AWS C++ SDK, as pandas and Arrow users reach S3), unchanged.

pyarrow (26) uploads every file as a multipart upload (one empty part for an empty file),
each part streamed ``aws-chunked`` with an unsigned CRC64NVME trailer even over plain HTTP; it
creates directories as empty ``dir/`` marker objects (PutObject with a CRC64NVME header),
reads with ranged GETs sending ``x-amz-checksum-mode: enabled`` in lower case, copies with
CopyObject and deletes directories with DeleteObjects. What it stores is cross-checked
with boto3.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from awscrt import checksums as crt
from pyarrow import fs

from tests.conftest import ACCESS_KEY, REGION, SECRET_KEY, ServerProcess, eventually
from tests.test_clients import (
    file_sha256,
    multipart_parts,
    object_sha256,
    parts_of,
    write_random_file,
)

MIB = 1024 * 1024
EMPTY_CRC64NVME = base64.b64encode(bytes(8)).decode()


@pytest.fixture
def arrow_fs(server: ServerProcess) -> fs.S3FileSystem:
    """A stock S3FileSystem for the test server: path-style, plain HTTP, no retries."""
    return fs.S3FileSystem(
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION,
        endpoint_override=f"127.0.0.1:{server.port}", scheme="http",
        retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=1),
    )


@pytest.fixture(autouse=True)
def _remove_big_files(tmp_path: Path) -> Iterator[None]:
    yield
    for path in tmp_path.glob("*.bin"):
        path.unlink(missing_ok=True)


def upload(arrow_fs: fs.S3FileSystem, source: Path, path: str) -> None:
    """Stream ``source`` into ``path`` through open_output_stream, 1 MiB per write."""
    with open(source, "rb") as fh, arrow_fs.open_output_stream(path) as out:
        while chunk := fh.read(MIB):
            out.write(chunk)


def keys(s3: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    """Every key under ``prefix`` with its size, as boto3 lists them."""
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update((o["Key"], o["Size"]) for o in page.get("Contents", []))
    return found


def crc64nvme_b64(data: bytes) -> str:
    return base64.b64encode(crt.crc64nvme(data).to_bytes(8, "big")).decode()


def infos(arrow_fs: fs.S3FileSystem, selector: fs.FileSelector) -> dict[str, fs.FileType]:
    return {info.path: info.type for info in arrow_fs.get_file_info(selector)}


def test_pyarrow_writes_a_20_mib_file_in_parts_and_reads_it_back_byte_exact(
        arrow_fs: fs.S3FileSystem, s3: Any, bucket: str, tmp_path: Path) -> None:
    size = 20 * MIB + 12345
    source = tmp_path / "up.bin"
    digest = write_random_file(source, size)
    upload(arrow_fs, source, f"{bucket}/big.bin")
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == size
    assert multipart_parts(s3, bucket, "big.bin") >= 2
    assert object_sha256(s3, bucket, "big.bin") == digest
    info = arrow_fs.get_file_info(f"{bucket}/big.bin")
    assert (info.type, info.size) == (fs.FileType.File, size)
    assert int(info.mtime.timestamp()) == int(head["LastModified"].timestamp())
    back = tmp_path / "back.bin"
    with arrow_fs.open_input_stream(f"{bucket}/big.bin") as stream, open(back, "wb") as fh:
        while chunk := stream.read(3 * MIB):
            fh.write(chunk)
    assert file_sha256(back) == digest


def test_pyarrow_random_access_reads_ranges_across_part_boundaries_and_the_end(
        arrow_fs: fs.S3FileSystem, bucket: str, tmp_path: Path) -> None:
    size = 20 * MIB + 777
    source = tmp_path / "ranges.bin"
    write_random_file(source, size)
    upload(arrow_fs, source, f"{bucket}/ranges.bin")
    data = source.read_bytes()
    with arrow_fs.open_input_file(f"{bucket}/ranges.bin") as handle:
        assert handle.size() == size
        # pyarrow's parts are 10 MiB: these reads span the stored parts' seams.
        for offset, length in ((0, 1), (10 * MIB - 100, 200), (5 * MIB, 11 * MIB),
                               (20 * MIB - 1, 778), (size - 1, 1)):
            assert handle.read_at(length, offset) == data[offset:offset + length]
        # Past the end, a read is cut short at the last byte, as a file's is.
        assert handle.read_at(1000, size - 10) == data[-10:]
        handle.seek(10 * MIB - 3)
        assert handle.read(6) == data[10 * MIB - 3:10 * MIB + 3]
        assert handle.tell() == 10 * MIB + 3
        handle.seek(size - 5)
        assert handle.read() == data[-5:]
        assert handle.tell() == size


def test_pyarrow_sends_a_crc64nvme_trailer_with_each_part_and_the_server_keeps_it(
        arrow_fs: fs.S3FileSystem, s3: Any, bucket: str, tmp_path: Path) -> None:
    size = 20 * MIB + 123
    source = tmp_path / "sums.bin"
    write_random_file(source, size)
    data = source.read_bytes()

    def listed() -> list[dict[str, Any]]:
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        if not uploads:
            return []
        assert [u["Key"] for u in uploads] == ["sums.bin"]
        return list(s3.list_parts(Bucket=bucket, Key="sums.bin",
                                  UploadId=uploads[0]["UploadId"]).get("Parts", []))

    with arrow_fs.open_output_stream(f"{bucket}/sums.bin") as out:
        out.write(data)
        # The full parts go up in the background while the stream is open; the tail
        # waits for close. ListParts shows what the server verified and kept.
        eventually(lambda: len(listed()) >= 2, what="pyarrow's first two parts")
        parts = listed()
        part_size = parts[0]["Size"]
        offset = 0
        for part in parts:
            piece = data[offset:offset + part["Size"]]
            assert part["ChecksumCRC64NVME"] == crc64nvme_b64(piece)
            assert part["ETag"] == f'"{hashlib.md5(piece).hexdigest()}"'
            offset += part["Size"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.head_object(Bucket=bucket, Key="sums.bin")["ContentLength"] == size
    assert multipart_parts(s3, bucket, "sums.bin") == parts_of(size, part_size)
    assert object_sha256(s3, bucket, "sums.bin") == hashlib.sha256(data).hexdigest()


def test_pyarrow_writes_and_reads_back_an_empty_file(
        arrow_fs: fs.S3FileSystem, s3: Any, bucket: str) -> None:
    with arrow_fs.open_output_stream(f"{bucket}/empty"):
        pass
    head = s3.head_object(Bucket=bucket, Key="empty")
    assert head["ContentLength"] == 0
    # pyarrow 26 completes a multipart upload of one empty part; a PutObject would do too.
    assert head["ETag"] in (f'"{hashlib.md5(hashlib.md5(b"").digest()).hexdigest()}-1"',
                            f'"{hashlib.md5(b"").hexdigest()}"')
    info = arrow_fs.get_file_info(f"{bucket}/empty")
    assert (info.type, info.size) == (fs.FileType.File, 0)
    with arrow_fs.open_input_stream(f"{bucket}/empty") as stream:
        assert stream.read() == b""


def test_pyarrow_output_stream_metadata_becomes_the_object_s_content_headers(
        arrow_fs: fs.S3FileSystem, s3: Any, bucket: str) -> None:
    body = b"a,b\n1,2\n"
    with arrow_fs.open_output_stream(f"{bucket}/t.csv", metadata={
            "Content-Type": "text/csv", "Cache-Control": "no-cache"}) as out:
        out.write(body)
    head = s3.head_object(Bucket=bucket, Key="t.csv")
    assert (head["ContentType"], head["CacheControl"]) == ("text/csv", "no-cache")
    with arrow_fs.open_input_stream(f"{bucket}/t.csv") as stream:
        meta = stream.metadata()
        assert stream.read() == body
    assert meta["Content-Type"] == b"text/csv"
    assert meta["Content-Length"] == str(len(body)).encode()
    assert meta["ETag"] == head["ETag"].encode()


def test_pyarrow_get_file_info_tells_files_prefixes_and_missing_paths_apart(
        arrow_fs: fs.S3FileSystem, s3: Any, bucket: str) -> None:
    # Written with boto3: no directory markers, "p" and "p/q" exist only as prefixes.
    s3.put_object(Bucket=bucket, Key="p/q/leaf.txt", Body=b"leaf")
    got = {info.path: (info.type, info.size) for info in arrow_fs.get_file_info([
        bucket, f"{bucket}/p", f"{bucket}/p/q", f"{bucket}/p/q/leaf.txt",
        f"{bucket}/p/q/le", f"{bucket}/missing", f"{bucket}-missing/x"])}
    assert got == {
        bucket: (fs.FileType.Directory, None),
        f"{bucket}/p": (fs.FileType.Directory, None),
        f"{bucket}/p/q": (fs.FileType.Directory, None),
        f"{bucket}/p/q/leaf.txt": (fs.FileType.File, 4),
        f"{bucket}/p/q/le": (fs.FileType.NotFound, None),
        f"{bucket}/missing": (fs.FileType.NotFound, None),
        f"{bucket}-missing/x": (fs.FileType.NotFound, None),
    }


def test_pyarrow_create_dir_writes_markers_and_delete_dir_removes_all_under_it(
        arrow_fs: fs.S3FileSystem, s3: Any, bucket: str) -> None:
    arrow_fs.create_dir(f"{bucket}/d1/d2")
    assert keys(s3, bucket) == {"d1/": 0, "d1/d2/": 0}
    marker = s3.head_object(Bucket=bucket, Key="d1/d2/", ChecksumMode="ENABLED")
    assert marker["ContentType"] == "application/x-directory"
    # The marker's PutObject carried x-amz-checksum-crc64nvme: stored, and returned.
    assert marker["ChecksumCRC64NVME"] == EMPTY_CRC64NVME
    assert marker["ChecksumType"] == "FULL_OBJECT"
    with arrow_fs.open_output_stream(f"{bucket}/d1/d2/f.txt") as out:
        out.write(b"inside")
    with arrow_fs.open_output_stream(f"{bucket}/keep.txt") as out:
        out.write(b"outside")
    assert arrow_fs.get_file_info(f"{bucket}/d1/d2").type == fs.FileType.Directory
    arrow_fs.delete_dir(f"{bucket}/d1")
    assert keys(s3, bucket) == {"keep.txt": 7}
    assert arrow_fs.get_file_info(f"{bucket}/d1").type == fs.FileType.NotFound


def test_pyarrow_file_selector_lists_one_level_or_the_whole_tree(
        arrow_fs: fs.S3FileSystem, bucket: str) -> None:
    arrow_fs.create_dir(f"{bucket}/d/e")
    for name in ("a.txt", "d/b.txt", "d/e/c.txt", "d/x/y/z.txt"):
        with arrow_fs.open_output_stream(f"{bucket}/{name}") as out:
            out.write(name.encode())
    File, Dir = fs.FileType.File, fs.FileType.Directory
    assert infos(arrow_fs, fs.FileSelector(bucket)) == {
        f"{bucket}/a.txt": File, f"{bucket}/d": Dir}
    assert infos(arrow_fs, fs.FileSelector(f"{bucket}/d")) == {
        f"{bucket}/d/b.txt": File, f"{bucket}/d/e": Dir, f"{bucket}/d/x": Dir}
    assert infos(arrow_fs, fs.FileSelector(bucket, recursive=True)) == {
        f"{bucket}/a.txt": File, f"{bucket}/d": Dir, f"{bucket}/d/b.txt": File,
        f"{bucket}/d/e": Dir, f"{bucket}/d/e/c.txt": File,
        f"{bucket}/d/x": Dir, f"{bucket}/d/x/y": Dir, f"{bucket}/d/x/y/z.txt": File}
    sizes = {i.path: i.size for i in arrow_fs.get_file_info(
        fs.FileSelector(f"{bucket}/d", recursive=True)) if i.type == File}
    assert sizes == {f"{bucket}/d/b.txt": 7, f"{bucket}/d/e/c.txt": 9,
                     f"{bucket}/d/x/y/z.txt": 11}
    assert arrow_fs.get_file_info(fs.FileSelector(f"{bucket}/nope",
                                                  allow_not_found=True)) == []
    with pytest.raises(FileNotFoundError):
        arrow_fs.get_file_info(fs.FileSelector(f"{bucket}/nope"))


def test_pyarrow_copy_file_move_and_delete_file_act_on_the_server(
        arrow_fs: fs.S3FileSystem, s3: Any, bucket: str, other_bucket: str) -> None:
    data = os.urandom(6 * MIB + 5)
    s3.put_object(Bucket=bucket, Key="src.bin", Body=data)
    source_etag = s3.head_object(Bucket=bucket, Key="src.bin")["ETag"]
    arrow_fs.copy_file(f"{bucket}/src.bin", f"{bucket}/dir/copy.bin")
    arrow_fs.copy_file(f"{bucket}/src.bin", f"{other_bucket}/copy.bin")
    for target, key in ((bucket, "dir/copy.bin"), (other_bucket, "copy.bin")):
        head = s3.head_object(Bucket=target, Key=key)
        assert (head["ContentLength"], head["ETag"]) == (len(data), source_etag)
        assert s3.get_object(Bucket=target, Key=key)["Body"].read() == data
    arrow_fs.move(f"{bucket}/dir/copy.bin", f"{bucket}/moved.bin")
    # Moving the last file out of "dir" leaves pyarrow's marker, so the directory stays.
    assert keys(s3, bucket) == {"src.bin": len(data), "moved.bin": len(data), "dir/": 0}
    assert arrow_fs.get_file_info(f"{bucket}/dir").type == fs.FileType.Directory
    with arrow_fs.open_input_stream(f"{bucket}/moved.bin") as stream:
        assert stream.read() == data
    arrow_fs.delete_file(f"{bucket}/src.bin")
    assert arrow_fs.get_file_info(f"{bucket}/src.bin").type == fs.FileType.NotFound
    assert keys(s3, bucket) == {"moved.bin": len(data), "dir/": 0}
    with pytest.raises(FileNotFoundError):
        arrow_fs.open_input_stream(f"{bucket}/src.bin")


def random_table(rows: int) -> pa.Table:
    """``rows`` incompressible int64s, a small repeated string column and a float."""
    ints = pa.Array.from_buffers(pa.int64(), rows, [None, pa.py_buffer(os.urandom(rows * 8))])
    return pa.table({
        "id": pa.array(range(rows), pa.int64()),
        "noise": ints,
        "kind": pa.array([f"k{i % 5}" for i in range(rows)], pa.string()),
        "x": pa.array([i / 7 for i in range(rows)], pa.float64()),
    })


def test_parquet_write_table_through_the_filesystem_reads_back_equal(
        arrow_fs: fs.S3FileSystem, s3: Any, bucket: str) -> None:
    # ~12 MiB of Parquet: more than one of pyarrow's upload parts; reading it back is
    # ranged GETs (footer first, then column chunks).
    table = random_table(1_200_000)
    pq.write_table(table, f"{bucket}/path/t.parquet", filesystem=arrow_fs)
    stored = keys(s3, bucket)
    assert list(stored) == ["path/t.parquet"]
    assert stored["path/t.parquet"] > 10 * MIB
    assert arrow_fs.get_file_info(f"{bucket}/path/t.parquet").size == stored["path/t.parquet"]
    assert multipart_parts(s3, bucket, "path/t.parquet") >= 2
    body = s3.get_object(Bucket=bucket, Key="path/t.parquet")["Body"].read()
    assert body[:4] == body[-4:] == b"PAR1"
    assert pq.ParquetFile(f"{bucket}/path/t.parquet", filesystem=arrow_fs).metadata.num_rows == (
        table.num_rows)
    assert pq.read_table(f"{bucket}/path/t.parquet", filesystem=arrow_fs).equals(table)
    some = pq.read_table(f"{bucket}/path/t.parquet", filesystem=arrow_fs,
                         columns=["id", "kind"], filters=[("kind", "=", "k3")])
    assert some.num_rows == table.num_rows // 5
    assert set(some.column("kind").to_pylist()) == {"k3"}


def test_write_dataset_partitions_into_hive_directories_and_reads_back_equal(
        arrow_fs: fs.S3FileSystem, s3: Any, bucket: str) -> None:
    table = random_table(50_000)
    partitioning = ds.partitioning(pa.schema([("kind", pa.string())]), flavor="hive")
    ds.write_dataset(table, f"{bucket}/ds", format="parquet", partitioning=partitioning,
                     filesystem=arrow_fs)
    stored = keys(s3, bucket)
    files = sorted(k for k in stored if not k.endswith("/"))
    assert files == [f"ds/kind=k{i}/part-0.parquet" for i in range(5)]
    assert all(stored[k] > 0 for k in files)
    # Directory markers pyarrow made on the way, empty.
    assert {k: v for k, v in stored.items() if k.endswith("/")} == {
        "ds/": 0, **{f"ds/kind=k{i}/": 0 for i in range(5)}}
    dataset = ds.dataset(f"{bucket}/ds", format="parquet", partitioning=partitioning,
                         filesystem=arrow_fs)
    assert sorted(p.split("/", 1)[1] for p in dataset.files) == files
    back = dataset.to_table().select(table.column_names).sort_by("id")
    assert back.equals(table)
    only = dataset.to_table(filter=ds.field("kind") == "k2")
    assert only.num_rows == table.num_rows // 5
