"""Signed links that let a console user choose a password: "Forgot your password?" (30
minutes) and the invitation of a new user (three days).

Single use without a table: a link signs the user id together with a fingerprint of the
current password hash and session generation (:func:`~tidings.access.passwords.fingerprint`),
so it dies as soon as the password changes (by this link or any other way) or the user signs
out everywhere. Each kind has its own salt: a reset link is never an invitation.
"""

import enum
import hmac
from datetime import timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.access.accounts import Account, set_password
from tidings.access.passwords import MAX_PASSWORD, check_password, fingerprint
from tidings.access.ratelimit import RateLimit
from tidings.db.engine import Database
from tidings.db.models import User
from tidings.errors import InvalidInput

#: Requests for a reset link per client address, like sign-ups.
RESET_REQUESTS = RateLimit("password-reset", 10, timedelta(minutes=10))
#: Reset mails per user: a stranger cannot fill someone's inbox with them.
RESET_MAILS = RateLimit("password-reset-mail", 3, timedelta(hours=1))
LINK_GONE = (
    "This link has expired or was used already. Ask for a new one with "
    "“Forgot your password?” on the sign-in page."
)


class LinkKind(enum.StrEnum):
    reset = "reset"
    invite = "invite"


LIFETIMES = {LinkKind.reset: timedelta(minutes=30), LinkKind.invite: timedelta(days=3)}
#: Far longer than any real token: a longer one is refused before it is parsed.
_MAX_TOKEN = 512


def _serializer(secret: str, kind: LinkKind) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=f"tidings.console.{kind.value}")


def link_token(secret: str, kind: LinkKind, user: User) -> str:
    """The token of a ``kind`` link for ``user`` as they are now."""
    mark = fingerprint(secret, user.password_hash, user.session_generation)
    return str(_serializer(secret, kind).dumps([user.id, mark]))


def link_path(kind: LinkKind, token: str) -> str:
    """Where a link leads: the same page for both kinds, which only differs in wording."""
    return f"/admin/reset/{token}" if kind == LinkKind.reset else f"/admin/welcome/{token}"


def _user_of(session: Session, secret: str, kind: LinkKind, token: str) -> User | None:
    """The enabled user a valid, unexpired, unused link names; None for anything else."""
    if len(token) > _MAX_TOKEN:
        return None
    max_age = int(LIFETIMES[kind].total_seconds())
    try:
        value = _serializer(secret, kind).loads(token, max_age=max_age)
    except BadSignature:
        return None
    if not (
        isinstance(value, list)
        and len(value) == 2
        and type(value[0]) is int
        and isinstance(value[1], str)
    ):
        return None
    user = session.get(User, value[0])
    if user is None or user.disabled_at is not None:
        return None
    mark = fingerprint(secret, user.password_hash, user.session_generation)
    return user if hmac.compare_digest(mark, value[1]) else None


def link_holder(db: Database, secret: str, kind: LinkKind, token: str) -> str | None:
    """The address a link is for (shown on its page), or None when it no longer works."""
    with db.session() as session:
        user = _user_of(session, secret, kind, token)
        return user.email if user else None


def choose_password(
    db: Database, secret: str, kind: LinkKind, token: str, new: str, repeat: str
) -> Account:
    """Set the password a link's holder chose (typed twice) and end their other sessions;
    the link dies with the old password. InvalidInput says what is wrong."""
    if len(new) > MAX_PASSWORD or new != repeat:
        raise InvalidInput("The two passwords differ; type the same one twice.")
    with db.session() as session:
        user = _user_of(session, secret, kind, token)
        if user is None:
            raise InvalidInput(LINK_GONE)
        check_password(new, email=user.email)
        return set_password(session, user, new, must_change=False)


def reset_link_for(db: Database, secret: str, email: str) -> tuple[str, str] | None:
    """The address and link token of a reset for the enabled user signing in with
    ``email``; None for an unknown or disabled address (the caller says the same either
    way)."""
    address = email.strip().lower()
    if not address or len(address) > 320:
        return None
    with db.session() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == address))
        if user is None or user.disabled_at is not None:
            return None
        return user.email, link_token(secret, LinkKind.reset, user)


def invitation_link_for(db: Database, secret: str, user_id: int) -> tuple[str, str] | None:
    """The address and invitation token of a user (None if they are gone)."""
    with db.session() as session:
        user = session.get(User, user_id)
        if user is None:
            return None
        return user.email, link_token(secret, LinkKind.invite, user)
