"""Process wiring: open the stores, serve HTTP, run background work, fork workers.

``serve`` runs one worker in this process, or a small supervisor that starts N worker
processes; every worker binds the same port with ``SO_REUSEPORT`` so the kernel spreads
connections across them. Background work (blob GC, expiry of abandoned multipart uploads,
access-log delivery, lifecycle) runs in one process per cluster: worker 0 of each gateway
competes for a lease in the metadata store (:mod:`cargohold.background`). Every worker
buffers its own access-log records and writes them to the store's queue, the last of them
on shutdown. With
``--tls-cert``/``--tls-key`` every worker serves HTTPS with an SSL context it builds once at
start (checked by the supervisor first, so a bad certificate stops the server before any
worker starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import secrets
import signal
import socket
import ssl
import string
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from cargohold import errors
from cargohold.background import LeaseHolder
from cargohold.config import Settings
from cargohold.handlers.context import Services
from cargohold.http.dispatch import Dispatcher
from cargohold.http.plainread import AVAILABLE as PLAIN_READS
from cargohold.http.plainread import PlainReads
from cargohold.http.protocol import S3Server
from cargohold.lifecycle_worker import LifecycleWorker
from cargohold.logdelivery import LogDeliverer, RecordBuffer
from cargohold.store.base import AccessKey, Account, MetadataStore
from cargohold.store.blobs import BlobStore
from cargohold.store.expiry import UploadExpirer
from cargohold.store.gc import BlobCollector
from cargohold.store.sqlite import SqliteStore

log = logging.getLogger("cargohold")

ROOT_ACCOUNT = "root"
# S3 allows long keys and metadata: aiohttp's 8190-byte defaults would refuse them.
MAX_LINE_SIZE = 64 * 1024
MAX_FIELD_SIZE = 64 * 1024
SHUTDOWN_TIMEOUT = 10.0


def open_store(settings: Settings) -> MetadataStore:
    """The metadata store the settings name: PostgreSQL for ``--meta postgresql://...``,
    else the embedded SQLite file in the data directory."""
    settings.data_path.mkdir(parents=True, exist_ok=True)
    if settings.meta:
        if not settings.meta.startswith(("postgresql://", "postgres://")):
            raise SystemExit("cargohold: --meta must be a postgresql:// URL (leave it unset "
                             "for the embedded SQLite store)")
        from cargohold.store.postgres import PostgresStore  # only deployments that use it

        return PostgresStore(settings.meta, max_size=settings.meta_pool_size)
    return SqliteStore(settings.data_path / "meta.sqlite3")


def describe_meta(settings: Settings) -> str:
    """Where metadata lives, for the start-up line (a PostgreSQL password is not shown)."""
    if not settings.meta:
        return "sqlite"
    parts = urlsplit(settings.meta)
    host = parts.hostname or "local socket"
    return f"postgresql {host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def new_canonical_id() -> str:
    return secrets.token_hex(32)


def new_access_key() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "CH" + "".join(secrets.choice(alphabet) for _ in range(18))


def new_secret_key() -> str:
    return secrets.token_urlsafe(30)[:40]


async def ensure_root(store: MetadataStore, settings: Settings) -> tuple[AccessKey, bool]:
    """The root account and its key; returns (key, generated_now).

    Several gateways may start together on one shared store: whichever creates the
    account or the configured key first wins, and the others use what it made.
    """
    for _ in range(3):
        try:
            return await _ensure_root(store, settings)
        except errors.InvalidArgument:  # another gateway created it between read and write
            await asyncio.sleep(0.1)
    return await _ensure_root(store, settings)


async def _ensure_root(store: MetadataStore, settings: Settings) -> tuple[AccessKey, bool]:
    account = await store.get_account_by_name(ROOT_ACCOUNT)
    if account is None:
        account = Account(canonical_id=new_canonical_id(), name=ROOT_ACCOUNT,
                          display_name=ROOT_ACCOUNT, email="", created=time.time())
        await store.create_account(account)
    if settings.root_access_key and settings.root_secret_key:
        existing = await store.get_key(settings.root_access_key)
        if existing is not None and (existing.secret_key != settings.root_secret_key
                                     or existing.account_id != account.canonical_id):
            await store.delete_key(existing.access_key)
            existing = None
        if existing is None:
            existing = AccessKey(settings.root_access_key, settings.root_secret_key,
                                 account.canonical_id, time.time())
            await store.create_key(existing)
        return existing, False
    stored = await store.get_setting("root_access_key")
    if stored is not None:
        key = await store.get_key(stored)
        if key is not None:
            return key, False
    key = AccessKey(new_access_key(), new_secret_key(), account.canonical_id, time.time())
    await store.create_key(key)
    await store.set_setting("root_access_key", key.access_key)
    return key, True


async def bootstrap(settings: Settings) -> None:
    store = open_store(settings)
    await store.open()
    try:
        key, generated = await ensure_root(store, settings)
    finally:
        await store.close()
    if generated:
        # Shown once: the secret is not printed again (it stays in the store for auth).
        print("cargohold: generated root credentials (shown once):", flush=True)
        print(f"  access key: {key.access_key}", flush=True)
        print(f"  secret key: {key.secret_key}", flush=True)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context, or None for plain HTTP; ``SystemExit`` with a clear message
    for a missing, unreadable or invalid certificate or key."""
    cert, key = settings.tls_cert, settings.tls_key
    if not cert and not key:
        return None
    if not cert or not key:
        raise SystemExit("cargohold: --tls-cert and --tls-key must be given together")
    for what, path in (("certificate", cert), ("private key", key)):
        if not Path(path).is_file():
            raise SystemExit(f"cargohold: TLS {what} file not found: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])  # aiohttp speaks HTTP/1.1 only
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise SystemExit(f"cargohold: cannot use TLS certificate {cert} with key {key}: "
                         f"{exc.reason or exc} (both must be PEM, and the key must be the "
                         "certificate's)") from exc
    except OSError as exc:
        raise SystemExit(f"cargohold: cannot read TLS certificate {cert} or key {key}: "
                         f"{exc.strerror or exc}") from exc
    return context


def _listen_socket(settings: Settings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@dataclass
class Worker:
    """One worker's running parts, from :func:`start_worker`."""

    runner: web.ServerRunner
    store: MetadataStore
    access_log: RecordBuffer
    background: list[asyncio.Task[None]]
    # Answers plain reads without aiohttp's request objects (None: every request takes
    # the general path, as with the PostgreSQL store).
    plain_reads: PlainReads | None

    async def stop(self) -> None:
        """Finish in-flight requests, stop the background work, close the store."""
        for task in self.background:
            task.cancel()
        for task in self.background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.runner.cleanup()
        finally:
            try:
                # After the last requests finished, before the store closes: records
                # still in memory reach the queue (a kill -9 loses them; see
                # cargohold/logdelivery.py), even if the HTTP shutdown failed.
                await self.access_log.close()
            finally:
                await self.store.close()


async def start_worker(settings: Settings, index: int,
                       ssl_context: ssl.SSLContext | None = None) -> Worker:
    """Open the store and start serving on the settings' port (shared with the other
    workers); worker 0 also competes for the cluster's background work.

    ``ssl_context`` serves HTTPS; without it the settings' certificate (if any) is loaded.
    """
    if ssl_context is None:
        ssl_context = tls_context(settings)
    store = open_store(settings)
    await store.open()
    blobs = BlobStore(settings.data_path, min_free_bytes=settings.min_free_bytes)
    services = Services(settings=settings, store=store, blobs=blobs)
    # Every worker buffers its access-log records and writes them to the store's queue.
    access_log = RecordBuffer(store, check_room=blobs.check_room)
    dispatcher = Dispatcher(services, access_log)
    inline = store.point_reads_inline
    plain_reads = PlainReads(services, dispatcher.addressing) if inline and PLAIN_READS else None
    server = S3Server(dispatcher,
                      answer_inline=dispatcher.is_point_read if inline else None,
                      answer_now=plain_reads.answer if plain_reads is not None else None,
                      max_line_size=MAX_LINE_SIZE, max_field_size=MAX_FIELD_SIZE,
                      access_log=None)
    runner = web.ServerRunner(server, handle_signals=False,
                              shutdown_timeout=SHUTDOWN_TIMEOUT)
    await runner.setup()
    site = web.SockSite(runner, _listen_socket(settings), ssl_context=ssl_context)
    await site.start()
    background: list[asyncio.Task[None]] = []
    if index == 0:
        # Worker 0 of every gateway competes for the lease; the holder runs the work.
        leader = LeaseHolder(store, lambda: background_work(settings, store, blobs),
                             settings.lease_seconds)
        background.append(asyncio.create_task(leader.run_forever()))
    access_log.start()
    log.info("worker %d serving on %s://%s:%d", index, _scheme(ssl_context), settings.host,
             settings.port)
    return Worker(runner, store, access_log, background, plain_reads)


async def run_worker(settings: Settings, index: int,
                     ssl_context: ssl.SSLContext | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight requests and close the store."""
    worker = await start_worker(settings, index, ssl_context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await worker.stop()


def background_work(settings: Settings, store: MetadataStore,
                    blobs: BlobStore) -> list[Coroutine[Any, Any, None]]:
    """The cluster's once-only background passes, for the lease holder to run."""
    collector = BlobCollector(store, blobs, orphan_grace_seconds=settings.orphan_grace_seconds,
                              interval_seconds=settings.gc_interval_seconds,
                              freed_grace_seconds=settings.freed_blob_grace_seconds)
    # Checked as often as the GC runs: one indexed query when nothing is due.
    expirer = UploadExpirer(store, expiry_seconds=settings.multipart_expiry_seconds,
                            interval_seconds=settings.gc_interval_seconds)
    # Delivers every worker's (every gateway's) queued access-log records.
    deliverer = LogDeliverer(store, blobs,
                             interval_seconds=settings.log_delivery_interval_seconds)
    lifecycle = LifecycleWorker(store, day_seconds=settings.lifecycle_day_seconds,
                                interval_seconds=settings.lifecycle_interval_seconds)
    return [collector.run_forever(), expirer.run_forever(), deliverer.run_forever(),
            lifecycle.run_forever()]


def _worker_main(settings: Settings, index: int) -> None:
    configure_logging(settings)
    asyncio.run(run_worker(settings, index))


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")


def _scheme(ssl_context: ssl.SSLContext | None) -> str:
    return "http" if ssl_context is None else "https"


def serve(settings: Settings) -> int:
    """Run the server in the foreground until interrupted."""
    configure_logging(settings)
    if settings.lease_seconds <= 0:
        raise SystemExit("cargohold: --lease-seconds must be positive")
    # Fail fast on a bad certificate and on a port in use, before starting workers.
    ssl_context = tls_context(settings)
    asyncio.run(bootstrap(settings))
    _listen_socket(settings).close()
    print(f"cargohold: serving S3 on {_scheme(ssl_context)}://{settings.host}:{settings.port} "
          f"(region {settings.region}, data {Path(settings.data_dir).resolve()}, "
          f"metadata {describe_meta(settings)}, "
          f"{settings.workers} worker{'s' if settings.workers != 1 else ''})", flush=True)
    if settings.workers == 1:
        asyncio.run(run_worker(settings, 0, ssl_context))
        return 0
    return _supervise(settings)


def _supervise(settings: Settings) -> int:
    """Start N workers, restart any that dies, stop them all on SIGTERM/SIGINT."""
    context = multiprocessing.get_context("spawn")
    workers: dict[int, multiprocessing.process.BaseProcess] = {}
    stopping = False

    def start(index: int) -> None:
        process = context.Process(target=_worker_main, args=(settings, index), daemon=False)
        process.start()
        workers[index] = process

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for index in range(settings.workers):
        start(index)
    while not stopping:
        time.sleep(0.2)
        for index, process in list(workers.items()):
            if not process.is_alive() and not stopping:
                log.warning("worker %d exited with %s; restarting", index, process.exitcode)
                time.sleep(0.5)
                start(index)
    for process in workers.values():
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
    for process in workers.values():
        process.join(SHUTDOWN_TIMEOUT + 5)
    return 0
