"""``tidings dkim``: keygen prints the record, list says what DNS publishes (asked of a real
DNS server on loopback), remove; no private key in any output."""

import re

import dkim
import pytest

from tests.conftest import Cli
from tests.dnsserver import dns_server, unused_dns_port
from tests.mail.dkim.published import from_zone_lines
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DkimAlgorithm
from tidings.mail.dkim.store import load_signer


def _record_line(output: str) -> str:
    lines = [line for line in output.splitlines() if "._domainkey." in line]
    assert len(lines) == 1
    return lines[0]


def _columns(line: str) -> list[str]:
    """id, domain, selector, algorithm, created, DNS state (the console expands tabs)."""
    return line.split(None, 5)


def _joined(line: str) -> str:
    return "".join(re.findall(r'"([^"]*)"', line))


def test_keygen_prints_one_record_line_and_mail_then_verifies(
    cli: Cli, db: Database, settings: Settings
) -> None:
    result = cli("dkim", "keygen", "Messenger.Example.GE", "--selector", "t202611")
    assert result.exit_code == 0, result.output
    line = _record_line(result.stdout)
    assert line.startswith('t202611._domainkey.messenger.example.ge. IN TXT "v=DKIM1; k=rsa; p=')
    pieces = re.findall(r'"([^"]*)"', line)
    assert len(pieces) == 2 and all(len(p) <= 255 for p in pieces)
    assert "database" in result.stdout and "TIDINGS_SECRET_KEY" in result.stdout
    assert "PRIVATE" not in result.output
    signer = load_signer(db, settings, "news@messenger.example.ge")
    message = b"From: news@messenger.example.ge\r\nTo: a@example.ge\r\nSubject: s\r\n\r\nHi\r\n"
    assert dkim.verify(signer.sign(message), dnsfunc=from_zone_lines([line]))


def test_keygen_refuses_bad_names_and_a_taken_selector(cli: Cli) -> None:
    assert cli("db", "upgrade").exit_code == 0
    bad = cli("dkim", "keygen", "not a domain")
    assert bad.exit_code == 1 and "not a domain name" in bad.stderr
    bad = cli("dkim", "keygen", "example.org", "--selector", "_x")
    assert bad.exit_code == 1 and "not a DKIM selector" in bad.stderr
    assert cli("dkim", "keygen", "example.org", "--selector", "s1").exit_code == 0
    again = cli("dkim", "keygen", "example.org", "--selector", "s1", "--algorithm", "ed25519")
    assert again.exit_code == 1 and "already has a key" in again.stderr


def test_list_says_what_dns_publishes(
    cli: Cli, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = _record_line(cli("dkim", "keygen", "example.org", "--selector", "good").stdout)
    other = cli("dkim", "keygen", "example.org", "--selector", "old", "--algorithm", "ed25519")
    stale = _joined(_record_line(other.stdout)).replace("p=", "p=AAAA")
    cli("dkim", "keygen", "example.net", "--selector", "unpublished")
    records = {
        "good._domainkey.example.org": [("TXT", _joined(published))],
        "old._domainkey.example.org": [("TXT", stale)],
    }
    with dns_server(records) as dns:
        monkeypatch.setenv("TIDINGS_DNS_NAMESERVERS", dns.address)
        result = cli("dkim", "list")
        assert dns.asked("good._domainkey.example.org") == ["TXT"]
    assert result.exit_code == 0, result.output
    rows = {row[2]: row for row in map(_columns, result.stdout.splitlines())}
    assert rows["good"][1:4] == ["example.org", "good", "rsa"]
    assert rows["good"][5] == "published"
    assert rows["old"][3:] == ["ed25519", rows["old"][4], "different key"]
    assert rows["unpublished"][5] == "not published"
    assert "PRIVATE" not in result.output

    monkeypatch.setenv("TIDINGS_DNS_NAMESERVERS", f"127.0.0.1:{unused_dns_port()}")
    silent = cli("dkim", "list")
    assert silent.exit_code == 0
    assert {_columns(line)[5] for line in silent.stdout.splitlines()} == {"DNS did not answer"}


def test_list_shows_a_key_sealed_with_another_secret(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli(
        "dkim",
        "keygen",
        "example.org",
        "--selector",
        "s1",
        "--algorithm",
        DkimAlgorithm.ed25519.value,
    )
    monkeypatch.setenv("TIDINGS_SECRET_KEY", "another-secret-key-that-is-long-enough-0123456789")
    monkeypatch.setenv("TIDINGS_DNS_NAMESERVERS", f"127.0.0.1:{unused_dns_port()}")
    result = cli("dkim", "list")
    assert "unreadable: sealed with another secret key" in result.stdout


def test_remove_takes_the_domain_and_selector(cli: Cli) -> None:
    cli("dkim", "keygen", "example.org", "--selector", "s1")
    missing = cli("dkim", "remove", "example.org", "--selector", "s2")
    assert missing.exit_code == 1 and "no DKIM key under selector s2" in missing.stderr
    result = cli("dkim", "remove", "example.org", "--selector", "s1")
    assert result.exit_code == 0 and "removed" in result.stdout
    assert "no DKIM keys" in cli("dkim", "list").stdout
