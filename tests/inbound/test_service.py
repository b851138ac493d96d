"""inbound/service: each real message, sent to the address it would reach, means what it
should and changes what it should (and nothing else), on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.inbound.people import DOMAIN, Reader, readers, statuses, suppressed
from tests.inbound.samples import sample
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import (
    BouncePoint,
    Delivery,
    DeliveryFeedback,
    HistoryKind,
    InboundMeaning,
    InboundMessage,
    SubscriberEvent,
    SubscriptionStatus,
)
from tidings.db.types import utcnow
from tidings.inbound import meaning
from tidings.inbound.service import handle_message
from tidings.mail.returnpath import Role, tagged_address

ACTIVE = SubscriptionStatus.active
GONE = SubscriptionStatus.unsubscribed


def _about(reader: Reader, **extra: str) -> dict[str, str]:
    return {
        "RETURN_PATH": reader.return_path,
        "READER": reader.email,
        "MESSAGE_ID": reader.message_id,
        "UNSUBSCRIBE": reader.unsubscribe,
        **extra,
    }


def _feedback(db: Database, delivery_id: int) -> DeliveryFeedback | None:
    with db.session() as session:
        return session.get_one(Delivery, delivery_id).feedback


def _rows(db: Database) -> list[InboundMessage]:
    with db.session() as session:
        return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def test_a_hard_bounce_suppresses_and_is_kept(db: Database, settings: Settings) -> None:
    nino, giorgi, *_ = readers(db, settings)
    raw = sample("postfix_511", **_about(nino))
    handled = handle_message(db, settings, raw, nino.return_path, "pipe")
    assert handled.meaning == InboundMeaning.hard_bounce
    assert handled.changes == f"suppressed {nino.email} (hard bounce)"
    assert suppressed(db) == {nino.email: "hard_bounce"}
    assert _feedback(db, nino.delivery_id) == DeliveryFeedback.bounced
    assert _feedback(db, giorgi.delivery_id) is None
    (row,) = _rows(db)
    assert row.id == handled.inbound_id
    assert (row.channel, row.recipient, row.meaning) == ("pipe", nino.return_path, "hard_bounce")
    assert (row.delivery_id, row.subscriber_id) == (nino.delivery_id, nino.subscriber_id)
    assert (row.status, row.recipient_domain, row.changes) == (
        "5.1.1",
        "example.ge",
        handled.changes,
    )
    assert row.diagnostic is not None and "User unknown" in row.diagnostic
    assert (row.raw, row.size, row.truncated) == (raw, len(raw), False)
    with db.session() as session:
        event = session.scalars(
            select(SubscriberEvent).where(
                SubscriberEvent.kind.not_in([HistoryKind.added, HistoryKind.confirmed])
            )
        ).one()
    assert (event.subscriber_id, event.kind, event.inbound_id) == (
        nino.subscriber_id,
        HistoryKind.suppressed,
        row.id,
    )


@pytest.mark.parametrize("name", ["gmail_headers_only", "exim_plain"])
def test_other_hard_bounces_found_by_delivered_to(
    db: Database, settings: Settings, name: str
) -> None:
    """No recipient given: the Delivered-To (or Envelope-to's To) names the delivery."""
    nino, *_ = readers(db, settings)
    handled = handle_message(db, settings, sample(name, **_about(nino)), None, "imap")
    assert handled.meaning == InboundMeaning.hard_bounce
    assert suppressed(db) == {nino.email: "hard_bounce"}
    assert _rows(db)[0].recipient == nino.return_path


def test_soft_bounces_score_points_until_the_threshold(db: Database, settings: Settings) -> None:
    nino, *_ = readers(db, settings)
    strict = settings.model_copy(update={"bounce_score_threshold": 2})
    raw = sample("mailbox_full_422", **_about(nino))
    now = utcnow()
    first = handle_message(db, strict, raw, nino.return_path, "pipe", now)
    assert first.meaning == InboundMeaning.soft_bounce
    assert first.changes == f"bounce point 1 of 2 for {nino.email}"
    again = handle_message(db, strict, raw, nino.return_path, "pipe", now + timedelta(hours=1))
    assert again.changes.startswith("nothing:") and suppressed(db) == {}
    assert _feedback(db, nino.delivery_id) == DeliveryFeedback.bounced
    # The next day's bounce is of another mail (the same DSN again scores nothing more).
    notice = tagged_address(settings.secret, Role.notice, nino.subscription_id, DOMAIN)
    other = sample("mailbox_full_422", **_about(nino, RETURN_PATH=notice))
    later = handle_message(db, strict, other, notice, "pipe", now + timedelta(days=1))
    assert later.changes.endswith("suppressed (soft bounces)")
    assert suppressed(db) == {nino.email: "soft_bounce"}
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(BouncePoint)) == 2


def test_a_policy_refusal_is_the_senders(db: Database, settings: Settings) -> None:
    nino, *_ = readers(db, settings)
    raw = sample("blocklist_571", **_about(nino))
    handled = handle_message(db, settings, raw, nino.return_path, "pipe")
    assert handled.meaning == InboundMeaning.policy
    assert handled.changes.startswith("nothing for the reader")
    assert suppressed(db) == {}
    assert statuses(db, nino.email) == {"daily": ACTIVE, "weekly": ACTIVE}
    (row,) = _rows(db)
    assert (row.status, row.recipient_domain) == ("5.7.1", "example.ge")


