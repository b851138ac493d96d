"""Console users: create with a one-time password, sign in (argon2), change the password."""

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from tidings.audience.addresses import normalise_email
from tidings.db.engine import Database
from tidings.db.models import User, UserRole
from tidings.db.types import utcnow
from tidings.errors import Conflict, InvalidInput

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
    fingerprint: str  # changes with the password, so old sessions end with it


def _account(user: User) -> Account:
    fingerprint = hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]
    return Account(user.id, user.email, user.role, user.must_change_password, fingerprint)


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
        session.commit()
        return _account(user)


def list_users(db: Database) -> list[Account]:
    with db.session() as session:
        return [_account(u) for u in session.scalars(select(User).order_by(User.email))]
