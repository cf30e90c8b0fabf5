"""Addressing: path style, virtual-host style and the website endpoint, from the Host
header and the raw request path (the servers' tests drive it through real clients)."""

from __future__ import annotations

import pytest

from cargohold.http.addressing import Address, Addressing


@pytest.fixture
def addressing() -> Addressing:
    return Addressing("nyc3", "localhost")


def test_the_same_path_means_different_things_under_different_hosts(
        addressing: Addressing) -> None:
    # Resolved in turn, as requests arrive: the last answer is reused only for the very
    # same host and path.
    cases = [
        ("127.0.0.1:9000", "/photos/a%20b.jpg", Address("photos", "a b.jpg", None)),
        ("photos.nyc3.localhost:9000", "/photos/a%20b.jpg",
         Address("photos", "photos/a b.jpg", "photos")),
        ("photos.localhost", "/a%20b.jpg", Address("photos", "a b.jpg", "photos")),
        ("photos.nyc3-static.localhost", "/a%20b.jpg",
         Address("photos", "a b.jpg", None, website=True)),
        ("127.0.0.1:9000", "/photos", Address("photos", None, None)),
        ("127.0.0.1:9000", "/", Address(None, None, None)),
    ]
    for _ in range(2):
        for host, path, expected in cases:
            assert addressing.resolve(host, path) == expected
            assert addressing.resolve(host, path) == expected


def test_a_path_that_is_not_utf8_is_refused_every_time(addressing: Addressing) -> None:
    for _ in range(2):
        with pytest.raises(UnicodeDecodeError):
            addressing.resolve("127.0.0.1:9000", "/photos/%ff")
