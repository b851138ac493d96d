"""The console's subscriber forms over real HTTP, on both databases, with a real SMTP server:
adding with or without the confirmation mail, the list's count of readers waiting and its
button that mails them, the import's "send the confirmation" box; a viewer changes nothing
and a form without its token is refused."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import newsletter, subscribers
from tests.web.console import csrf, make_user, sign_in
from tests.web.forms import form_to
from tests.web.site import Site, site_with_mail
from tidings.audience.service import add_subscriber
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import UserRole


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    subscribers(db, "daily", 1)
    make_user(db, UserRole.admin)
    make_user(db, UserRole.viewer)
    with site_with_mail(db, settings) as started:
        yield started


@pytest.fixture
def admin(site: Site) -> Iterator[httpx.Client]:
    client = sign_in(site.base, "admin@messenger.example.ge")
    yield client
    client.close()


def _add(client: httpx.Client, email: str, **extra: str) -> httpx.Response:
    data = {"csrf_token": csrf(client), "email": email, "newsletter": "daily", **extra}
    return client.post("/admin/subscribers/add", data=data)


def test_adding_mails_the_confirmation_only_when_asked(site: Site, admin: httpx.Client) -> None:
    quiet = _add(admin, "eka@example.ge")
    assert quiet.status_code == 303 and quiet.headers["location"].endswith("?done=added")
    asked = _add(admin, "nino@example.ge", name="Nino", send_confirmation="true")
    assert asked.status_code == 303 and asked.headers["location"].endswith("?done=mailed")
    (caught,) = site.wait_for_mail(1)
    assert caught.rcpt_tos == ["nino@example.ge"]
    page = admin.get(asked.headers["location"]).text
    assert "A confirmation mail is on its way." in page
    active = _add(admin, "ana@example.ge", confirmed="true", send_confirmation="true")
    assert active.headers["location"].endswith("?done=added")  # active: nothing to confirm

    listed = admin.get("/admin/subscribers", params={"newsletter": "daily"}).text
    assert "1 pending subscriber has not been sent a confirmation mail" in listed
    form = form_to(listed, "/admin/subscribers/confirmations")
    sent = admin.post("/admin/subscribers/confirmations", data=form.hidden)
    assert sent.status_code == 200
    assert "1 confirmation mail(s) are on their way." in sent.text
    mail = site.wait_for_mail(2)
    assert sorted(c.rcpt_tos[0] for c in mail) == ["eka@example.ge", "nino@example.ge"]
    assert "has not been sent" not in admin.get("/admin/subscribers").text


def test_an_import_can_send_the_confirmations(
    site: Site, admin: httpx.Client, tmp_path: Path
) -> None:
    add_subscriber(site.db, "daily", "waiting@example.ge", None, False, source="api")
    readers = tmp_path / "readers.csv"
    readers.write_text("email\nana@example.ge\nbob@example.ge\n", "utf-8")
    with readers.open("rb") as upload:
        preview = admin.post(
            "/admin/subscribers/import",
            data={"csrf_token": csrf(admin), "newsletter": "daily", "send_confirmation": "true"},
            files={"file": ("readers.csv", upload, "text/csv")},
        )
    assert preview.status_code == 200, preview.text
    assert "each new one sent the confirmation mail" in preview.text
    action = next(a for a in _actions(preview.text) if a.startswith("/admin/subscribers/import/"))
    done = admin.post(action, data=form_to(preview.text, action).hidden)
    assert done.status_code == 200, done.text
    assert "2 confirmation mail(s) are on their way." in done.text
    # The one added earlier without a mail still waits: the import sends only its own.
    assert "1 pending subscriber(s) of daily have not been sent" in done.text
    mail = site.wait_for_mail(2)
    assert sorted(c.rcpt_tos[0] for c in mail) == ["ana@example.ge", "bob@example.ge"]


def _actions(page: str) -> list[str]:
    return [part.split('"', 1)[0] for part in page.split('action="')[1:]]


def test_a_viewer_changes_nothing_and_a_form_needs_its_token(site: Site) -> None:
    viewer = sign_in(site.base, "viewer@messenger.example.ge")
    page = viewer.get("/admin/subscribers/1").text
    assert "reader0@example.ge" in page
    assert "Save changes" not in page and "Erase this person" not in page
    refused = viewer.post(
        "/admin/subscribers/1/suppress", data={"csrf_token": csrf(viewer), "detail": "x"}
    )
    assert refused.status_code == 403
    admin = sign_in(site.base, "admin@messenger.example.ge")
    forged = admin.post("/admin/subscribers/1/suppress", data={"detail": "x"})
    assert forged.status_code in (400, 403)
    assert "suppressed:" not in admin.get("/admin/subscribers/1").text
    bad = admin.get("/admin/subscribers", params={"status": "gone"})
    assert bad.status_code == 422 and "There is no status called" in bad.text
