"""What an admin does to console users: change a role, disable and enable, remove, and hand
out a new one-time password.

Someone must stay in charge: the last enabled admin cannot be demoted, disabled or removed.
Each change and its check are one conditional statement (atomic on SQLite's single writer);
on PostgreSQL the admin rows are locked first, so two admins demoting or removing each other
at once cannot both count two admins and leave nobody in charge. Disabling and removing end
the user's sessions at once (the generation moves on; a removed user has none to check).
"""

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from tidings.access.accounts import Account, account_of, one_time_password, set_password
from tidings.db.dialect import row_count
from tidings.db.engine import Database
from tidings.db.models import User, UserRole
from tidings.db.types import utcnow
from tidings.errors import Conflict, NotFound


def _leaves_an_admin(user_id: int) -> ColumnElement[bool]:
    """True for a row whose change still leaves an enabled admin: it is not one itself, or
    another enabled admin exists."""
    other = aliased(User)
    others = (
        select(func.count())
        .select_from(other)
        .where(other.role == UserRole.admin, other.disabled_at.is_(None), other.id != user_id)
        .scalar_subquery()
    )
    return or_(User.role != UserRole.admin, User.disabled_at.is_not(None), others > 0)


def _user(session: Session, user_id: int, *, lock_admins: bool = True) -> User:
    if lock_admins:
        session.execute(select(User.id).where(User.role == UserRole.admin).with_for_update())
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"There is no user {user_id}.")
    return user


def _last_admin(email: str, what: str) -> Conflict:
    return Conflict(f"{email} is the last admin and cannot be {what}; make another admin first.")


def set_role(db: Database, user_id: int, role: UserRole) -> Account:
    """Give the user ``role`` (their sessions go on, with the new role from the next page)."""
    with db.session() as session:
        user = _user(session, user_id)
        guard = [] if role == UserRole.admin else [_leaves_an_admin(user_id)]
        changed = session.execute(update(User).where(User.id == user_id, *guard).values(role=role))
        session.commit()
        if not row_count(changed):
            raise _last_admin(user.email, f"made {role.value}")
        session.refresh(user)
        return account_of(user)


def disable_user(db: Database, user_id: int) -> Account:
    """Disable the user: they cannot sign in, and every session of theirs ends now."""
    with db.session() as session:
        user = _user(session, user_id)
        changed = session.execute(
            update(User)
            .where(User.id == user_id, _leaves_an_admin(user_id))
            .values(
                disabled_at=func.coalesce(User.disabled_at, utcnow()),
                session_generation=User.session_generation + 1,
            )
        )
        session.commit()
        if not row_count(changed):
            raise _last_admin(user.email, "disabled")
        session.refresh(user)
        return account_of(user)


def enable_user(db: Database, user_id: int) -> Account:
    """Let a disabled user sign in again (with the password they had)."""
    with db.session() as session:
        user = _user(session, user_id, lock_admins=False)
        user.disabled_at = None
        session.commit()
        return account_of(user)


def remove_user(db: Database, user_id: int) -> str:
    """Remove a console user (their sessions end with them); the address removed."""
    with db.session() as session:
        user = _user(session, user_id)
        email = user.email
        removed = session.execute(
            delete(User)
            .where(User.id == user_id, _leaves_an_admin(user_id))
            .execution_options(synchronize_session=False)
        )
        session.commit()
    if not row_count(removed):
        raise _last_admin(email, "removed")
    return email


def reset_to_one_time(db: Database, user_id: int) -> tuple[Account, str]:
    """Replace the user's password with a one-time one (changed at their next sign-in) and
    end their sessions; the account and the password to hand them."""
    password = one_time_password()
    with db.session() as session:
        user = _user(session, user_id, lock_admins=False)
        return set_password(session, user, password, must_change=True), password
