"""inbound: a Message-ID leads to its delivery only as the delivery of the reader the event or
report names, found through the (edition, subscriber) index, never by reading the edition:
through a provider's webhook event and an ARF complaint report, on SQLite and PostgreSQL, and
on PostgreSQL the plan of the lookup itself."""

import pytest
from sqlalchemy import select, text, update

from tests.inbound.people import DOMAIN, Reader, readers, suppressed
from tests.inbound.samples import sample
from tests.plans import Statement, crowd, nodes, plan_of, statements_of
from tidings.audience.subscribers import erase
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, InboundMeaning, InboundMessage, Newsletter
from tidings.inbound.events import Handled, ProviderEvent
from tidings.inbound.service import handle_event, handle_message
from tidings.mail.status import BounceKind

ABUSE = f"abuse@{DOMAIN}"


def _bounce(reader_email: str, message_id: str | None, event_id: str = "ev") -> ProviderEvent:
    return ProviderEvent(
        provider="ses",
        event_id=event_id,
        kind="bounce",
        email=reader_email,
        message_id=message_id,
        bounce_kind=BounceKind.hard,
        status="5.1.1",
        diagnostic="550 5.1.1 no such user",
        raw=b'{"eventType": "Bounce"}',
    )


def _complaint(
    reader: Reader, message_id: str, *, named: str | None = None, unsubscribe: str | None = None
) -> bytes:
    """An ARF report to abuse@ quoting ``message_id``, no signed return path, the signed
    List-Unsubscribe address ``unsubscribe`` (else none of ours), naming ``named`` as the
    recipient (else the reader; "" for no recipient at all)."""
    values = {
        "RECIPIENT": ABUSE,
        "RETURN_PATH": "someone@elsewhere.example",
        "UNSUBSCRIBE": unsubscribe or "unsubscribe@elsewhere.example",
        "READER": reader.email if named is None else named,
        "MESSAGE_ID": message_id,
    }
    return sample("yahoo_arf", **values)


def _row(db: Database, handled: Handled) -> InboundMessage:
    with db.session() as session:
        return session.get_one(InboundMessage, handled.inbound_id)


def _altered(message_id: str) -> str:
    local, domain = message_id.strip("<>").split("@")
    return f"<{local[:-1] + ('0' if local[-1] != '0' else '1')}@{domain}>"


def _other_edition(message_id: str) -> str:
    edition = message_id.split(".")[1]
    return message_id.replace(f".{edition}.", f".{int(edition) + 1}.", 1)


@pytest.mark.parametrize("form", ["as sent", "without brackets"])
def test_a_webhook_event_finds_its_readers_delivery(
    db: Database, settings: Settings, form: str
) -> None:
    nino, *_ = readers(db, settings)
    message_id = nino.message_id if form == "as sent" else nino.message_id.strip("<>")
    handled = handle_event(db, settings, _bounce(nino.email.upper(), message_id))
    assert handled.meaning == InboundMeaning.hard_bounce
    row = _row(db, handled)
    assert (row.delivery_id, row.subscriber_id) == (nino.delivery_id, nino.subscriber_id)
    assert suppressed(db) == {nino.email: "hard_bounce"}


@pytest.mark.parametrize("which", ["altered", "another edition's", "another reader's", "none"])
def test_a_webhook_event_with_a_message_id_not_its_readers_falls_back_to_its_address(
    db: Database, settings: Settings, which: str
) -> None:
    nino, giorgi, *_ = readers(db, settings)
    message_id = {
        "altered": _altered(nino.message_id),
        "another edition's": _other_edition(nino.message_id),
        "another reader's": giorgi.message_id,
        "none": None,
    }[which]
    handled = handle_event(db, settings, _bounce(nino.email, message_id))
    assert handled.meaning == InboundMeaning.hard_bounce
    row = _row(db, handled)
    assert (row.delivery_id, row.subscriber_id) == (None, nino.subscriber_id)
    assert suppressed(db) == {nino.email: "hard_bounce"}


def test_a_webhook_event_of_the_earlier_message_id_form(db: Database, settings: Settings) -> None:
    """Deliveries sent before the upgrade keep ``<tidings.E.R.S@domain>``: still found."""
    nino, *_ = readers(db, settings)
    earlier = _earlier_form(db, nino)
    handled = handle_event(db, settings, _bounce(nino.email, earlier))
    assert _row(db, handled).delivery_id == nino.delivery_id


def test_a_webhook_event_about_an_erased_reader_names_nobody(
    db: Database, settings: Settings
) -> None:
    nino, *_ = readers(db, settings)
    assert erase(db, nino.subscriber_id)
    handled = handle_event(db, settings, _bounce(nino.email, nino.message_id))
    assert handled.meaning == InboundMeaning.ignored
    assert (_row(db, handled).delivery_id, _row(db, handled).subscriber_id) == (None, None)


def test_a_report_naming_its_reader_finds_the_delivery(db: Database, settings: Settings) -> None:
    nino, *_ = readers(db, settings)
    raw = _complaint(nino, nino.message_id, named=nino.email.upper())
    handled = handle_message(db, settings, raw, ABUSE, "imap")
    assert handled.meaning == InboundMeaning.complaint
    row = _row(db, handled)
    assert (row.delivery_id, row.subscriber_id) == (nino.delivery_id, nino.subscriber_id)
    assert suppressed(db) == {nino.email: "complaint"}


