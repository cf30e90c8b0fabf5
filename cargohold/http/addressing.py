"""Addressing: Host header + raw path -> bucket and key.

Path style (``host/bucket/key``), virtual-host style (``bucket.<region>.<domain>/key`` and
``bucket.<domain>/key``), and plain ``127.0.0.1:PORT/bucket/key``. Keys are taken from the
raw path and percent-decoded exactly once, so ``+``, ``%``, ``//`` and unicode survive.

``bucket.<region>-static.<domain>`` is the bucket's static website, not the S3 API: its
address says so (``website``), and its key is the whole path (``""`` for ``/``).
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import unquote


class Address(NamedTuple):
    bucket: str | None
    key: str | None
    host_bucket: str | None  # bucket named by the Host header (virtual-host style)
    website: bool = False  # the static website endpoint (``bucket.<region>-static.<domain>``)


class Addressing:
    """Knows the service's own host names so it can tell a bucket in the Host header."""

    def __init__(self, region: str, domain: str) -> None:
        self.region = region.lower()
        self.domain = domain.lower()
        self._suffixes = sorted(
            {f".{self.region}.{self.domain}", f".{self.domain}"}, key=len, reverse=True
        )
        self._service_hosts = {self.domain, f"{self.region}.{self.domain}"}
        self._website_host = f"{self.region}-static.{self.domain}"
        # Host header -> (bucket, is the website endpoint), a few distinct.
        self._known: dict[str, tuple[str | None, bool]] = {}
        # The last request target resolved: a request that leaves the plain-read path is
        # resolved again by the point-read check and the dispatcher (~3 µs each).
        self._last: tuple[str, str, Address] | None = None

    def host_bucket(self, host: str) -> str | None:
        """The bucket name a virtual-host-style Host header carries, if any (``None`` for a
        website endpoint, which is not the S3 API)."""
        bucket, website = self._classify(host)
        return None if website else bucket

    def _classify(self, host: str) -> tuple[str | None, bool]:
        try:
            return self._known[host]
        except KeyError:
            pass
        found = self._host_bucket(host)
        if len(self._known) >= 4096:
            self._known.clear()
        self._known[host] = found
        return found

    def _host_bucket(self, host: str) -> tuple[str | None, bool]:
        name = host.lower()
        if name.startswith("["):  # IPv6 literal
            return None, False
        name = name.rsplit(":", 1)[0] if ":" in name else name
        if name in self._service_hosts:
            return None, False
        # Before the plain suffixes: ``<region>-static.<domain>`` also ends in ``.<domain>``.
        if name == self._website_host:
            return None, True
        if name.endswith("." + self._website_host):
            return name[: -len(self._website_host) - 1], True
        for suffix in self._suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)], False
        return None, False

    def resolve(self, host: str, raw_path: str) -> Address:
        """Split the request target into bucket and key."""
        last = self._last
        if last is not None and last[1] == raw_path and last[0] == host:
            return last[2]
        address = self._resolve(host, raw_path)
        self._last = (host, raw_path, address)
        return address

    def _resolve(self, host: str, raw_path: str) -> Address:
        bucket, website = self._classify(host)
        path = raw_path[1:] if raw_path.startswith("/") else raw_path
        if website:
            return Address(bucket=bucket, key=unquote(path, errors="strict"),
                           host_bucket=None, website=True)
        if bucket is not None:
            key = unquote(path, errors="strict") if path else None
            return Address(bucket=bucket, key=key, host_bucket=bucket)
        if not path:
            return Address(bucket=None, key=None, host_bucket=None)
        bucket_part, sep, key_part = path.partition("/")
        bucket_name = unquote(bucket_part, errors="strict")
        key = unquote(key_part, errors="strict") if sep and key_part else None
        return Address(bucket=bucket_name or None, key=key, host_bucket=None)
