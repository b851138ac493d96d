"""Hostile tests of subscriber management: consent an admin cannot give back in the reader's
name, erasure that leaves the address behind, and the console over real HTTP on both
databases."""

import asyncio
import csv
from collections.abc import Iterator
from datetime import date
from io import StringIO

import httpx
import pytest
from sqlalchemy import select

from tests.builders import newsletter
from tests.web.console import csrf, make_user, sign_in
from tests.web.forms import form_to
from tests.web.site import Site, site_with_mail
from tidings.access.apitokens import create_token
from tidings.audience import export
from tidings.audience.confirmations import claim_one
from tidings.audience.search import audience_filter, count
from tidings.audience.service import add_subscriber, unsubscribe
from tidings.audience.signup import SignupQueue, claim_confirmation
from tidings.audience.subscribers import subscriber_record
from tidings.audience.suppressions import suppress, suppression_of, unsuppress
from tidings.catalog.counts import ReaderStatus
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    BouncePoint,
    Delivery,
    DeliveryState,
    Edition,
    EditionKind,
    EditionStatus,
    InboundMeaning,
    InboundMessage,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
    UserRole,
)
from tidings.db.types import utcnow
from tidings.mail.tokens import Purpose, sign
from tidings.reports.insights import overview


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    make_user(db, UserRole.admin)
    with site_with_mail(db, settings) as started:
        yield started


@pytest.fixture
def admin(site: Site) -> Iterator[httpx.Client]:
    client = sign_in(site.base, "admin@messenger.example.ge")
    yield client
    client.close()


def _status(db: Database, subscription_id: int) -> SubscriptionStatus:
    with db.session() as session:
        return session.scalars(
            select(Subscription.status).where(Subscription.id == subscription_id)
        ).one()


def _post(client: httpx.Client, path: str, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf(client), **data})


def test_an_admin_cannot_make_a_reader_who_left_by_their_link_active_again(
    site: Site, admin: httpx.Client, db: Database, settings: Settings
) -> None:
    """The reader withdrew consent themself: an admin's 'resubscribe' may ask them again
    (pending), never start mailing them on the old consent (GDPR art. 7(3))."""
    added = add_subscriber(db, "daily", "tamar@example.ge", "Tamar", True, source="api")
    token = sign(settings.secret, Purpose.unsubscribe, added.subscription_id)
    form = form_to(httpx.get(f"{site.base}/u/{token}").text, f"/u/{token}")
    assert httpx.post(f"{site.base}/u/{token}", data=form.hidden).status_code == 200
    assert _status(db, added.subscription_id) == SubscriptionStatus.unsubscribed

    again = _post(admin, f"/admin/subscriptions/{added.subscription_id}/resubscribe")
    assert again.status_code == 303
    assert _status(db, added.subscription_id) == SubscriptionStatus.pending


def test_an_admin_may_undo_their_own_unsubscribe(
    site: Site, admin: httpx.Client, db: Database
) -> None:
    """An unsubscribe made in the console is the admin's own mistake to undo: active again."""
    added = add_subscriber(db, "daily", "levan@example.ge", None, True, source="api")
    left = _post(admin, f"/admin/subscriptions/{added.subscription_id}/unsubscribe")
    assert left.status_code == 303
    again = _post(admin, f"/admin/subscriptions/{added.subscription_id}/resubscribe")
    assert again.status_code == 303
    assert _status(db, added.subscription_id) == SubscriptionStatus.active


