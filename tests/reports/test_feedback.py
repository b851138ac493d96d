"""What came back, as the console and the API read it: an edition's bounces and complaints
(paged by delivery id) and the sender-health figures per receiving domain, on SQLite and
PostgreSQL with the rows of tests/reports/feedback_rows.py."""

import pytest

from tests.reports.feedback_rows import MAIL, POST, SPAMHAUS, Seeded, seed
from tidings.db.engine import Database
from tidings.db.models import DeliveryState, InboundMeaning, InboundMessage
from tidings.errors import InvalidInput, NotFound
from tidings.mail.status import BounceKind
from tidings.reports.feedback import (
    FeedbackSummary,
    edition_bounces,
    edition_feedback,
    edition_feedback_summary,
    recent_inbound,
)
from tidings.reports.senderhealth import UNKNOWN_DOMAIN, DomainHealth, sender_health


@pytest.fixture
def seeded(db: Database) -> Seeded:
    return seed(db)


def test_the_edition_bounce_list_pages_by_delivery_id(db: Database, seeded: Seeded) -> None:
    names = {delivery_id: name for name, delivery_id in seeded.deliveries.items()}
    pages, after = [], 0
    while True:
        page = edition_bounces(db, seeded.edition_id, after, 3)
        pages.append([names[row.delivery_id] for row in page.rows])
        if page.next_after is None:
            break
        after = page.next_after
    assert pages == [
        ["alice", "bob", "dato"],
        ["eka", "gia", "irakli"],
        ["lela", "maka", "erased"],
    ]


def test_each_row_says_what_was_refused_or_came_back(db: Database, seeded: Seeded) -> None:
    rows = {row.delivery_id: row for row in edition_bounces(db, seeded.edition_id, 0, 50).rows}
    by_name = {name: rows[delivery_id] for name, delivery_id in seeded.deliveries.items()
               if delivery_id in rows}  # fmt: skip
    assert by_name.keys() == {
        "alice", "bob", "dato", "eka", "gia", "irakli", "lela", "maka", "erased"
    }  # fmt: skip
    # Not listed: sent with only an auto-reply or a mailto unsubscribe, deferred, sent clean.
    assert {
        name: row.refusal for name, row in by_name.items() if row.state == DeliveryState.failed
    } == {
        "alice": BounceKind.policy,
        "bob": BounceKind.policy,  # Spamhaus without a 5.7 code
        "dato": BounceKind.policy,
        "irakli": BounceKind.hard,
        "erased": BounceKind.policy,
    }
    assert by_name["erased"].email is None and by_name["erased"].subscriber_id is None
    assert by_name["alice"].email == f"alice@{POST}" and by_name["alice"].came_back == ()
    assert [c.meaning for c in by_name["eka"].came_back] == [InboundMeaning.policy]
    assert by_name["eka"].came_back[0].diagnostic == "550 5.7.1 Poor sender reputation"
    assert [c.meaning for c in by_name["gia"].came_back] == [InboundMeaning.complaint]
    assert by_name["lela"].came_back[0].status == "5.1.1"
    assert by_name["eka"].refusal is None  # accepted at send time


def test_the_summary_counts_each_delivery_once(db: Database, seeded: Seeded) -> None:
    whole = edition_feedback(db, seeded.edition_id, 0, 2)
    assert whole.subject == "Panjikidze meets envoys" and len(whole.page.rows) == 2
    assert whole.summary == edition_feedback_summary(db, seeded.edition_id)
    assert edition_feedback_summary(db, seeded.edition_id) == FeedbackSummary(
        total=9, refused=5, bounced=3, complained=1
    )
    assert edition_feedback_summary(db, seeded.old_edition_id) == FeedbackSummary(1, 1, 0, 0)
    with pytest.raises(NotFound):
        edition_feedback_summary(db, 999_999)
    with pytest.raises(NotFound):
        edition_bounces(db, 999_999, 0, 10)
    with pytest.raises(NotFound):
        edition_feedback(db, 999_999, 0, 10)


def test_a_page_shows_at_most_five_messages_per_delivery_the_newest(
    db: Database, seeded: Seeded
) -> None:
    eka = seeded.deliveries["eka"]
    with db.session() as session:
        for n in range(7):
            full = InboundMessage(
                channel="pipe", meaning=InboundMeaning.soft_bounce, diagnostic=f"full {n}"
            )
            full.delivery_id = eka
            session.add(full)
        session.commit()
    (row,) = [r for r in edition_bounces(db, seeded.edition_id, 0, 50).rows if r.delivery_id == eka]
    assert [c.diagnostic for c in row.came_back] == [f"full {n}" for n in range(2, 7)]


def test_sender_health_per_domain(db: Database, seeded: Seeded) -> None:
    health = sender_health(db, days=7)
    assert health.domains == [
        DomainHealth(MAIL, sent=2, refused=1, bounced=1,
                     example="550 5.7.26 Unauthenticated mail: DMARC"),
        DomainHealth(POST, sent=1, refused=2, bounced=0, example=health.domains[1].example),
        DomainHealth(UNKNOWN_DOMAIN, sent=0, refused=0, bounced=1, example="554 5.7.1 Blocked"),
    ]  # fmt: skip
    assert health.domains[1].example in ("550 5.7.1 Message rejected as spam", f"554 {SPAMHAUS}")
    assert [d.rate_percent for d in health.domains] == [66.7, 66.7, None]
    assert (health.sent, health.refused, health.bounced, health.partial) == (7, 3, 2, False)


def test_the_window_counts_older_refusals_only_when_wide_enough(
    db: Database, seeded: Seeded
) -> None:
    wide = {d.domain: d for d in sender_health(db, days=60).domains}
    assert wide[POST].refused == 3 and wide[POST].example == "550 5.7.1 Message rejected as spam"
    for days in (0, 91):
        with pytest.raises(InvalidInput):
            sender_health(db, days=days)


def test_no_mail_no_figures(db: Database) -> None:
    health = sender_health(db)
    assert (health.domains, health.sent, health.refused, health.bounced) == ([], 0, 0, 0)
    assert recent_inbound(db, 20) == [] and health.recent == []


def test_recent_inbound_newest_first(db: Database, seeded: Seeded) -> None:
    recent = recent_inbound(db, limit=3)
    assert sender_health(db, recent=3).recent == recent
    assert [r.meaning for r in recent] == [
        InboundMeaning.ignored,
        InboundMeaning.policy,
        InboundMeaning.unsubscribe,
    ]
    assert recent[1].provider == "ses" and recent[1].recipient_domain is None
    assert recent[2].delivery_id == seeded.deliveries["pati"]