def test_a_complaint_unsubscribes_everywhere(db: Database, settings: Settings) -> None:
    nino, giorgi, *_ = readers(db, settings)
    raw = sample("yahoo_arf", **_about(nino, RECIPIENT=nino.return_path))
    handled = handle_message(db, settings, raw, nino.return_path, "lmtp")
    assert handled.meaning == InboundMeaning.complaint
    assert statuses(db, nino.email) == {"daily": GONE, "weekly": GONE}
    assert statuses(db, giorgi.email) == {"daily": ACTIVE, "weekly": ACTIVE}
    assert suppressed(db) == {nino.email: "complaint"}
    assert _feedback(db, nino.delivery_id) == DeliveryFeedback.complained


@pytest.mark.parametrize("strip", ["", "return paths", "all but the Message-ID"])
def test_a_complaint_to_an_unsigned_address(db: Database, settings: Settings, strip: str) -> None:
    """A feedback loop's report reaching abuse@: the delivery is found by what it quotes."""
    nino, *_ = readers(db, settings)
    raw = sample("yahoo_arf", **_about(nino, RECIPIENT=f"abuse@{DOMAIN}"))
    if strip:
        raw = raw.replace(nino.return_path.encode(), b"someone@elsewhere.example")
    if strip == "all but the Message-ID":
        raw = raw.replace(nino.unsubscribe.encode(), b"unsubscribe@elsewhere.example")
    handled = handle_message(db, settings, raw, f"abuse@{DOMAIN}", "imap")
    assert handled.meaning == InboundMeaning.complaint
    assert suppressed(db) == {nino.email: "complaint"}
    assert _rows(db)[0].delivery_id == nino.delivery_id


def test_a_message_id_naming_someone_else_is_not_trusted(db: Database, settings: Settings) -> None:
    """A reader quoting another's Message-ID while the report names its own address."""
    nino, giorgi, *_ = readers(db, settings)
    raw = sample("yahoo_arf", **_about(nino, RECIPIENT=f"abuse@{DOMAIN}"))
    raw = raw.replace(nino.return_path.encode(), b"someone@elsewhere.example")
    raw = raw.replace(nino.unsubscribe.encode(), b"unsubscribe@elsewhere.example")
    raw = raw.replace(nino.message_id.encode(), giorgi.message_id.encode())
    handled = handle_message(db, settings, raw, f"abuse@{DOMAIN}", "imap")
    assert handled.meaning == InboundMeaning.ignored
    assert suppressed(db) == {}


def test_a_message_id_alone_names_nobody(db: Database, settings: Settings) -> None:
    """A report quoting only a Message-ID and naming no recipient: Message-IDs follow a
    pattern a reader of the same edition can see, so it is not trusted."""
    nino, *_ = readers(db, settings)
    raw = sample("yahoo_arf", **_about(nino, RECIPIENT=f"abuse@{DOMAIN}"))
    raw = raw.replace(nino.return_path.encode(), b"someone@elsewhere.example")
    raw = raw.replace(nino.unsubscribe.encode(), b"unsubscribe@elsewhere.example")
    raw = raw.replace(nino.email.encode(), b"")
    handled = handle_message(db, settings, raw, f"abuse@{DOMAIN}", "imap")
    assert handled.meaning == InboundMeaning.ignored
    assert suppressed(db) == {}


def test_forged_and_altered_return_paths_change_nothing(db: Database, settings: Settings) -> None:
    nino, giorgi, *_ = readers(db, settings)
    other_key = tagged_address("another-secret-key-of-32-characters!", Role.bounce, 1, DOMAIN)
    mac = nino.return_path.split("-")[2].split("@")[0]
    altered_id = nino.return_path.replace(f"b-{nino.delivery_id}-", f"b-{giorgi.delivery_id}-")
    altered_mac = nino.return_path.replace(mac, ("a" if mac[0] != "a" else "b") + mac[1:])
    for address in (other_key, altered_id, altered_mac, f"b-{nino.delivery_id}@{DOMAIN}"):
        raw = sample("postfix_511", **_about(nino, RETURN_PATH=address))
        handled = handle_message(db, settings, raw, address, "pipe")
        assert handled.meaning == InboundMeaning.ignored, address
        assert handled.changes.startswith("nothing")
    assert suppressed(db) == {}
    assert _feedback(db, nino.delivery_id) is _feedback(db, giorgi.delivery_id) is None
    assert len(_rows(db)) == 4
    # The genuine address, same message: the test above could fail.
    raw = sample("postfix_511", **_about(nino))
    assert handle_message(db, settings, raw, nino.return_path.upper(), "pipe").meaning == (
        InboundMeaning.hard_bounce
    )
    assert suppressed(db) == {nino.email: "hard_bounce"}