def test_a_report_of_the_earlier_message_id_form(db: Database, settings: Settings) -> None:
    nino, *_ = readers(db, settings)
    earlier = _earlier_form(db, nino)
    handled = handle_message(db, settings, _complaint(nino, earlier), ABUSE, "imap")
    assert _row(db, handled).delivery_id == nino.delivery_id


@pytest.mark.parametrize(
    "which", ["altered", "another edition's", "another reader's", "no recipient named"]
)
def test_a_report_on_its_message_id_alone_is_not_trusted(
    db: Database, settings: Settings, which: str
) -> None:
    nino, giorgi, *_ = readers(db, settings)
    raw = {
        "altered": _complaint(nino, _altered(nino.message_id)),
        "another edition's": _complaint(nino, _other_edition(nino.message_id)),
        "another reader's": _complaint(nino, giorgi.message_id),
        "no recipient named": _complaint(nino, nino.message_id, named=""),
    }[which]
    handled = handle_message(db, settings, raw, ABUSE, "imap")
    assert handled.meaning == InboundMeaning.ignored
    assert suppressed(db) == {}


def test_a_report_about_an_erased_reader_names_nobody(db: Database, settings: Settings) -> None:
    nino, *_ = readers(db, settings)
    assert erase(db, nino.subscriber_id)
    handled = handle_message(db, settings, _complaint(nino, nino.message_id), ABUSE, "imap")
    assert handled.meaning == InboundMeaning.ignored


@pytest.mark.parametrize("which", ["its own", "another reader's", "altered"])
def test_a_signed_subscription_takes_the_delivery_only_of_its_own_reader(
    db: Database, settings: Settings, which: str
) -> None:
    """A report quoting the signed List-Unsubscribe address names the subscription; the
    Message-ID adds the delivery only when it is that subscriber's (whoever the report
    names as the recipient)."""
    nino, giorgi, *_ = readers(db, settings)
    message_id = {
        "its own": nino.message_id,
        "another reader's": giorgi.message_id,
        "altered": _altered(nino.message_id),
    }[which]
    raw = _complaint(nino, message_id, named=giorgi.email, unsubscribe=nino.unsubscribe)
    handled = handle_message(db, settings, raw, ABUSE, "imap")
    assert handled.meaning == InboundMeaning.complaint
    row = _row(db, handled)
    delivery = nino.delivery_id if which == "its own" else None
    assert (row.delivery_id, row.subscriber_id) == (delivery, nino.subscriber_id)
    assert suppressed(db) == {nino.email: "complaint"}


def _earlier_form(db: Database, reader: Reader) -> str:
    """Gives the reader's delivery a Message-ID of the form earlier versions wrote."""
    edition = reader.message_id.split(".")[1]
    earlier = f"<tidings.{edition}.5f3a9c.{reader.subscriber_id}@{DOMAIN}>"
    with db.session() as session:
        session.execute(
            update(Delivery).where(Delivery.id == reader.delivery_id).values(message_id=earlier)
        )
        session.commit()
    return earlier


# The plan, on PostgreSQL: editions of many readers, each reader with a delivery of each.

#: Readers added to ``daily``, and editions sent to them all: a reader's deliveries are
#: several, an edition's many, as in production (where both grow with time).
CROWD, EDITIONS = 5_000, 6


def _crowd(db: Database, settings: Settings, reader: Reader) -> tuple[int, str]:
    """``CROWD`` more readers of ``daily``, ``EDITIONS`` more editions sent to everyone, and
    fresh statistics; the reader's delivery of the last edition (its id and Message-ID)."""
    with db.session() as session:
        daily = session.scalars(select(Newsletter.id).where(Newsletter.slug == "daily")).one()
    crowd(db, daily, CROWD)
    for _ in range(EDITIONS):
        send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    with db.engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    with db.session() as session:
        latest = session.execute(
            select(Delivery.id, Delivery.message_id)
            .where(Delivery.subscriber_id == reader.subscriber_id)
            .order_by(Delivery.edition_id.desc())
            .limit(1)
        ).one()
    return latest.id, latest.message_id


def _assert_by_edition_and_reader(db: Database, lookups: list[Statement]) -> None:
    assert lookups, "no lookup of a delivery by its Message-ID ran"
    for sent in lookups:
        (scan,) = [n for n in nodes(plan_of(db, sent)) if n.get("Relation Name") == "deliveries"]
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), scan
        condition = scan.get("Index Cond", "")
        assert "edition_id" in condition and "subscriber_id" in condition, scan


@pytest.mark.parametrize("way", ["webhook event", "complaint report"])
def test_the_lookup_goes_through_the_edition_and_reader_index(
    db: Database, settings: Settings, way: str
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("reads the PostgreSQL planner's plan")
    nino, *_ = readers(db, settings)
    delivery_id, message_id = _crowd(db, settings, nino)

    def run() -> Handled:
        if way == "webhook event":
            return handle_event(db, settings, _bounce(nino.email, message_id))
        return handle_message(db, settings, _complaint(nino, message_id), ABUSE, "imap")

    lookups = [
        sent
        for sent in statements_of(db, run, "FROM deliveries")
        if "deliveries.message_id =" in sent[0]
    ]
    _assert_by_edition_and_reader(db, lookups)
    with db.session() as session:
        assert session.scalars(select(InboundMessage.delivery_id)).one() == delivery_id
