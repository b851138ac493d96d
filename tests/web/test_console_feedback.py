"""The console's way back over real HTTP, on SQLite and PostgreSQL: an edition's bounces page
and the edition page's link to it, the sender-health panel (every role reads them), and a
subscriber's history with the admin's Undo (admins only, with the form token)."""

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from tests.reports.feedback_rows import MAIL, OTHER, POST, Seeded, seed, suppressed_with_history
from tests.web.console import csrf, make_user, sign_in
from tests.web.forms import forms
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import SubscriberEvent, Suppression, UserRole


@dataclass
class Site:
    base: str
    db: Database
    seeded: Seeded
    event_id: int

    def client(self, role: UserRole) -> httpx.Client:
        return sign_in(self.base, f"{role.value}@messenger.example.ge")


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    seeded = seed(db)
    event_id = suppressed_with_history(db, seeded, "lela")
    for role in UserRole:
        make_user(db, role)
    with web_server(settings, db) as base:
        yield Site(base, db, seeded, event_id)


def _text(html: str) -> str:
    """The page's words, tags and extra spaces removed (to read figures in table rows)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _suppressed(db: Database, email: str) -> bool:
    with db.session() as session:
        return session.scalar(select(Suppression.id).where(Suppression.email == email)) is not None


@pytest.mark.parametrize("role", list(UserRole))
def test_every_role_reads_the_bounces_and_the_panel(site: Site, role: UserRole) -> None:
    client = site.client(role)
    edition = client.get(f"/admin/editions/{site.seeded.edition_id}")
    assert edition.status_code == 200
    assert "Bounces and complaints (9)</a>" in edition.text
    live = client.get(f"/admin/editions/{site.seeded.edition_id}/progress.json").json()
    assert (live["bounced"], live["complained"]) == (3, 1)

    bounces = client.get(f"/admin/editions/{site.seeded.edition_id}/bounces")
    assert bounces.status_code == 200, bounces.text
    text = _text(bounces.text)
    assert "Deliveries 9 Refused at send 5 Bounced 3 Complained 1" in text
    for listed in ("alice", "bob", "dato", "eka", "gia", "irakli", "lela", "maka"):
        assert f">{listed}@" in bounces.text, listed
    for clean in ("carol", "nino", "otar", "pati"):
        assert f">{clean}@" not in bounces.text, clean
    assert "policy : 550 5.7.26 Unauthenticated mail: DMARC" in text
    assert "hard : 550 5.1.1 User unknown" in text
    assert "complaint : abuse report, type abuse" in text and "erased" in text

    health = client.get("/admin/sender-health")
    assert health.status_code == 200
    text = _text(health.text)
    assert f"{MAIL} 2 1 1 66.7 %" in text and f"{POST} 1 2 0 66.7 %" in text
    assert "(unknown) 0 0 1 —" in text and OTHER not in text.split("Recent inbound")[0]
    assert "Accepted 7 Refused (policy) 3 Bounced (policy) 2" in text
    assert "nothing: forged return path" in text  # the recent inbound list
    assert 'href="/admin/sender-health" aria-current="page"' in health.text

    wide = _text(client.get("/admin/sender-health", params={"days": 60}).text)
    assert f"{POST} 1 3 0 75.0 %" in wide
    assert client.get("/admin/sender-health", params={"days": 91}).status_code == 422
    assert client.get("/admin/editions/999999/bounces").status_code == 404


def test_the_bounce_list_pages_by_delivery_id(site: Site) -> None:
    client = site.client(UserRole.viewer)
    first = client.get(f"/admin/editions/{site.seeded.edition_id}/bounces")
    assert 'rel="next"' not in first.text  # nine rows: one page of fifty
    after = site.seeded.deliveries["irakli"]
    rest = client.get(f"/admin/editions/{site.seeded.edition_id}/bounces?after={after}").text
    assert ">lela@" in rest and ">maka@" in rest and ">alice@" not in rest


def test_the_history_shows_evidence_and_only_admins_may_undo(site: Site) -> None:
    lela = site.seeded.subscribers["lela"]
    undo_path = f"/admin/subscriber-events/{site.event_id}/undo"
    for role in (UserRole.viewer, UserRole.editor):
        client = site.client(role)
        page = client.get(f"/admin/subscribers/{lela}")
        assert "hard_bounce: 550 5.1.1 No such user" in page.text and "bounce_point" in page.text
        assert not [f for f in forms(page.text) if "/undo" in f.action]
        refused = client.post(undo_path, data={"csrf_token": csrf(client), "subscriber": lela})
        assert refused.status_code == 403
    assert _suppressed(site.db, f"lela@{OTHER}")

    admin = site.client(UserRole.admin)
    page = admin.get(f"/admin/subscribers/{lela}").text
    undo_forms = [f.action for f in forms(page) if "/undo" in f.action]
    assert undo_path in undo_forms and len(undo_forms) == 2  # the suppression and the point
    without = admin.post(undo_path, data={"subscriber": str(lela)})
    assert without.status_code == 403 and "This form has expired" in without.text
    assert _suppressed(site.db, f"lela@{OTHER}")

    done = admin.post(undo_path, data={"csrf_token": csrf(admin), "subscriber": str(lela)})
    assert done.status_code == 200, done.text
    assert f"Removed the suppression of lela@{OTHER} (hard_bounce)." in done.text
    assert f'href="/admin/subscribers/{lela}"' in done.text
    assert not _suppressed(site.db, f"lela@{OTHER}")
    page = admin.get(f"/admin/subscribers/{lela}").text
    assert "undone" in page and "by admin@messenger.example.ge" in page and "unsuppressed" in page
    assert undo_path not in [f.action for f in forms(page)]
    with site.db.session() as session:
        event = session.get(SubscriberEvent, site.event_id)
        assert event is not None and event.undone_by == "admin@messenger.example.ge"

    again = admin.post(undo_path, data={"csrf_token": csrf(admin), "subscriber": str(lela)})
    assert again.status_code == 409 and "undone already" in again.text