def test_the_bounce_domain_when_set(db: Database, settings: Settings) -> None:
    nino, *_ = readers(db, settings)
    on_bounces = settings.model_copy(update={"bounce_domain": "bounces.example.ge"})
    raw = sample("postfix_511", **_about(nino))
    # Sent before the domain was set: the mac verifies, the domain does not.
    assert handle_message(db, on_bounces, raw, nino.return_path, "pipe").meaning == (
        InboundMeaning.ignored
    )
    there = nino.return_path.replace(DOMAIN, "Bounces.Example.GE")
    assert handle_message(db, on_bounces, raw, there, "pipe").meaning == (
        InboundMeaning.hard_bounce
    )


def test_a_mail_to_the_unsubscribe_address(db: Database, settings: Settings) -> None:
    nino, giorgi, *_ = readers(db, settings)
    raw = sample("please_unsubscribe", READER=nino.email, RECIPIENT=nino.unsubscribe)
    handled = handle_message(db, settings, raw, None, "pipe")
    assert handled.meaning == InboundMeaning.unsubscribe
    assert handled.changes == f"unsubscribed {nino.email} from daily"
    assert statuses(db, nino.email) == {"daily": GONE, "weekly": ACTIVE}
    assert statuses(db, giorgi.email) == {"daily": ACTIVE, "weekly": ACTIVE}
    assert suppressed(db) == {}
    # Whatever its words: a reply with none of them is a request too.
    quiet = raw.replace(b"Subject: unsubscribe", b"Subject: Re: hi").replace(b"Please", b"")
    weekly = tagged_address(
        settings.secret, Role.unsubscribe, giorgi.weekly_subscription_id, DOMAIN
    )
    assert handle_message(db, settings, quiet, weekly, "pipe").meaning == (
        InboundMeaning.unsubscribe
    )
    assert statuses(db, giorgi.email) == {"daily": ACTIVE, "weekly": GONE}


@pytest.mark.parametrize("name", ["out_of_office", "vacation_subject"])
def test_auto_replies_change_nothing(db: Database, settings: Settings, name: str) -> None:
    nino, *_ = readers(db, settings)
    for address in (nino.unsubscribe, nino.return_path):
        raw = sample(name, READER=nino.email, RECIPIENT=address)
        handled = handle_message(db, settings, raw, address, "pipe")
        assert handled.meaning == InboundMeaning.auto_reply
    assert statuses(db, nino.email) == {"daily": ACTIVE, "weekly": ACTIVE}
    assert suppressed(db) == {}
    assert _feedback(db, nino.delivery_id) is None


def test_anything_else_is_kept_unknown(db: Database, settings: Settings) -> None:
    nino, *_ = readers(db, settings)
    raw = b"From: Nino <" + nino.email.encode() + b">\nSubject: Re: Story 0\n\nGreat story!\n"
    handled = handle_message(db, settings, raw, nino.return_path, "pipe")
    assert handled.meaning == InboundMeaning.unknown
    assert _rows(db)[0].raw == raw
    assert statuses(db, nino.email) == {"daily": ACTIVE, "weekly": ACTIVE}


def test_size_limits(db: Database, settings: Settings) -> None:
    nino, *_ = readers(db, settings)
    capped = settings.model_copy(
        update={"inbound_keep_bytes": 1024, "inbound_max_bytes": 64 * 1024}
    )
    raw = sample("postfix_511", **_about(nino)) + b"x" * 2000 + b"\n"
    assert handle_message(db, capped, raw, nino.return_path, "pipe").meaning == (
        InboundMeaning.hard_bounce
    )
    too_large = raw + b"y" * (64 * 1024)
    handled = handle_message(db, capped, too_large, nino.return_path, "pipe")
    assert handled.meaning == InboundMeaning.ignored and "limit" in handled.changes
    kept, refused = _rows(db)
    assert (len(kept.raw or b""), kept.size, kept.truncated) == (1024, len(raw), True)
    assert (len(refused.raw or b""), refused.size, refused.truncated) == (
        1024,
        len(too_large),
        True,
    )


def test_a_failure_rolls_back_the_message_and_its_effects(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    nino, *_ = readers(db, settings)
    real = meaning.effects.hard_bounce

    def then_fail(*args: object, **kwargs: object) -> str:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("a fault after the suppression")

    monkeypatch.setattr(meaning.effects, "hard_bounce", then_fail)
    raw = sample("postfix_511", **_about(nino))
    with pytest.raises(RuntimeError):
        handle_message(db, settings, raw, nino.return_path, "pipe")
    assert _rows(db) == [] and suppressed(db) == {}
    assert _feedback(db, nino.delivery_id) is None


def test_a_bounced_confirmation_mail(db: Database, settings: Settings) -> None:
    """``n-`` names the subscription a notice went to: its bounce is the reader's."""
    nino, *_ = readers(db, settings)
    notice = tagged_address(settings.secret, Role.notice, nino.subscription_id, DOMAIN)
    raw = sample("postfix_511", **_about(nino, RETURN_PATH=notice))
    handled = handle_message(db, settings, raw, notice, "pipe")
    assert handled.meaning == InboundMeaning.hard_bounce
    assert suppressed(db) == {nino.email: "hard_bounce"}
    assert _rows(db)[0].delivery_id is None