def test_erasing_leaves_the_address_nowhere(site: Site, admin: httpx.Client, db: Database) -> None:
    """After erasure no row names the person: not the bounce that came back (its raw copy,
    diagnostic and 'what it changed'; the row stays, anonymous, for the counts), not their
    bounce points, not the relay's reply kept on their delivery."""
    address = "gone@example.ge"
    added = add_subscriber(db, "daily", address, "Gone", True, source="api")
    kept = add_subscriber(db, "daily", "kept@example.ge", None, True, source="api")
    with db.session() as session:
        newsletter_id = session.scalars(
            select(Subscription.newsletter_id).where(Subscription.id == added.subscription_id)
        ).one()
        edition = Edition(
            newsletter_id=newsletter_id, kind=EditionKind.oneoff, status=EditionStatus.sent
        )
        session.add(edition)
        session.flush()
        for who, email in ((added.subscriber_id, address), (kept.subscriber_id, "kept@x.ge")):
            delivery = Delivery(
                edition_id=edition.id,
                subscriber_id=who,
                state=DeliveryState.failed,
                message_id=f"<{who}@tidings>",
                last_reply_code=550,
                last_reply=f"550 5.1.1 <{email}>: Recipient address rejected",
            )
            session.add(delivery)
            session.flush()
            session.add(
                InboundMessage(
                    channel="pipe",
                    recipient="bounce+abc@bounces.example.ge",
                    raw=f"Final-Recipient: rfc822; {email}\r\n".encode(),
                    meaning=InboundMeaning.hard_bounce,
                    status="5.1.1",
                    diagnostic=f"550 5.1.1 <{email}>: unknown",
                    delivery_id=delivery.id,
                    subscriber_id=who,
                    recipient_domain="example.ge",
                    changes=f"suppressed {email}",
                )
            )
        session.add(BouncePoint(email=address, day=date(2026, 12, 1), detail="soft bounce"))
        session.commit()

    page = admin.get(f"/admin/subscribers/{added.subscriber_id}/erase").text
    form = form_to(page, f"/admin/subscribers/{added.subscriber_id}/erase")
    erased = admin.post(
        f"/admin/subscribers/{added.subscriber_id}/erase", data={**form.hidden, "sure": "yes"}
    )
    assert erased.status_code == 303

    with db.session() as session:
        replies = session.scalars(select(Delivery.last_reply)).all()
        inbound = session.execute(
            select(InboundMessage.raw, InboundMessage.diagnostic, InboundMessage.changes)
        ).all()
        points = session.scalars(select(BouncePoint.email)).all()
        counted = session.scalar(select(Delivery.id).where(Delivery.subscriber_id.is_(None)))
    assert counted is not None  # the anonymous delivery row stays for the counts
    assert not any(address in (reply or "") for reply in replies)
    assert any("kept@x.ge" in (reply or "") for reply in replies)  # others untouched
    for raw, diagnostic, changes in inbound:
        assert address.encode() not in (raw or b"")
        assert address not in (diagnostic or "") and address not in (changes or "")
    assert len(inbound) == 2  # kept, anonymous, for the sender-health counts
    assert any("kept@x.ge" in (changes or "") for _, _, changes in inbound)
    assert address not in points


def test_undoing_a_readers_own_unsubscribe_asks_them_again(
    site: Site, db: Database, settings: Settings
) -> None:
    """The history's undo (meant for what the way back decided) of an unsubscribe the reader
    made by their signed link does not start mailing them: pending until they confirm."""
    added = add_subscriber(db, "daily", "salome@example.ge", None, True, source="api")
    token = sign(settings.secret, Purpose.unsubscribe, added.subscription_id)
    form = form_to(httpx.get(f"{site.base}/u/{token}").text, f"/u/{token}")
    assert httpx.post(f"{site.base}/u/{token}", data=form.hidden).status_code == 200
    _, secret = create_token(db, "admin token", UserRole.admin, "test")
    with httpx.Client(
        base_url=f"{site.base}/api/v1", headers={"Authorization": f"Bearer {secret}"}
    ) as api:
        history = api.get(f"/subscribers/{added.subscriber_id}/history").json()
        (left,) = [e for e in history if e["kind"] == "unsubscribed"]
        assert left["source"] == "web"
        undone = api.post(f"/subscriber-events/{left['id']}/undo")
    assert undone.status_code == 200 and "(pending)" in undone.text
    assert _status(db, added.subscription_id) == SubscriptionStatus.pending


def test_the_confirmation_claim_itself_refuses_a_subscription_no_longer_pending(
    db: Database,
) -> None:
    """The claim is the one conditional UPDATE racing requests meet: it must also hold when
    the reader unsubscribed or confirmed between an admin's look-up and the claim (the
    'send to all waiting' button reads the waiting readers first, then claims each)."""
    newsletter(db)
    left = add_subscriber(db, "daily", "nana@example.ge", None, False, source="api")
    done = add_subscriber(db, "daily", "keti@example.ge", None, True, source="api")
    waiting = add_subscriber(db, "daily", "eter@example.ge", None, False, source="api")
    complained = add_subscriber(db, "daily", "lela@example.ge", None, False, source="api")
    unsubscribe(db, left.subscription_id, source="web")
    suppress(db, "lela@example.ge", "complaint meanwhile")
    with db.session() as session:
        now = utcnow()
        assert not claim_confirmation(session, left.subscription_id, now)
        assert not claim_confirmation(session, done.subscription_id, now)
        assert not claim_confirmation(session, complained.subscription_id, now)
        assert claim_confirmation(session, waiting.subscription_id, now)
        session.commit()


