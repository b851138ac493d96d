"""The SPF evaluator against the loopback DNS server: each mechanism, include and redirect,
the 10-lookup limit, and "cannot tell" for macros and ptr."""

import ipaddress

import pytest

from tests.dnsserver import dns_server
from tidings.config import Settings
from tidings.doctor.spf import IPAddress, Verdict, check_host
from tidings.mail.dnsquery import resolver

RELAY = ipaddress.ip_address("192.0.2.10")
RELAY6 = ipaddress.ip_address("2001:db8::10")


def _verdict(records: dict[str, list[tuple[str, str]]], address: IPAddress = RELAY) -> Verdict:
    with dns_server(records) as names:
        found = resolver(names.settings(Settings(secret_key="x" * 32)))
        return check_host(found, address, "example.org").verdict


@pytest.mark.parametrize(
    ("record", "extra", "verdict"),
    [
        ("v=spf1 ip4:192.0.2.0/24 -all", {}, Verdict.pass_),
        ("v=spf1 ip4:198.51.100.1 -all", {}, Verdict.fail),
        ("v=spf1 ip4:198.51.100.1 ~all", {}, Verdict.softfail),
        ("v=spf1 ip4:198.51.100.1", {}, Verdict.neutral),
        ("v=spf1 a -all", {"example.org": [("A", "192.0.2.10")]}, Verdict.pass_),
        (
            "v=spf1 a:out.example.org/28 -all",
            {"out.example.org": [("A", "192.0.2.1")]},
            Verdict.pass_,
        ),
        (
            "v=spf1 mx -all",
            {"example.org": [("MX", "5 mx.example.org")], "mx.example.org": [("A", "192.0.2.10")]},
            Verdict.pass_,
        ),
        (
            "v=spf1 include:relay.example.net -all",
            {"relay.example.net": [("TXT", "v=spf1 ip4:192.0.2.0/25 -all")]},
            Verdict.pass_,
        ),
        (
            "v=spf1 include:relay.example.net -all",
            {"relay.example.net": [("TXT", "v=spf1 ip4:198.51.100.0/24 -all")]},
            Verdict.fail,
        ),
        ("v=spf1 include:gone.example.net -all", {}, Verdict.permerror),
        (
            "v=spf1 redirect=spf.example.net",
            {"spf.example.net": [("TXT", "v=spf1 ip4:192.0.2.10 -all")]},
            Verdict.pass_,
        ),
        ("v=spf1 exists:%{i}.bl.example.org -all", {}, Verdict.unknown),
        ("v=spf1 ptr -all", {}, Verdict.unknown),
        ("v=spf1 bogus:1 -all", {}, Verdict.permerror),
    ],
)
def test_mechanisms(record: str, extra: dict[str, list[tuple[str, str]]], verdict: Verdict) -> None:
    records = {"example.org": [("TXT", record), *extra.pop("example.org", [])], **extra}
    assert _verdict(records) == verdict


def test_ip6_and_the_version_of_the_address() -> None:
    records = {"example.org": [("TXT", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all")]}
    assert _verdict(records, RELAY6) == Verdict.pass_
    records = {"example.org": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")]}
    assert _verdict(records, RELAY6) == Verdict.fail


def test_more_than_ten_lookups_is_a_permerror() -> None:
    records: dict[str, list[tuple[str, str]]] = {
        "example.org": [("TXT", "v=spf1 include:n0.example.org -all")]
    }
    for n in range(12):
        records[f"n{n}.example.org"] = [("TXT", f"v=spf1 a include:n{n + 1}.example.org -all")]
    assert _verdict(records) == Verdict.permerror


def test_no_record_and_two_records() -> None:
    assert _verdict({"example.org": [("TXT", "google-site-verification=x")]}) == Verdict.none
    two = {"example.org": [("TXT", "v=spf1 -all"), ("TXT", "v=spf1 +all")]}
    assert _verdict(two) == Verdict.permerror
