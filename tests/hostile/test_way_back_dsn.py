"""The way back under a hostile internet and careless relays: delivery status notifications
that name someone else, say something other than a failure, come twice or come back as
warnings. The signed return path is the truth: it names the delivery, and nothing a report
says moves an effect onto another reader. On SQLite and PostgreSQL."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import func, select

from tests.inbound.bounces import dsn
from tests.inbound.people import DOMAIN, readers, statuses, suppressed
from tests.inbound.samples import sample
from tidings.audience.subscribers import erase
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import BouncePoint, InboundMeaning, SubscriberEvent, SubscriptionStatus
from tidings.db.types import utcnow
from tidings.feedback.history import ARRIVAL
from tidings.inbound.service import handle_message
from tidings.mail.returnpath import Role, tagged_address

ACTIVE = SubscriptionStatus.active
GONE = SubscriptionStatus.unsubscribed


def _points(db: Database) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(
            select(BouncePoint.email, func.count()).group_by(BouncePoint.email)
        ).all()
    return {email: count for email, count in rows}


def _history(db: Database) -> int:
    with db.session() as session:
        changes = select(func.count()).where(SubscriberEvent.kind.not_in(ARRIVAL))
        return int(session.scalar(changes) or 0)


def _multi(return_path: str, blocks: list[tuple[str, str, str]]) -> bytes:
    """A DSN to ``return_path`` with one per-recipient block per (recipient, action, status)."""
    fields = "".join(
        f"Final-Recipient: rfc822; {who}\r\nAction: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {'550' if status[0] == '5' else '452'} {status} no\r\n\r\n"
        for who, action, status in blocks
    )
    return (
        "Return-Path: <>\r\n"
        "From: MAILER-DAEMON@mx.example.org\r\n"
        f"To: {return_path}\r\n"
        "Subject: Delivery Status Notification\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n" + fields + "--B--\r\n"
    ).encode()


def test_a_dsn_naming_another_reader_bounces_the_return_paths_reader_only(
    db: Database, settings: Settings
) -> None:
    nino, giorgi, *_ = readers(db, settings)
    handled = handle_message(
        db, settings, dsn(nino.return_path, giorgi.email), nino.return_path, "pipe"
    )
    assert handled.meaning == InboundMeaning.hard_bounce
    assert suppressed(db) == {nino.email: "hard_bounce"}


def test_a_multi_recipient_dsn_reads_the_return_paths_readers_block(
    db: Database, settings: Settings
) -> None:
    nino, giorgi, *_ = readers(db, settings)
    raw = _multi(
        nino.return_path,
        [(giorgi.email, "failed", "5.1.1"), (nino.email.upper(), "delayed", "4.4.1")],
    )
    handled = handle_message(db, settings, raw, nino.return_path, "pipe")
    assert handled.changes.startswith("nothing") and suppressed(db) == {}


def test_delayed_and_relayed_reports_change_nothing(db: Database, settings: Settings) -> None:
    nino, *_ = readers(db, settings)
    for action, status in (("delayed", "4.4.7"), ("relayed", "5.1.1"), ("delivered", "2.0.0")):
        raw = _multi(nino.return_path, [(nino.email, action, status)])
        handled = handle_message(db, settings, raw, nino.return_path, "pipe")
        assert handled.meaning == InboundMeaning.unknown, action
    assert suppressed(db) == {} and _points(db) == {} and _history(db) == 0


def test_the_same_soft_bounce_again_on_a_later_day_scores_no_second_point(
    db: Database, settings: Settings
) -> None:
    """A relay that lost our 250 (or an IMAP move that failed) hands the same DSN in again,
    maybe days later: one delivery came back once, so it is one point, not two."""
    nino, *_ = readers(db, settings)
    raw = sample("mailbox_full_422", RETURN_PATH=nino.return_path, READER=nino.email)
    now = utcnow()
    first = handle_message(db, settings, raw, nino.return_path, "pipe", now)
    assert first.meaning == InboundMeaning.soft_bounce and _points(db) == {nino.email: 1}
    history = _history(db)
    again = handle_message(db, settings, raw, nino.return_path, "imap", now + timedelta(days=2))
    assert again.changes.startswith("nothing"), again.changes
    assert _points(db) == {nino.email: 1} and _history(db) == history


def test_a_return_path_in_another_case_still_names_the_delivery(
    db: Database, settings: Settings
) -> None:
    """MTAs upper-case or lower-case the local part on the way back."""
    nino, giorgi, *_ = readers(db, settings)
    for reader, path in ((nino, nino.return_path.upper()), (giorgi, giorgi.return_path.title())):
        handled = handle_message(db, settings, dsn(path, reader.email), path, "pipe")
        assert handled.meaning == InboundMeaning.hard_bounce, path
    assert suppressed(db) == {nino.email: "hard_bounce", giorgi.email: "hard_bounce"}


def test_a_bounce_for_an_erased_reader_changes_nothing(db: Database, settings: Settings) -> None:
    nino, *_ = readers(db, settings)
    assert erase(db, nino.subscriber_id)
    handled = handle_message(
        db, settings, dsn(nino.return_path, nino.email), nino.return_path, "pipe"
    )
    assert handled.changes == "nothing: the reader was erased"
    assert suppressed(db) == {} and _history(db) == 0


def _unsubscribe_mail(reader_unsubscribe: str, sender: str, *extra: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {reader_unsubscribe}\r\nSubject: unsubscribe\r\n"
        + "".join(f"{line}\r\n" for line in extra)
        + "\r\nunsubscribe\r\n"
    ).encode()


def test_a_stranger_mailing_the_unsubscribe_address_ends_that_subscription_only(
    db: Database, settings: Settings
) -> None:
    nino, giorgi, *_ = readers(db, settings)
    raw = _unsubscribe_mail(nino.unsubscribe, "someone.else@example.org")
    handled = handle_message(db, settings, raw, nino.unsubscribe, "pipe")
    assert handled.meaning == InboundMeaning.unsubscribe
    assert statuses(db, nino.email) == {"daily": GONE, "weekly": ACTIVE}
    assert statuses(db, giorgi.email) == {"daily": ACTIVE, "weekly": ACTIVE}
    assert suppressed(db) == {}


def test_an_automatic_unsubscribe_mail_still_unsubscribes(db: Database, settings: Settings) -> None:
    """A mail client's unsubscribe button sends its mail itself, and may mark it
    Auto-Submitted (RFC 3834: it is automatic). Only a List-Unsubscribe mailto leads to a u-
    address (an out-of-office answers the return path or From, never it): losing the request
    would keep mailing someone who asked to stop."""
    nino, *_ = readers(db, settings)
    raw = _unsubscribe_mail(nino.unsubscribe, nino.email, "Auto-Submitted: auto-generated")
    handled = handle_message(db, settings, raw, nino.unsubscribe, "pipe")
    assert handled.meaning == InboundMeaning.unsubscribe, handled
    assert statuses(db, nino.email) == {"daily": GONE, "weekly": ACTIVE}


def test_two_bounces_for_one_reader_at_once_score_one_point_and_one_suppression(
    db: Database, settings: Settings
) -> None:
    """Two listeners' threads take a reader's bounces at the same moment (an edition's and a
    confirmation mail's): one point for the day, one suppression, one history row each."""
    nino, giorgi, *_ = readers(db, settings)
    soft = sample("mailbox_full_422", RETURN_PATH=nino.return_path, READER=nino.email)
    notice = tagged_address(settings.secret, Role.notice, nino.subscription_id, DOMAIN)
    soft_too = sample("mailbox_full_422", RETURN_PATH=notice, READER=nino.email)
    hard = dsn(giorgi.return_path, giorgi.email)
    notice_g = tagged_address(settings.secret, Role.notice, giorgi.subscription_id, DOMAIN)
    hard_too = dsn(notice_g, giorgi.email)
    jobs = [(soft, nino.return_path), (soft_too, notice), (hard, giorgi.return_path)]
    jobs.append((hard_too, notice_g))
    start = threading.Barrier(len(jobs))

    def one(job: tuple[bytes, str]) -> str:
        start.wait(timeout=10)
        return handle_message(db, settings, job[0], job[1], "lmtp").changes

    with ThreadPoolExecutor(len(jobs)) as pool:
        said = list(pool.map(one, jobs))
    assert _points(db) == {nino.email: 1}, said
    assert suppressed(db) == {giorgi.email: "hard_bounce"}, said
    with db.session() as session:
        kinds = sorted(
            (event.subscriber_id, event.kind.value)
            for event in session.scalars(
                select(SubscriberEvent).where(SubscriberEvent.kind.not_in(ARRIVAL))
            )
        )
    assert kinds == [(nino.subscriber_id, "bounce_point"), (giorgi.subscriber_id, "suppressed")]