def test_the_console_export_streams_page_by_page_and_guards_formulas(
    site: Site, admin: httpx.Client, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export is read and sent a page at a time (it was built whole in memory first: a
    million readers were hundreds of megabytes per click), and a name a spreadsheet would
    evaluate stays text."""
    monkeypatch.setattr(export, "EXPORT_PAGE", 2)
    for number, name in enumerate(("=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "=cmd|x!A0")):
        add_subscriber(db, "daily", f"r{number}@example.ge", name, True, source="api")
    chunks = list(export.export_chunks(db, "daily"))
    assert len(chunks) == 4  # the header, then 2 + 2 + 1 readers
    whole = StringIO()
    assert export.export_subscribers(db, "daily", whole) == 5
    assert whole.getvalue() == "".join(chunks)
    with admin.stream(
        "GET", "/admin/subscribers/export.csv", params={"newsletter": "daily"}
    ) as answer:
        assert answer.status_code == 200
        body = answer.read().decode()
    assert body == whole.getvalue()
    names = [row["name"] for row in csv.DictReader(StringIO(body))]
    assert names == ["'=HYPERLINK(1)", "'+1", "'-2", "'@SUM(A1)", "'=cmd|x!A0"]


def test_every_count_agrees_on_the_tricky_readers(site: Site, db: Database) -> None:
    """Suppressed after subscribing, pending and suppressed, unsubscribed and suppressed,
    suppressed then unsuppressed, and one address in two newsletters: the dashboard's
    counts, the status filter and the API's shown_as say the same."""
    newsletter(db, "weekly")
    made = {
        email: add_subscriber(db, "daily", email, None, confirmed, source="api")
        for email, confirmed in (
            ("a@example.ge", True),
            ("p@example.ge", False),
            ("u@example.ge", True),
            ("back@example.ge", True),
            ("two@example.ge", True),
            ("plain@example.ge", True),
        )
    }
    add_subscriber(db, "weekly", "two@example.ge", None, False, source="api")
    unsubscribe(db, made["u@example.ge"].subscription_id, source="web")
    suppress(db, "a@example.ge", "by hand")
    suppress(db, "p@example.ge", "bounced", SuppressionReason.hard_bounce)
    suppress(db, "u@example.ge", "complaint", SuppressionReason.complaint)
    suppress(db, "back@example.ge", "mistake")
    row = suppression_of(db, "back@example.ge")
    assert row is not None and unsuppress(db, row.id, "console", "admin@x")
    suppress(db, "two@example.ge", "by hand")

    expected = {
        "daily": {"active": 2, "pending": 0, "unsubscribed": 0, "bounced": 1, "suppressed": 3},
        "weekly": {"active": 0, "pending": 0, "unsubscribed": 0, "bounced": 0, "suppressed": 1},
    }
    dashboard = {o.slug: o.counts for o in overview(db)}
    _, secret = create_token(db, "viewer token", UserRole.viewer, "test")
    with httpx.Client(
        base_url=f"{site.base}/api/v1", headers={"Authorization": f"Bearer {secret}"}
    ) as api:
        everyone = api.get("/subscribers", params={"limit": 200}).json()["items"]
        for slug, wanted in expected.items():
            dash = dict(wanted, suppressed=wanted["suppressed"] + wanted["bounced"])
            del dash["bounced"]
            assert dashboard[slug] == dash, slug
            for status, total in wanted.items():
                audience = audience_filter(db, slug, ReaderStatus(status), "")
                assert count(db, audience) == total, (slug, status)
                listed = api.get(
                    "/subscribers", params={"newsletter": slug, "status": status, "limit": 200}
                ).json()["items"]
                assert len(listed) == total, (slug, status)
                shown = [
                    s["shown_as"]
                    for person in everyone
                    for s in person["subscriptions"]
                    if s["newsletter_slug"] == slug
                ]
                assert shown.count(status) == total, (slug, status)


def test_viewers_editors_and_forged_forms_change_nothing(
    site: Site, admin: httpx.Client, db: Database
) -> None:
    """Every subscriber action in the console refuses a viewer and an editor, and an admin's
    form without its token; the API refuses a viewer's and an editor's token."""
    pending = add_subscriber(db, "daily", "wait@example.ge", "Wait", False, source="api")
    active = add_subscriber(db, "daily", "on@example.ge", "On", True, source="api")
    sid, sub = active.subscriber_id, active.subscription_id
    posts = {
        f"/admin/subscribers/{sid}/edit": {"name": "Changed"},
        f"/admin/subscribers/{sid}/erase": {"sure": "yes"},
        f"/admin/subscribers/{sid}/suppress": {},
        f"/admin/subscribers/{sid}/unsuppress": {},
        f"/admin/subscriptions/{sub}/unsubscribe": {},
        f"/admin/subscriptions/{sub}/resubscribe": {},
        f"/admin/subscriptions/{pending.subscription_id}/confirmation": {},
        "/admin/subscribers/confirmations": {"newsletter": "daily"},
        "/admin/subscribers/add": {"email": "new@example.ge", "newsletter": "daily"},
        "/admin/subscribers/bulk": {"action": "delete", "newsletter": "daily", "confirm": "yes"},
        "/admin/suppressions": {"email": "on@example.ge"},
    }

    def untouched() -> None:
        record = subscriber_record(db, sid, history=0)
        assert record is not None and record.name == "On" and record.suppression is None
        assert _status(db, sub) == SubscriptionStatus.active
        assert _status(db, pending.subscription_id) == SubscriptionStatus.pending
        assert subscriber_record(db, pending.subscriber_id, history=0) is not None
        assert site.smtp.caught == []

    for role in (UserRole.viewer, UserRole.editor):
        email = make_user(db, role, f"{role.value}@messenger.example.ge")
        client = sign_in(site.base, email)
        for path, data in posts.items():
            answer = _post(client, path, **data)
            assert answer.status_code == 403, (role, path, answer.status_code)
            assert "Your role may not do this" in answer.text, (role, path)
        client.close()
        untouched()
    for path, data in posts.items():
        answer = admin.post(path, data=data)
        assert answer.status_code == 403 and "has expired" in answer.text, path
    untouched()

    for role in (UserRole.viewer, UserRole.editor):
        _, secret = create_token(db, f"{role.value} token", role, "test")
        with httpx.Client(
            base_url=f"{site.base}/api/v1", headers={"Authorization": f"Bearer {secret}"}
        ) as api:
            calls = [
                api.patch(f"/subscribers/{sid}", json={"name": "Changed"}),
                api.delete(f"/subscribers/{sid}"),
                api.patch(f"/subscriptions/{sub}", json={"status": "unsubscribed"}),
                api.post(
                    "/subscribers",
                    json={
                        "email": "wait@example.ge",
                        "newsletter": "daily",
                        "send_confirmation": True,
                    },
                ),
                api.post("/suppressions", json={"email": "on@example.ge"}),
            ]
            assert [c.status_code for c in calls] == [403] * len(calls), role
    untouched()


def test_a_claimed_confirmation_is_not_sent_to_an_address_suppressed_meanwhile(
    site: Site, db: Database
) -> None:
    """The admin's confirmations wait in the sign-up queue (four SMTP conversations for up to
    200 a click): an address suppressed, or a reader who left, before its turn is not mailed;
    one still pending is (the real SMTP server catches it)."""
    quiet = add_subscriber(db, "daily", "complained@example.ge", None, False, source="api")
    left = add_subscriber(db, "daily", "left@example.ge", None, False, source="api")
    due = add_subscriber(db, "daily", "due@example.ge", None, False, source="api")
    claims = [claim_one(db, made.subscription_id, "console") for made in (quiet, left, due)]
    suppress(db, "complained@example.ge", "complaint", SuppressionReason.complaint)
    unsubscribe(db, left.subscription_id, source="web")

    async def send() -> None:
        queue = SignupQueue(db, site.settings)
        for claimed in claims:
            assert claimed is not None and queue.mail(claimed)
        await queue.close(grace=30)

    asyncio.run(send())
    assert [c.rcpt_tos for c in site.smtp.caught] == [["due@example.ge"]]


def test_search_wildcards_are_plain_text(site: Site, db: Database) -> None:
    """q= is a plain substring: '%' and '_' match themselves, not everyone (held)."""
    add_subscriber(db, "daily", "percent%sign@example.ge", None, True, source="api")
    add_subscriber(db, "daily", "under_score@example.ge", None, True, source="api")
    add_subscriber(db, "daily", "plain@example.ge", "Plain", True, source="api")
    _, secret = create_token(db, "viewer token", UserRole.viewer, "test")
    with httpx.Client(
        base_url=f"{site.base}/api/v1", headers={"Authorization": f"Bearer {secret}"}
    ) as api:
        for q, wanted in (("%", ["percent%sign@example.ge"]), ("_", ["under_score@example.ge"])):
            for path in ("/subscribers", "/suppressions"):
                answer = api.get(path, params={"q": q, "limit": 200})
                assert answer.status_code == 200
            found = api.get("/subscribers", params={"q": q, "limit": 200}).json()["items"]
            assert [s["email"] for s in found] == wanted, q
