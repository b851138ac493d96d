"""tidings doctor against real parts: the loopback DNS server with good and bad records, the
recording SMTP server and a closed port, the web app for BASE_URL, a stored DKIM key."""

from collections.abc import Iterator

import pytest

from tests.builders import newsletter
from tests.conftest import Cli
from tests.dnsserver import DnsServer, dns_server
from tests.smtpserver import free_port, smtp_server
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.doctor.findings import Finding, Status
from tidings.doctor.service import run_checks
from tidings.doctor.smtp import check_smtp
from tidings.mail.dkim.store import KeyView, add_key

DOMAIN = "messenger.example.ge"


def good_records(key: KeyView) -> dict[str, list[tuple[str, str]]]:
    return {
        DOMAIN: [("TXT", "v=spf1 mx ip4:127.0.0.0/8 -all"), ("MX", f"10 mx.{DOMAIN}")],
        f"mx.{DOMAIN}": [("A", "192.0.2.25")],
        key.record.name: [("TXT", key.record.value)],
        f"_dmarc.{DOMAIN}": [("TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@messenger.example.ge")],
    }


@pytest.fixture
def key(db: Database, settings: Settings) -> KeyView:
    newsletter(db)
    return add_key(db, settings, DOMAIN, "sel")


@pytest.fixture
def relay(settings: Settings) -> Iterator[Settings]:
    with smtp_server() as (_, port):
        yield settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {found.check: found for found in findings}


def test_good_records_are_all_ok(db: Database, key: KeyView, relay: Settings) -> None:
    with dns_server(good_records(key)) as names:
        findings = by_check(run_checks(db, names.settings(relay)))
    for check in (
        "SMTP",
        "SMTP TLS",
        f"SPF {DOMAIN}",
        f"DKIM {DOMAIN}",
        f"DMARC {DOMAIN}",
        f"DMARC alignment {DOMAIN}",
        f"inbound {DOMAIN}",
        f"inbound MX {DOMAIN}",
    ):
        assert findings[check].status == Status.ok, findings[check]
    assert "ip4:127.0.0.0/8" in findings[f"SPF {DOMAIN}"].said
    assert "DKIM through a key" in findings[f"DMARC alignment {DOMAIN}"].said
    # http://127.0.0.1 is let through by the tests' TIDINGS_ALLOW_INSECURE_LINKS: a warning
    assert findings["BASE_URL"].status == Status.warn


def _bad(names: DnsServer, key: KeyView, other: KeyView) -> None:
    names.records[DOMAIN] = [("TXT", "v=spf1 ip4:192.0.2.0/24 include:relay.example.net -all")]
    names.records["relay.example.net"] = [("TXT", "v=spf1 a:out.relay.example.net ~all")]
    names.records["out.relay.example.net"] = [("A", "198.51.100.7")]
    names.records[key.record.name] = [("TXT", other.record.value.replace(other.domain, DOMAIN))]
    del names.records[f"_dmarc.{DOMAIN}"]
    names.records["_dmarc.elsewhere.example.org"] = [("TXT", "v=DMARC1; p=reject")]


def test_bad_records_each_fail_with_a_fix(db: Database, key: KeyView, relay: Settings) -> None:
    other = add_key(db, relay, "elsewhere.example.org", "sel")
    with dns_server(good_records(key)) as names:
        _bad(names, key, other)
        findings = by_check(run_checks(db, names.settings(relay)))
    spf = findings[f"SPF {DOMAIN}"]
    assert spf.status == Status.fail
    assert "does not authorise the relay 127.0.0.1" in spf.said and "fail" in spf.said
    assert spf.fix.startswith("add ip4:127.0.0.1")
    dkim = findings[f"DKIM {DOMAIN}"]
    assert dkim.status == Status.fail and "publishes another key" in dkim.said
    assert dkim.fix == f"replace its TXT record with: {key.record.zone_line}"
    dmarc = findings[f"DMARC {DOMAIN}"]
    assert dmarc.status == Status.fail and f"no DMARC record at _dmarc.{DOMAIN}" in dmarc.said
    assert dmarc.fix.startswith(f'publish TXT at _dmarc.{DOMAIN}: "v=DMARC1; p=none')
    assert f"DMARC alignment {DOMAIN}" not in findings


def test_missing_records(db: Database, relay: Settings) -> None:
    newsletter(db)
    with dns_server({}) as names:
        findings = by_check(run_checks(db, names.settings(relay)))
    assert findings[f"SPF {DOMAIN}"].status == Status.fail
    assert findings[f"SPF {DOMAIN}"].fix == (
        f'publish TXT at {DOMAIN}: "v=spf1 ip4:127.0.0.1 -all" (or your relay provider\'s include:)'
    )
    assert (
        findings[f"DKIM {DOMAIN}"].fix
        == f"tidings dkim keygen {DOMAIN}, then publish the record it prints"
    )
    assert findings[f"inbound MX {DOMAIN}"].status == Status.fail


def test_unaligned_bounce_domain_without_dkim(db: Database, relay: Settings) -> None:
    newsletter(db)
    elsewhere = relay.model_copy(update={"bounce_domain": "bounces.example.net"})
    records = {
        f"_dmarc.{DOMAIN}": [("TXT", "v=DMARC1; p=none")],
        "bounces.example.net": [("TXT", "v=spf1 ip4:127.0.0.1 -all"), ("MX", "mx.example.net")],
    }
    with dns_server(records) as names:
        findings = by_check(run_checks(db, names.settings(elsewhere)))
    assert findings["SPF bounces.example.net"].status == Status.ok
    assert findings[f"DMARC {DOMAIN}"].status == Status.warn
    alignment = findings[f"DMARC alignment {DOMAIN}"]
    assert alignment.status == Status.fail
    assert "bounce domain bounces.example.net is not" in alignment.said
    assert "TIDINGS_BOUNCE_DOMAIN" in alignment.fix
    assert findings["inbound bounces.example.net"].status == Status.ok


def test_smtp_reachable_and_a_closed_port(settings: Settings) -> None:
    with smtp_server() as (_, port):
        found = check_smtp(settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"}))
    assert [(f.check, f.status) for f in found] == [("SMTP", Status.ok), ("SMTP TLS", Status.ok)]
    closed = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}"})
    [refused] = check_smtp(closed)
    assert refused.status == Status.fail and refused.said.startswith("cannot reach 127.0.0.1:")
    assert "TIDINGS_SMTP_URL" in refused.fix


def test_the_command_prints_each_line_and_exits_1_on_a_failure(
    cli: Cli, db: Database, key: KeyView, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dns_server(good_records(key)) as names, smtp_server() as (_, port):
        monkeypatch.setenv("TIDINGS_SMTP_URL", f"smtp://127.0.0.1:{port}")
        monkeypatch.setenv("TIDINGS_DNS_NAMESERVERS", names.address)
        with web_server(settings, db) as base:
            monkeypatch.setenv("TIDINGS_BASE_URL", base)
            result = cli("doctor")
            assert result.exit_code == 0, result.output
            assert f"ok   BASE_URL reachable: {base}/healthz answers 200" in result.stdout
            assert f"ok   DKIM {DOMAIN}: sel._domainkey.{DOMAIN}. publishes" in result.stdout
            assert result.stdout.strip().endswith("0 fail")
        del names.records[f"_dmarc.{DOMAIN}"]
        result = cli("doctor")
    assert result.exit_code == 1
    assert f"fail DMARC {DOMAIN}: no DMARC record" in result.stdout
    assert f"fail BASE_URL reachable: {base}/healthz does not answer" in result.stdout
    assert "     fix: start tidings serve" in result.stdout
