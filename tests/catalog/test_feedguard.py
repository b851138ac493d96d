"""The address rule of feed fetches: which resolved addresses are public, and the up-front
check when a feed is added."""

import ipaddress
import time

import pytest

from tidings.catalog.feedguard import (
    AddressRefused,
    address_rule,
    allowed_addresses,
    check_feed_url,
    is_public,
    refusal,
    resolve,
)
from tidings.catalog.urls import canonical_url
from tidings.errors import FeedUnreachable, InvalidInput

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # noqa: S104 (an address refused, not one bound)
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "ff0e::1",  # global-scope multicast is still multicast
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible (deprecated) form
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "2001:db8::1",  # documentation
    "fd00:ec2::254",  # AWS metadata over IPv6
    "fec0::1",  # site-local (deprecated; Python calls it global)
    "feff:ffff::1",  # top of site-local
    "100::1",  # discard-only
    "2001:2::1",  # benchmarking (IETF protocol assignments, 2001::/23)
    "2001:1::1",  # PCP anycast: the local gateway
    "2001:20::1",  # ORCHIDv2
    "2001:1ff:ffff::1",  # top of 2001::/23
    "3fff::1",  # documentation (RFC 9637; Python calls it global)
    "5f00::1",  # SRv6 SIDs
    "64:ff9b:1::808:808",  # local-use NAT64
    "ff05::1",  # site-local multicast
    "192.88.99.1",  # deprecated 6to4 relay anycast
]
PUBLIC = [
    "93.184.215.14",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",  # mapped public: judged by its IPv4 address
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8 (IPv6-only networks with DNS64)
    "2001:200::1",  # just past 2001::/23 (WIDE)
    "2001:4860:4860::8888",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "2620:fe::fe",  # Quad9
    "3ffe:ffff::1",  # just below 3fff::/20 (old 6bone space, now plain global unicast)
]


@pytest.mark.parametrize("text", REFUSED)
def test_non_public_addresses_are_refused(text: str) -> None:
    assert not is_public(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    assert is_public(ipaddress.ip_address(text))


def test_the_rule_allows_everything_only_when_private_feeds_are_allowed() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    assert address_rule(True)(loopback)
    assert not address_rule(False)(loopback)
    with pytest.raises(AddressRefused) as refused:
        allowed_addresses("intranet", [loopback], address_rule(False))
    assert str(refused.value) == refusal("intranet")
    public = ipaddress.ip_address("8.8.8.8")
    mixed = allowed_addresses("mixed", [loopback, public], address_rule(False))
    assert mixed == [public]  # only the checked public address is ever connected to


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f.0.0.1", "localhost"])
def test_odd_spellings_of_loopback_resolve_to_what_is_checked(host: str) -> None:
    found = resolve(host, 80, until=time.monotonic() + 5)
    assert found and not any(is_public(address) for address in found)


def test_a_name_that_does_not_resolve_is_a_feed_error() -> None:
    with pytest.raises(FeedUnreachable, match="cannot resolve"):
        resolve("no-such-host.invalid", 80, until=time.monotonic() + 5)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/feed",
        "http://localhost/feed",
        "http://[::1]/feed",
        "http://[::ffff:127.0.0.1]/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:9/feed",
        "http://224.0.0.1/feed",
        "http://2130706433/feed",
    ],
)
def test_adding_a_private_feed_is_refused_with_a_clear_message(url: str) -> None:
    with pytest.raises(InvalidInput, match="is not a public address") as refused:
        check_feed_url(url, allow_private=False)
    assert "TIDINGS_FEED_ALLOW_PRIVATE=true" in str(refused.value)
    check_feed_url(url, allow_private=True)  # an intranet install may allow them


def test_adding_a_feed_that_does_not_resolve_yet_is_left_to_the_poll() -> None:
    check_feed_url("https://feeds.example.invalid/rss", allow_private=False)


def test_ipv6_literal_feed_urls_keep_their_brackets() -> None:
    assert canonical_url("http://[::1]:8080/feed") == "http://[::1]:8080/feed"
    assert canonical_url("https://[2606:4700::1111]/x") == "https://[2606:4700::1111]/x"
