"""Console users: create with a one-time password, sign in (argon2), change the password,
end their sessions. What admins do to other users is in :mod:`tidings.access.people`."""

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tidings.access.passwords import (
    DUMMY_HASH,
    check_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from tidings.db.engine import Database
from tidings.db.models import User, UserRole
from tidings.db.types import utcnow
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.mail.addresses import normalise_email

#: What each role may do, weakest first; a role may do everything of the ones before it.
ROLE_ORDER = (UserRole.viewer, UserRole.editor, UserRole.admin)
DISABLED = "This account is disabled; an admin can enable it again."


def role_allows(role: UserRole, needed: UserRole) -> bool:
    return ROLE_ORDER.index(role) >= ROLE_ORDER.index(needed)


@dataclass(frozen=True)
class Account:
    """A user as the web layer sees it (never the password hash itself)."""

    id: int
    email: str
    role: UserRole
    must_change_password: bool
    #: Carried by every session cookie; bumping it ends all of the user's sessions at once.
    session_generation: int
    #: A disabled user cannot sign in, and no session of theirs passes the check.
    disabled: bool = False


def account_of(user: User) -> Account:
    return Account(
        user.id,
        user.email,
        user.role,
        user.must_change_password,
        user.session_generation,
        user.disabled_at is not None,
    )


def one_time_password() -> str:
    """A random password to hand over once (the user must change it at first sign-in)."""
    return secrets.token_urlsafe(12)


def create_user(db: Database, email: str, role: UserRole) -> tuple[Account, str]:
    """A new user and the one-time password to hand them (changed at first sign-in)."""
    address = normalise_email(email)
    password = one_time_password()
    user = User(
        email=address, password_hash=hash_password(password), role=role, must_change_password=True
    )
    with db.session() as session:
        session.add(user)
        try:
            session.commit()
        except IntegrityError:
            raise Conflict(f"A user {address} exists already.") from None
        return account_of(user), password


def authenticate(db: Database, email: str, password: str) -> Account | None:
    """The account if the password matches; the same work is done for unknown addresses.

    A disabled account is refused with :data:`DISABLED` (a Conflict), and only after its
    right password: a guesser learns nothing from it that a wrong password would not say.
    """
    address = email.strip().lower()
    with db.session() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == address))
        if not verify_password(user.password_hash if user else DUMMY_HASH, password):
            return None
        if user is None:
            return None
        if user.disabled_at is not None:
            raise Conflict(DISABLED)
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        user.last_login_at = utcnow()
        session.commit()
        return account_of(user)


def account_by_id(db: Database, user_id: int) -> Account | None:
    with db.session() as session:
        user = session.get(User, user_id)
        return account_of(user) if user else None


def change_password(db: Database, user_id: int, current: str, new: str) -> Account:
    """Set a new password after checking the current one; every session ends."""
    if new == current:
        raise InvalidInput("The new password must differ from the current one.")
    with db.session() as session:
        user = session.get_one(User, user_id)
        if not verify_password(user.password_hash, current):
            raise InvalidInput("The current password is not right.")
        check_password(new, email=user.email)
        return set_password(session, user, new, must_change=False)


def set_password(session: Session, user: User, password: str, *, must_change: bool) -> Account:
    """Store ``password`` (already checked, or one-time) and end every session of the user;
    commits."""
    user.password_hash = hash_password(password)
    user.must_change_password = must_change
    # In SQL, not Python: a sign-out racing this change is not lost.
    user.session_generation = User.session_generation + 1
    session.commit()
    return account_of(user)


def end_sessions(db: Database, user_id: int) -> None:
    """Sign the user out everywhere: every cookie issued so far stops working at once."""
    with db.session() as session:
        session.execute(
            update(User)
            .where(User.id == user_id)
            .values(session_generation=User.session_generation + 1)
        )
        session.commit()


def user_id_by_email(db: Database, email: str) -> int:
    """The id of the user signing in with ``email``."""
    with db.session() as session:
        found = session.scalar(
            select(User.id).where(func.lower(User.email) == email.strip().lower())
        )
    if found is None:
        raise NotFound(f"There is no user {email.strip()!r}.")
    return found


def list_users(db: Database) -> list[Account]:
    with db.session() as session:
        return [account_of(u) for u in session.scalars(select(User).order_by(User.email))]
