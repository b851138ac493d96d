"""The console's DKIM keys page over real HTTP: admins make a key and see the record to
publish and what DNS (a real server on loopback) publishes, and remove it; other roles are
refused; the private key is never on a page."""

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.dnsserver import DnsServer, dns_server
from tests.web.console import csrf, make_user, sign_in
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import UserRole
from tidings.mail.dkim.store import list_keys


@dataclass
class Site:
    base: str
    admin: httpx.Client
    token: str
    dns: DnsServer

    def post(self, path: str, **data: str) -> httpx.Response:
        return self.admin.post(path, data={"csrf_token": self.token, **data})


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    for role in UserRole:
        make_user(db, role)
    with dns_server({}) as dns, web_server(dns.settings(settings), db) as base:
        admin = sign_in(base, "admin@messenger.example.ge")
        yield Site(base, admin, csrf(admin), dns)


def test_an_admin_makes_publishes_and_removes_a_key(site: Site, db: Database) -> None:
    page = site.admin.get("/admin/dkim")
    assert page.status_code == 200 and "No keys yet" in page.text
    assert 'href="/admin/dkim" aria-current="page">DKIM keys</a>' in page.text
    made = site.post("/admin/dkim", domain="Messenger.example.ge", selector="t202611")
    assert made.status_code == 200, made.text
    (key,) = list_keys(db)
    assert "It signs mail from messenger.example.ge" in made.text
    assert made.text.count(key.record.pieces[0]) == 2  # the notice and the table
    assert "not published" in made.text and "PRIVATE" not in made.text

    site.dns.records["t202611._domainkey.messenger.example.ge"] = [("TXT", key.record.value)]
    assert ">published" in site.admin.get("/admin/dkim").text

    refused = site.post("/admin/dkim", domain="messenger.example.ge", selector="t202611")
    assert refused.status_code >= 400 and "already has a key" in refused.text
    bad = site.post("/admin/dkim", domain="not a domain")
    assert bad.status_code >= 400 and "not a domain name" in bad.text
    ed = site.post("/admin/dkim", domain="messenger.example.ge", algorithm="ed25519")
    assert "k=ed25519" in ed.text

    no_token = site.admin.post(f"/admin/dkim/{key.id}/remove")
    assert no_token.status_code == 403 and len(list_keys(db)) == 2
    removed = site.post(f"/admin/dkim/{key.id}/remove")
    assert removed.status_code == 303 and removed.headers["location"] == "/admin/dkim"
    assert [k.algorithm.value for k in list_keys(db)] == ["ed25519"]


@pytest.mark.parametrize("role", [UserRole.viewer, UserRole.editor])
def test_other_roles_are_refused(site: Site, db: Database, role: UserRole) -> None:
    client = sign_in(site.base, f"{role.value}@messenger.example.ge")
    assert client.get("/admin/dkim").status_code == 403
    assert 'href="/admin/dkim"' not in client.get("/admin").text
    answer = client.post("/admin/dkim", data={"csrf_token": csrf(client), "domain": "example.org"})
    assert answer.status_code == 403 and list_keys(db) == []
