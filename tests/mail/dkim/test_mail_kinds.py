"""Every kind of mail leaves signed: an edition through the worker, a confirmation mail and a
proof, each caught by a real SMTP server and verified by dkimpy against the records keygen
printed, with RSA, with Ed25519, and with both (two signatures), on SQLite and PostgreSQL."""

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import dkim
import pytest

from tests.builders import articles, newsletter, subscribers
from tests.mail.dkim.published import dns_of, verified
from tests.smtpserver import Caught, RecordingHandler, smtp_server
from tidings.audience.signup import SignupForm, SignupQueue
from tidings.compose.oneoff import send_one_off
from tidings.compose.proofs import send_proofs
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DkimAlgorithm
from tidings.db.types import utcnow
from tidings.deliver.runner import run_worker
from tidings.mail.dkim.store import KeyView, add_key
from tidings.mail.returnpath import Role, read_address

DOMAIN = "messenger.example.ge"  # tests.builders.SENDER's domain
BOTH = [DkimAlgorithm.rsa, DkimAlgorithm.ed25519]


@pytest.fixture
def smtp(settings: Settings) -> Iterator[tuple[RecordingHandler, Settings]]:
    with smtp_server() as (handler, port):
        yield (
            handler,
            settings.model_copy(
                update={"smtp_url": f"smtp://127.0.0.1:{port}", "allow_insecure_links": True}
            ),
        )


def _keys(db: Database, settings: Settings, algorithms: list[DkimAlgorithm]) -> list[KeyView]:
    return [add_key(db, settings, DOMAIN, f"k{a.value}", a) for a in algorithms]


def _all_verify(caught: list[Caught], keys: list[KeyView]) -> None:
    assert caught
    for message in caught:
        assert verified(message.data, dns_of(keys)) == [True] * len(keys)
        assert dkim.verify(message.data, dnsfunc=dns_of(keys))


@pytest.mark.parametrize(
    "algorithms",
    [[DkimAlgorithm.rsa], [DkimAlgorithm.ed25519], BOTH],
    ids=["rsa", "ed25519", "both"],
)
def test_an_edition_through_the_worker_is_signed(
    db: Database, smtp: tuple[RecordingHandler, Settings], algorithms: list[DkimAlgorithm]
) -> None:
    handler, settings = smtp
    keys = _keys(db, settings, algorithms)
    newsletter(db)
    articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=3))
    readers = subscribers(db, "daily", 3)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    stats = asyncio.run(run_worker(db, settings, drain=True, stop=asyncio.Event()))
    assert stats.sent == 3 and sorted(handler.recipients()) == readers
    _all_verify(handler.caught, keys)
    altered = handler.caught[0].data.replace(b"Panjikidze", b"Panjikidzo", 1)
    assert altered != handler.caught[0].data
    assert verified(altered, dns_of(keys)) == [False] * len(keys)


def test_an_edition_of_a_domain_without_a_key_goes_unsigned(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    add_key(db, settings, "example.org", "other")
    newsletter(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=3))
    subscribers(db, "daily", 1)
    send_one_off(db, settings, "daily", OneOff(article_ids=[]))
    asyncio.run(run_worker(db, settings, drain=True, stop=asyncio.Event()))
    assert len(handler.caught) == 1
    assert b"DKIM-Signature" not in handler.caught[0].data


def test_a_confirmation_mail_is_signed_and_its_return_path_names_it(
    db: Database, smtp: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = smtp
    keys = _keys(db, settings, BOTH)
    newsletter(db)
    queue = SignupQueue(db, settings)

    async def sign_up() -> None:
        queue.submit(SignupForm("daily", "nino@example.ge", "Nino", None, "http://x/"), utcnow())
        await asyncio.sleep(0)
        await queue.close(grace=20)

    with ThreadPoolExecutor(1) as loop_thread:  # its own loop, whatever else runs here
        loop_thread.submit(asyncio.run, sign_up()).result()
    assert handler.recipients() == ["nino@example.ge"]
    _all_verify(handler.caught, keys)
    tagged = read_address(settings.secret, handler.caught[0].mail_from, DOMAIN)
    assert tagged is not None and tagged.role == Role.notice


def test_a_proof_is_signed(db: Database, smtp: tuple[RecordingHandler, Settings]) -> None:
    handler, settings = smtp
    keys = _keys(db, settings, BOTH)
    newsletter(db)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=3))
    results = asyncio.run(
        send_proofs(db, settings, "daily", OneOff(article_ids=[]), "ed@example.ge, b@example.ge")
    )
    assert [r.error for r in results] == [None, None]
    assert sorted(handler.recipients()) == ["b@example.ge", "ed@example.ge"]
    _all_verify(handler.caught, keys)
