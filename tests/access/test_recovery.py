"""Password links on SQLite and PostgreSQL: a reset link works once, for 30 minutes, only as
a reset, only for an enabled user; the mail goes to a real SMTP server, and only to users."""

import asyncio
import time
from collections.abc import Iterator

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.builders import newsletter
from tests.smtpserver import RecordingHandler, smtp_server
from tidings.access.accounts import Account, authenticate, change_password, create_user
from tidings.access.consolemail import invite, send_reset
from tidings.access.people import disable_user
from tidings.access.recovery import (
    LINK_GONE,
    LinkKind,
    choose_password,
    link_holder,
    link_token,
    reset_link_for,
)
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import User, UserRole
from tidings.errors import InvalidInput

OLD = "correct-horse-battery-staple"
NEW = "a-fresh-and-private-phrase"


def _editor(db: Database) -> Account:
    account, one_time = create_user(db, "ed@example.ge", UserRole.editor)
    return change_password(db, account.id, one_time, OLD)


def _token(db: Database, settings: Settings, kind: LinkKind, user_id: int) -> str:
    with db.session() as session:
        return link_token(settings.secret, kind, session.get_one(User, user_id))


def test_a_reset_link_works_once(db: Database, settings: Settings) -> None:
    editor = _editor(db)
    token = _token(db, settings, LinkKind.reset, editor.id)
    assert link_holder(db, settings.secret, LinkKind.reset, token) == "ed@example.ge"
    # Not as an invitation, not tampered with.
    assert link_holder(db, settings.secret, LinkKind.invite, token) is None
    assert link_holder(db, settings.secret, LinkKind.reset, token[:-2] + "xx") is None
    assert link_holder(db, settings.secret, LinkKind.reset, "x" * 5000) is None
    # A mistake leaves the link working.
    for new, repeat, reason in [
        (NEW, NEW + "!", "differ"),
        ("aaaaaaaaaaaa", "aaaaaaaaaaaa", "too easy to guess"),
    ]:
        with pytest.raises(InvalidInput, match=reason):
            choose_password(db, settings.secret, LinkKind.reset, token, new, repeat)
    changed = choose_password(db, settings.secret, LinkKind.reset, token, NEW, NEW)
    assert changed.session_generation == editor.session_generation + 1
    assert authenticate(db, "ed@example.ge", NEW) == changed
    assert authenticate(db, "ed@example.ge", OLD) is None
    # Used: the password it was signed with is gone.
    assert link_holder(db, settings.secret, LinkKind.reset, token) is None
    with pytest.raises(InvalidInput) as gone:
        choose_password(db, settings.secret, LinkKind.reset, token, OLD, OLD)
    assert str(gone.value) == LINK_GONE


def test_signing_out_everywhere_or_disabling_ends_a_link(db: Database, settings: Settings) -> None:
    create_user(db, "admin@example.ge", UserRole.admin)
    editor = _editor(db)
    token = _token(db, settings, LinkKind.reset, editor.id)
    change_password(db, editor.id, OLD, NEW)
    assert link_holder(db, settings.secret, LinkKind.reset, token) is None
    token = _token(db, settings, LinkKind.reset, editor.id)
    disable_user(db, editor.id)
    assert link_holder(db, settings.secret, LinkKind.reset, token) is None
    assert reset_link_for(db, settings.secret, "ed@example.ge") is None


class _Then(TimestampSigner):
    """A signer whose clock runs ``ago`` seconds behind."""

    ago = 0

    def get_timestamp(self) -> int:
        return int(time.time()) - self.ago


@pytest.mark.parametrize(("minutes", "works"), [(29, True), (31, False)])
def test_a_reset_link_lasts_thirty_minutes(
    db: Database, settings: Settings, minutes: int, works: bool
) -> None:
    editor = _editor(db)
    fresh = _token(db, settings, LinkKind.reset, editor.id)
    payload = URLSafeTimedSerializer(settings.secret, salt="tidings.console.reset").loads(fresh)
    _Then.ago = minutes * 60
    old = URLSafeTimedSerializer(settings.secret, salt="tidings.console.reset", signer=_Then).dumps(
        payload
    )
    holder = link_holder(db, settings.secret, LinkKind.reset, old)
    assert holder == ("ed@example.ge" if works else None)


@pytest.fixture
def mail(settings: Settings) -> Iterator[tuple[RecordingHandler, Settings]]:
    with smtp_server() as (handler, port):
        yield handler, settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})


def test_reset_mail_goes_to_users_only_and_a_few_times_an_hour(
    db: Database, mail: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = mail
    newsletter(db)
    _editor(db)
    for address in ["nobody@example.ge", "not an address", "", " ED@example.ge "]:
        asyncio.run(send_reset(db, settings, address))
    assert handler.recipients() == ["ed@example.ge"]
    message = handler.caught[0].message
    assert message["To"] == "ed@example.ge"
    assert message["From"] == "Tidings <digest@messenger.example.ge>"  # the first newsletter's
    assert message["Subject"] == "Choose a new Tidings password"
    text = message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "within 30 minutes" in body
    link = next(line for line in body.splitlines() if "/admin/reset/" in line).strip()
    token = link.rsplit("/", 1)[1]
    assert link.startswith(settings.base_url)
    assert link_holder(db, settings.secret, LinkKind.reset, token) == "ed@example.ge"
    for _ in range(5):
        asyncio.run(send_reset(db, settings, "ed@example.ge"))
    assert len(handler.recipients()) == 3  # RESET_MAILS: three an hour


def test_an_invitation_links_to_choosing_a_password(
    db: Database, mail: tuple[RecordingHandler, Settings]
) -> None:
    handler, settings = mail
    account, _ = create_user(db, "new@example.ge", UserRole.viewer)
    assert asyncio.run(invite(db, settings, account))
    message = handler.caught[0].message
    html = message.get_body(("html",))
    assert html is not None and "Choose your password and sign in" in html.get_content()
    assert "noreply@127.0.0.1" in message["From"]  # no newsletter yet: the console's host
    body = message.get_body(("plain",))
    assert body is not None
    token = body.get_content().split("/admin/welcome/", 1)[1].split()[0]
    chosen = choose_password(db, settings.secret, LinkKind.invite, token, NEW, NEW)
    assert not chosen.must_change_password
    assert authenticate(db, "new@example.ge", NEW) == chosen
    # A server that refuses says so (the console then shows the one-time password).
    handler.behaviour.data_reply = "550 5.7.1 no"
    assert not asyncio.run(invite(db, settings, chosen))
