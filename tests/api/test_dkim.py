"""/api/v1/dkim-keys over real HTTP: admin tokens only, the record to publish, DNS state on
request (a real DNS server on loopback), removal; never a private key in an answer."""

import re
from collections.abc import Iterator
from dataclasses import dataclass

import dkim
import httpx
import pytest

from tests.dnsserver import DnsServer, dns_server
from tests.mail.dkim.published import from_zone_lines
from tests.webserver import web_server
from tidings.access.apitokens import create_token
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import UserRole
from tidings.mail.dkim.store import load_signer


@dataclass
class Api:
    clients: dict[UserRole, httpx.Client]
    dns: DnsServer


@pytest.fixture
def api(db: Database, settings: Settings) -> Iterator[Api]:
    tokens = {role: create_token(db, role.value, role, "test")[1] for role in UserRole}
    with dns_server({}) as dns, web_server(dns.settings(settings), db) as base:
        clients = {
            role: httpx.Client(
                base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {secret}"}
            )
            for role, secret in tokens.items()
        }
        yield Api(clients, dns)


def test_only_admins_see_or_make_keys(api: Api) -> None:
    clients = api.clients
    for role in (UserRole.viewer, UserRole.editor):
        assert clients[role].get("/dkim-keys").status_code == 403
        assert clients[role].post("/dkim-keys", json={"domain": "example.org"}).status_code == 403
        assert clients[role].delete("/dkim-keys/1").status_code == 403


def test_a_key_is_made_listed_checked_and_removed(
    api: Api, db: Database, settings: Settings
) -> None:
    admin = api.clients[UserRole.admin]
    made = admin.post("/dkim-keys", json={"domain": "Example.org", "selector": "s1"})
    assert made.status_code == 201, made.text
    key = made.json()
    assert (key["domain"], key["selector"], key["algorithm"]) == ("example.org", "s1", "rsa")
    assert key["record_name"] == "s1._domainkey.example.org."
    assert "".join(re.findall(r'"([^"]*)"', key["zone_line"])) == key["record_value"]
    ed = admin.post(
        "/dkim-keys", json={"domain": "example.org", "algorithm": "ed25519", "selector": "e1"}
    )
    assert ed.json()["record_value"].startswith("v=DKIM1; k=ed25519; p=")
    assert (
        admin.post("/dkim-keys", json={"domain": "example.org", "selector": "s1"}).status_code
        == 409
    )
    bad = admin.post("/dkim-keys", json={"domain": "not a domain"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
    dsa = admin.post("/dkim-keys", json={"domain": "example.org", "algorithm": "dsa"})
    assert dsa.status_code == 422, dsa.text  # the schema takes DkimAlgorithm's values only

    api.dns.records["s1._domainkey.example.org"] = [("TXT", key["record_value"])]
    listed = admin.get("/dkim-keys", params={"check_dns": "true"}).json()
    assert {(k["selector"], k["dns"], k["readable"]) for k in listed} == {
        ("s1", "published", True),
        ("e1", "not published", True),
    }
    assert {k["dns"] for k in admin.get("/dkim-keys").json()} == {None}
    for answer in (made.text, ed.text, str(listed)):
        assert "PRIVATE" not in answer and "sealed" not in answer

    signer = load_signer(db, settings, "news@example.org")
    message = b"From: news@example.org\r\nSubject: s\r\n\r\nHi\r\n"
    assert dkim.verify(signer.sign(message), dnsfunc=from_zone_lines([key["zone_line"]]))

    assert admin.delete(f"/dkim-keys/{key['id']}").status_code == 204
    assert admin.delete(f"/dkim-keys/{key['id']}").status_code == 404
    assert [k["selector"] for k in admin.get("/dkim-keys").json()] == ["e1"]
