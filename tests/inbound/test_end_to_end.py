"""The way back, end to end: an edition sent by the real worker to a recording SMTP server;
what comes back to each reader's actual return path (or List-Unsubscribe address) fed to
``tidings inbound receive`` as the MTA would (a subprocess, the message on stdin); the next
edition skips exactly the readers it should."""

import asyncio
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tests.builders import articles, newsletter, subscribers, worker_env
from tests.inbound.people import statuses, suppressed
from tests.inbound.samples import sample
from tests.smtpserver import Caught, RecordingHandler, smtp_server
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Delivery, DeliveryFeedback, InboundMessage, SubscriptionStatus
from tidings.db.types import utcnow
from tidings.deliver.runner import run_worker
from tidings.inbound.service import handle_message
from tidings.mail.returnpath import read_address

ACTIVE = SubscriptionStatus.active
GONE = SubscriptionStatus.unsubscribed


def _receive(
    settings: Settings, raw: bytes, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``tidings inbound receive`` as a pipe transport runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tidings", "inbound", "receive", *args],
        input=raw.decode(),
        env=worker_env(settings, 1, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _send(db: Database, settings: Settings, smtp: RecordingHandler) -> dict[str, Caught]:
    """Compose a one-off edition of ``daily``, send it with the real worker, and answer what
    the server caught of it, by recipient."""
    before = len(smtp.caught)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    asyncio.run(run_worker(db, settings, drain=True, stop=asyncio.Event()))
    return {caught.rcpt_tos[0]: caught for caught in smtp.caught[before:]}


def _mailto(caught: Caught) -> str:
    found = re.search(r"<mailto:([^?>]+)", caught.message["List-Unsubscribe"])
    assert found is not None
    return found.group(1)


def _about(caught: Caught) -> dict[str, str]:
    return {
        "RETURN_PATH": caught.mail_from,
        "READER": caught.rcpt_tos[0],
        "MESSAGE_ID": caught.message["Message-ID"],
        "UNSUBSCRIBE": _mailto(caught),
    }


def test_what_comes_back_changes_the_next_edition(db: Database, settings: Settings) -> None:
    newsletter(db, "daily")
    newsletter(db, "weekly")
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    gone, full, angry, leaving, forged, away = subscribers(db, "daily", 6)
    subscribers(db, "weekly", 6)
    with smtp_server() as (smtp, port):
        live = settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{port}", "allow_insecure_links": True}
        )
        first = _send(db, live, smtp)
        assert len(first) == 6
        # Each delivery went out with its own signed return path, naming its delivery.
        with db.session() as session:
            ids = dict(session.execute(select(Delivery.id, Delivery.message_id)).all())
        for caught in first.values():
            tagged = read_address(settings.secret, caught.mail_from)
            assert tagged is not None and ids[tagged.ident] == caught.message["Message-ID"]

        # 5.1.1 to the reader's actual return path: suppressed.
        done = _receive(
            settings, sample("postfix_511", **_about(first[gone])), "--recipient",
            first[gone].mail_from,
        )  # fmt: skip
        assert (done.returncode, done.stdout.strip()) == (
            0,
            f"hard_bounce: suppressed {gone} (hard bounce)",
        )
        # 4.2.2: a point, not suppressed.
        done = _receive(settings, sample("mailbox_full_422", **_about(first[full])))
        assert (done.returncode, done.stdout.strip()) == (
            0,
            f"soft_bounce: bounce point 1 of 5 for {full}",
        )
        # An abuse report from a feedback loop, to an unsigned address: found by what it quotes.
        arf = sample("yahoo_arf", RECIPIENT="fbl@messenger.example.ge", **_about(first[angry]))
        done = _receive(settings, arf)
        assert done.returncode == 0 and done.stdout.startswith("complaint: "), done
        # A reader's mail to their List-Unsubscribe address (recipient from Delivered-To).
        request = sample("please_unsubscribe", READER=leaving, RECIPIENT=_mailto(first[leaving]))
        done = _receive(settings, request)
        assert done.stdout.strip() == f"unsubscribe: unsubscribed {leaving} from daily"
        # A bounce to an altered return path: nothing.
        genuine = first[forged].mail_from
        local, domain = genuine.split("@")
        altered = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
        bounce = sample("postfix_511", **{**_about(first[forged]), "RETURN_PATH": altered})
        done = _receive(settings, bounce, "--recipient", altered)
        assert done.returncode == 0 and done.stdout.startswith("ignored: nothing"), done
        # An out-of-office to the List-Unsubscribe address: nothing.
        ooo = sample("out_of_office", READER=away, RECIPIENT=_mailto(first[away]))
        done = _receive(settings, ooo)
        assert done.returncode == 0 and done.stdout.startswith("auto_reply: nothing"), done

        assert suppressed(db) == {gone: "hard_bounce", angry: "complaint"}
        assert statuses(db, angry) == {"daily": GONE, "weekly": GONE}
        assert statuses(db, leaving) == {"daily": GONE, "weekly": ACTIVE}
        for reader in (gone, full, forged, away):
            assert statuses(db, reader) == {"daily": ACTIVE, "weekly": ACTIVE}
        with db.session() as session:
            feedback = dict(session.execute(select(Delivery.id, Delivery.feedback)).all())
            meanings = list(
                session.scalars(select(InboundMessage.meaning).order_by(InboundMessage.id))
            )
        tag = {reader: read_address(settings.secret, first[reader].mail_from) for reader in first}
        assert {reader: feedback[t.ident] for reader, t in tag.items() if t} == {
            gone: DeliveryFeedback.bounced,
            full: DeliveryFeedback.bounced,
            angry: DeliveryFeedback.complained,
            leaving: None,
            forged: None,
            away: None,
        }
        assert [m.value for m in meanings] == [
            "hard_bounce", "soft_bounce", "complaint", "unsubscribe", "ignored", "auto_reply",
        ]  # fmt: skip

        # The next edition skips the bounced, the complaining and the leaving reader.
        second = _send(db, live, smtp)
        assert sorted(second) == sorted([full, forged, away])

        # The same bounce to the genuine path does change things (the forged one could).
        bounce = sample("postfix_511", **_about(second[forged]))
        assert _receive(settings, bounce).stdout.startswith("hard_bounce: suppressed")
        # The next edition's soft bounce a day later is the second point: with a threshold of
        # two it suppresses (one delivery comes back once, so each point is another mail's).
        strict = settings.model_copy(update={"bounce_score_threshold": 2})
        raw = sample("mailbox_full_422", **_about(second[full]))
        handled = handle_message(db, strict, raw, None, "pipe", utcnow() + timedelta(days=1))
        assert handled.changes.endswith("suppressed (soft bounces)")
        third = _send(db, live, smtp)
        assert sorted(third) == [away]


def test_the_database_away_is_exit_75(settings: Settings) -> None:
    """The MTA keeps the message and tries again: one line, no traceback."""
    away = "postgresql+psycopg://postgres@127.0.0.1:1/tidings"
    done = _receive(settings, sample("postfix_511"), TIDINGS_DATABASE_URL=away)
    assert done.returncode == 75, done
    assert done.stdout == ""
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith("error: the database cannot be reached")


def test_a_bad_setting_is_exit_75_too(settings: Settings) -> None:
    """A setting gone wrong must not bounce the message for good: the MTA keeps it."""
    done = _receive(settings, sample("postfix_511"), TIDINGS_DATABASE_URL="mysql://x")
    assert done.returncode == 75, done
    assert "TIDINGS_DATABASE_URL" in done.stderr and "Traceback" not in done.stderr


def test_a_message_over_the_limit_is_ignored(db: Database, settings: Settings) -> None:
    huge = sample("please_unsubscribe") + b"x" * (200 * 1024)
    done = _receive(settings, huge, TIDINGS_INBOUND_MAX_BYTES=str(64 * 1024))
    assert (done.returncode, done.stdout.strip()) == (
        0,
        "ignored: nothing: over the 65536-byte limit",
    )
    with db.session() as session:
        row = session.scalars(select(InboundMessage)).one()
    assert row.size == 64 * 1024 + 1 and row.truncated
