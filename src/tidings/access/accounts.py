"""Console users: create with a one-time password, sign in (argon2), change the password,
end their sessions, remove them."""

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from tidings.db.dialect import row_count
from tidings.db.engine import Database
from tidings.db.models import User, UserRole
from tidings.db.types import utcnow
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.mail.addresses import normalise_email

MIN_PASSWORD = 12
_HASHER = PasswordHasher()
#: Verified against when the address is unknown, so a miss costs as much as a hit.
_DUMMY_HASH = _HASHER.hash("tidings-no-such-user")

#: What each role may do, weakest first; a role may do everything of the ones before it.
ROLE_ORDER = (UserRole.viewer, UserRole.editor, UserRole.admin)


def role_allows(role: UserRole, needed: UserRole) -> bool:
    return ROLE_ORDER.index(role) >= ROLE_ORDER.index(needed)


@dataclass(frozen=True)
class Account:
    """A signed-in user as the web layer sees it (never the password hash itself)."""

    id: int
    email: str
    role: UserRole
    must_change_password: bool
    #: Carried by every session cookie; bumping it ends all of the user's sessions at once.
    session_generation: int


def _account(user: User) -> Account:
    return Account(
        user.id, user.email, user.role, user.must_change_password, user.session_generation
    )


def create_user(db: Database, email: str, role: UserRole) -> tuple[Account, str]:
    """A new user and the one-time password to hand them (changed at first sign-in)."""
    address = normalise_email(email)
    password = secrets.token_urlsafe(12)
    user = User(
        email=address, password_hash=_HASHER.hash(password), role=role, must_change_password=True
    )
    with db.session() as session:
        session.add(user)
        try:
            session.commit()
        except IntegrityError:
            raise Conflict(f"a user {address} exists already") from None
        return _account(user), password


def authenticate(db: Database, email: str, password: str) -> Account | None:
    """The account if the password matches; the same work is done for unknown addresses."""
    address = email.strip().lower()
    with db.session() as session:
        user = session.scalar(select(User).where(func.lower(User.email) == address))
        try:
            _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if _HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = _HASHER.hash(password)
        user.last_login_at = utcnow()
        session.commit()
        return _account(user)


def account_by_id(db: Database, user_id: int) -> Account | None:
    with db.session() as session:
        user = session.get(User, user_id)
        return _account(user) if user else None


def change_password(db: Database, user_id: int, current: str, new: str) -> Account:
    """Set a new password after checking the current one."""
    if len(new) < MIN_PASSWORD:
        raise InvalidInput(f"the new password needs at least {MIN_PASSWORD} characters")
    if new == current:
        raise InvalidInput("the new password must differ from the current one")
    with db.session() as session:
        user = session.get_one(User, user_id)
        try:
            _HASHER.verify(user.password_hash, current)
        except (VerificationError, InvalidHashError):
            raise InvalidInput("the current password is not right") from None
        user.password_hash = _HASHER.hash(new)
        user.must_change_password = False
        # In SQL, not Python: a sign-out racing this change is not lost.
        user.session_generation = User.session_generation + 1
        session.commit()
        return _account(user)


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
        raise NotFound(f"no user {email.strip()}")
    return found


def remove_user(db: Database, user_id: int) -> str:
    """Remove a console user (their sessions end with them); the address removed.

    The last admin cannot be removed. Check and removal are one conditional DELETE (atomic on
    SQLite's single writer); on PostgreSQL the admin rows are locked first, so two admins
    removing each other at once cannot both count two admins and leave nobody in charge.
    """
    other_admins = aliased(User)
    with db.session() as session:
        session.execute(select(User.id).where(User.role == UserRole.admin).with_for_update())
        email = session.scalar(select(User.email).where(User.id == user_id))
        if email is None:
            raise NotFound(f"no user {user_id}")
        others = (
            select(func.count())
            .select_from(other_admins)
            .where(other_admins.role == UserRole.admin, other_admins.id != user_id)
            .scalar_subquery()
        )
        removed = row_count(
            session.execute(
                delete(User).where(User.id == user_id, or_(User.role != UserRole.admin, others > 0))
            )
        )
        session.commit()
    if not removed:
        raise Conflict(f"{email} is the last admin and cannot be removed")
    return str(email)


def list_users(db: Database) -> list[Account]:
    with db.session() as session:
        return [_account(u) for u in session.scalars(select(User).order_by(User.email))]
