"""mail/dnsquery against the loopback DNS server (tests/dnsserver.py): the resolver follows
TIDINGS_DNS_NAMESERVERS, long TXT values come back whole, a missing name is "no record", and
a name server that does not answer is a failed lookup, not an empty one."""

import dns.resolver
import pytest

from tests.dnsserver import dns_server, txt_pieces, unused_dns_port
from tidings.config import Settings
from tidings.mail.dnsquery import LookupFailed, resolver, txt_records

LONG_KEY = "v=DKIM1; k=rsa; p=" + "A" * 400


def _settings() -> Settings:
    return Settings(secret_key="x" * 32)


def test_txt_records_come_whole_from_the_configured_server() -> None:
    records = {
        "example.org": [("TXT", "v=spf1 ip4:127.0.0.1 -all"), ("TXT", "other")],
        "sel._domainkey.example.org": [("TXT", LONG_KEY)],
    }
    with dns_server(records) as names:
        found = resolver(names.settings(_settings()))
        assert sorted(txt_records(found, "example.org")) == ["other", "v=spf1 ip4:127.0.0.1 -all"]
        assert txt_records(found, "sel._domainkey.example.org") == [LONG_KEY]
        assert txt_records(found, "nothing.example.org") == []
        assert names.asked("sel._domainkey.example.org") == ["TXT"]


def test_a_long_value_is_split_in_pieces_of_255_bytes() -> None:
    pieces = txt_pieces(LONG_KEY)
    assert [len(piece) for piece in pieces] == [255, len(LONG_KEY) - 255]
    assert b"".join(pieces).decode() == LONG_KEY


def test_mx_a_and_unknown_types() -> None:
    records = {
        "example.org": [("MX", "5 mx1.example.org"), ("MX", "mx2.example.org")],
        "mx1.example.org": [("A", "192.0.2.1"), ("AAAA", "2001:db8::1")],
    }
    with dns_server(records) as names:
        found = resolver(names.settings(_settings()))
        mx = sorted((r.preference, str(r.exchange)) for r in found.resolve("example.org", "MX"))
        assert mx == [(5, "mx1.example.org."), (10, "mx2.example.org.")]
        assert [str(r) for r in found.resolve("mx1.example.org", "A")] == ["192.0.2.1"]
        assert [str(r) for r in found.resolve("mx1.example.org", "AAAA")] == ["2001:db8::1"]
        with pytest.raises(dns.resolver.NoAnswer):
            found.resolve("example.org", "A")
        with pytest.raises(dns.resolver.NXDOMAIN):
            found.resolve("gone.example.org", "A")


def test_tcp_is_served_on_the_same_port() -> None:
    with dns_server({"example.org": [("TXT", LONG_KEY)]}) as names:
        found = resolver(names.settings(_settings()))
        answer = found.resolve("example.org", "TXT", tcp=True)
        assert [b"".join(r.strings).decode() for r in answer] == [LONG_KEY]


def test_a_silent_name_server_is_a_failed_lookup() -> None:
    silent = _settings().model_copy(update={"dns_nameservers": f"127.0.0.1:{unused_dns_port()}"})
    found = resolver(silent)
    found.lifetime = found.timeout = 0.5
    with pytest.raises(LookupFailed):
        txt_records(found, "example.org")
