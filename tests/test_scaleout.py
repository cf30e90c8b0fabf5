"""Three gateways on one PostgreSQL database and one shared data directory.

Each gateway is a separate ``cargohold serve`` process with its own port, as it would be on
its own machine behind a load balancer; they share nothing but the database and the
volume. The tests spread real client traffic over them and check that they behave as one
service: reads see the latest acknowledged write whichever gateway took it, conditional
writes have one winner, a gateway killed mid-way loses no acknowledged write, and the
lifecycle worker acts once for the cluster (and moves to a surviving gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from cargohold.background import LeaseHolder
from tests import rawhttp
from tests.conftest import ServerProcess, eventually, make_client, new_bucket
from tests.pgserver import fresh_database_dsn

GATEWAYS = 3
ARGS = ["--lease-seconds", "2", "--lifecycle-day-seconds", "2",
        "--lifecycle-interval-seconds", "0.3", "--gc-interval-seconds", "1"]


class Cluster:
    def __init__(self, tmp_path: Path, extra_args: list[str] | None = None) -> None:
        self.dsn = fresh_database_dsn()
        self.data_dir = tmp_path / "shared-volume"
        self.gateways = [ServerProcess(data_dir=self.data_dir, meta=self.dsn,
                                       extra_args=[*ARGS, *(extra_args or [])])
                         for _ in range(GATEWAYS)]

    def start(self) -> Cluster:
        # Started together, as a deployment would: they race for the schema and the root
        # account, and must all come up.
        with ThreadPoolExecutor(GATEWAYS) as pool:
            list(pool.map(lambda g: g.start(), self.gateways))
        return self

    def client(self, index: int, **config: Any) -> Any:
        return make_client(self.gateways[index].endpoint, **config)

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path).start()
    yield c
    c.stop()


class _HangingLeaseStore:
    """A store whose first lease request succeeds and whose renewals never answer: a
    database behind a dead network path, or a pool with no free connection."""

    def __init__(self) -> None:
        self.asked = 0

    async def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        self.asked += 1
        if self.asked > 1:
            await asyncio.Event().wait()
        return True

    async def release_lease(self, name: str, holder: str) -> None:
        pass


def test_background_work_stops_before_the_lease_runs_out_when_renewal_hangs() -> None:
    """The lease is taken over by another gateway once it runs out, so the holder must stop
    its work by then even if a renewal neither succeeds nor fails."""

    async def main() -> None:
        running = asyncio.Event()
        stopped: list[float] = []

        async def work() -> None:
            running.set()
            try:
                await asyncio.Event().wait()
            finally:
                stopped.append(time.monotonic())

        lease = 0.6
        holder = LeaseHolder(_HangingLeaseStore(),  # type: ignore[arg-type]
                             lambda: [work()], lease_seconds=lease)
        task = asyncio.create_task(holder.run_forever())
        await asyncio.wait_for(running.wait(), 5)
        taken = time.monotonic()
        await asyncio.sleep(lease * 2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert stopped, "the work was never stopped"
        assert stopped[0] - taken < lease, f"work ran {stopped[0] - taken:.2f} s on a " \
            f"{lease} s lease"

    asyncio.run(main())





def test_a_thousand_mixed_operations_spread_over_three_gateways_read_their_writes(
        cluster: Cluster) -> None:
    clients = [cluster.client(i) for i in range(GATEWAYS)]
    bucket = new_bucket(clients[0])
    rng = random.Random(7)
    model: dict[str, bytes] = {}  # the acknowledged state
    for step in range(1000):
        key = f"k{rng.randrange(40)}"
        writer, reader = rng.choice(clients), rng.choice(clients)
        action = rng.random()
        if action < 0.5:
            body = f"{step}-{uuid.uuid4().hex}".encode()
            writer.put_object(Bucket=bucket, Key=key, Body=body)
            model[key] = body
        elif action < 0.65:
            writer.delete_object(Bucket=bucket, Key=key)
            model.pop(key, None)
        elif action < 0.8:
            listed = reader.list_objects_v2(Bucket=bucket)
            assert sorted(o["Key"] for o in listed.get("Contents", [])) == sorted(model)
            continue
        # Whatever gateway reads next sees exactly the latest acknowledged write.
        if key in model:
            assert reader.get_object(Bucket=bucket, Key=key)["Body"].read() == model[key]
        else:
            with pytest.raises(ClientError) as exc:
                reader.head_object(Bucket=bucket, Key=key)
            assert exc.value.response["Error"]["Code"] == "404"


def test_racing_conditional_puts_on_different_gateways_have_exactly_one_winner(
        cluster: Cluster) -> None:
    clients = [cluster.client(i) for i in range(GATEWAYS)]
    bucket = new_bucket(clients[0])

    def race(attempts: list[Callable[[], Any]]) -> list[str]:
        barrier = threading.Barrier(len(attempts))

        def run(attempt: Callable[[], Any]) -> str:
            barrier.wait()
            try:
                attempt()
                return "won"
            except ClientError as exc:
                return exc.response["Error"]["Code"]

        with ThreadPoolExecutor(len(attempts)) as pool:
            return list(pool.map(run, attempts))

    for round_ in range(15):
        key = f"new-{round_}"
        outcomes = race([partial(c.put_object, Bucket=bucket, Key=key, Body=f"{i}".encode(),
                                 IfNoneMatch="*") for i, c in enumerate(clients)])
        assert sorted(outcomes) == ["PreconditionFailed"] * (GATEWAYS - 1) + ["won"]
        winner = outcomes.index("won")
        body = clients[(winner + 1) % GATEWAYS].get_object(Bucket=bucket, Key=key)["Body"]
        assert body.read() == f"{winner}".encode()
        # Compare-and-swap on the ETag: again one winner.
        etag = clients[0].head_object(Bucket=bucket, Key=key)["ETag"]
        outcomes = race([partial(c.put_object, Bucket=bucket, Key=key,
                                 Body=f"swap{i}".encode(), IfMatch=etag)
                         for i, c in enumerate(clients)])
        assert sorted(outcomes) == ["PreconditionFailed"] * (GATEWAYS - 1) + ["won"]


def test_parts_uploaded_through_different_gateways_complete_through_a_third(
        cluster: Cluster) -> None:
    clients = [cluster.client(i) for i in range(GATEWAYS)]
    bucket = new_bucket(clients[0])
    upload = clients[0].create_multipart_upload(Bucket=bucket, Key="big")
    parts = [bytes([n]) * (5 * 1024 * 1024) for n in (1, 2)] + [b"tail"]
    etags = [clients[n % 2].upload_part(Bucket=bucket, Key="big", UploadId=upload["UploadId"],
                                        PartNumber=n + 1, Body=body)["ETag"]
             for n, body in enumerate(parts)]
    clients[2].complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e}
                                   for n, e in enumerate(etags)]})
    for client in clients:
        assert client.get_object(Bucket=bucket, Key="big")["Body"].read() == b"".join(parts)


def test_versions_written_through_different_gateways_keep_one_global_order(
        cluster: Cluster) -> None:
    clients = [cluster.client(i) for i in range(GATEWAYS)]
    bucket = new_bucket(clients[0], versioned=True)
    written = []
    for n in range(12):
        written.append(clients[n % GATEWAYS].put_object(
            Bucket=bucket, Key="doc", Body=f"{n}".encode())["VersionId"])
    for client in clients:
        listed = client.list_object_versions(Bucket=bucket)["Versions"]
        assert [v["VersionId"] for v in listed] == written[::-1]
        assert [v["IsLatest"] for v in listed] == [True] + [False] * 11


def test_a_gateway_killed_mid_way_loses_no_acknowledged_write(cluster: Cluster) -> None:
    bucket = new_bucket(cluster.client(0))
    acknowledged: dict[str, bytes] = {}
    # Writes that failed after the key's last acknowledged one: the gateway may have died
    # after committing and before answering, so each of them may be what the key holds.
    unacknowledged: dict[str, set[bytes]] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(index: int) -> None:
        # Each key is written by one thread only, so its writes are in order.
        client = cluster.client(index % GATEWAYS, connect_timeout=2, read_timeout=10)
        n = 0
        while not stop.is_set():
            key, body = f"w{index}-{n % 25}", f"{index}-{n}".encode()
            try:
                client.put_object(Bucket=bucket, Key=key, Body=body)
            except (BotoCoreError, ClientError):
                with lock:  # not acknowledged: the gateway died under it
                    unacknowledged.setdefault(key, set()).add(body)
            else:
                with lock:
                    acknowledged[key] = body
                    unacknowledged.pop(key, None)
            n += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    cluster.gateways[2].kill()  # kill -9, mid-traffic
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acknowledged) > 50
    for client in (cluster.client(0), cluster.client(1)):
        for key, body in acknowledged.items():
            stored = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert stored == body or stored in unacknowledged.get(key, set())


def test_lifecycle_runs_once_for_the_cluster_and_moves_when_its_gateway_dies(
        cluster: Cluster) -> None:
    clients = [cluster.client(i) for i in range(GATEWAYS)]
    bucket = new_bucket(clients[0], versioned=True)
    clients[0].put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
        "Rules": [{"ID": "expire", "Status": "Enabled", "Filter": {},
                   "Expiration": {"Days": 1}}]})
    for n in range(10):
        clients[n % GATEWAYS].put_object(Bucket=bucket, Key=f"a{n}", Body=b"x")

    def markers(prefix: str) -> dict[str, int]:
        listed = clients[1].list_object_versions(Bucket=bucket, Prefix=prefix)
        counts: dict[str, int] = {}
        for marker in listed.get("DeleteMarkers", []):
            counts[marker["Key"]] = counts.get(marker["Key"], 0) + 1
        return counts

    eventually(lambda: len(markers("a")) == 10)
    time.sleep(3)  # more passes, on whichever gateway: none may expire anything twice
    assert markers("a") == {f"a{n}": 1 for n in range(10)}
    # Kill the lease holder; a survivor takes the lease over and the work goes on.
    holder = _lease_holder(cluster)
    cluster.gateways[holder].kill()
    alive = clients[(holder + 1) % GATEWAYS]
    for n in range(5):
        alive.put_object(Bucket=bucket, Key=f"b{n}", Body=b"y")
    clients = [alive] * GATEWAYS
    eventually(lambda: markers("b") == {f"b{n}": 1 for n in range(5)})
    assert _lease_holder(cluster) != holder


def test_a_gateway_killed_mid_upload_leaves_only_orphans_that_another_gateway_sweeps(
        tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, ["--orphan-grace-seconds", "2"]).start()
    try:
        client = cluster.client(0)
        bucket = new_bucket(client)
        client.put_object(Bucket=bucket, Key="kept", Body=b"k" * (1024 * 1024))
        victim = cluster.gateways[2]
        # A large upload streams into a temp file on the shared volume, and its gateway
        # dies half-way (kill -9): no record was committed, so the object never existed.
        size = 64 * 1024**2
        headers = rawhttp.sign_v4("PUT", f"{victim.endpoint}/{bucket}/lost",
                                  {"Content-Length": str(size)},
                                  payload_hash="UNSIGNED-PAYLOAD")
        sock = rawhttp.open_request(victim.port, "PUT", f"/{bucket}/lost", headers, [])
        sock.sendall(b"x" * (8 * 1024**2))
        time.sleep(0.5)
        victim.kill()
        sock.close()
        tmp_dir = cluster.data_dir / "tmp"
        assert any(tmp_dir.iterdir())  # the half-written blob
        with pytest.raises(ClientError):
            client.head_object(Bucket=bucket, Key="lost")
        # Whichever gateway holds the lease sweeps it once it is older than the grace.
        eventually(lambda: not any(tmp_dir.iterdir()))
        assert client.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"k" * 1024**2
    finally:
        cluster.stop()


def _lease_holder(cluster: Cluster) -> int:
    """Which gateway's process holds the background lease (by its pid in the holder id)."""
    import asyncio

    import asyncpg

    async def read() -> str:
        conn = await asyncpg.connect(cluster.dsn)
        try:
            return str(await conn.fetchval(
                "SELECT holder FROM leases WHERE name = 'background' AND expires_at > now()"))
        finally:
            await conn.close()

    holder = asyncio.run(read())
    pids = [g.process.pid if g.process else -1 for g in cluster.gateways]
    return next(i for i, pid in enumerate(pids) if f":{pid}:" in holder)
