"""Console users, tested directly on SQLite and PostgreSQL: one-time passwords, sign-in,
password changes that end other sessions (and follow the password rule), and never removing
the last admin."""

import threading

import pytest

from tidings.access.accounts import (
    account_by_id,
    authenticate,
    change_password,
    create_user,
    end_sessions,
    list_users,
    role_allows,
    user_id_by_email,
)
from tidings.access.passwords import MIN_PASSWORD
from tidings.access.people import remove_user
from tidings.db.engine import Database
from tidings.db.models import User, UserRole
from tidings.errors import Conflict, InvalidInput, NotFound

NEW_PASSWORD = "a new and long password"


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        (UserRole.admin, UserRole.admin, True),
        (UserRole.admin, UserRole.viewer, True),
        (UserRole.editor, UserRole.editor, True),
        (UserRole.editor, UserRole.admin, False),
        (UserRole.viewer, UserRole.editor, False),
        (UserRole.viewer, UserRole.viewer, True),
    ],
)
def test_a_role_may_do_what_the_weaker_ones_may(
    role: UserRole, needed: UserRole, allowed: bool
) -> None:
    assert role_allows(role, needed) is allowed


def test_a_new_user_signs_in_with_the_one_time_password(db: Database) -> None:
    account, password = create_user(db, "  Editor@Example.GE ", UserRole.editor)
    assert (account.email, account.role, account.must_change_password) == (
        "editor@example.ge",
        UserRole.editor,
        True,
    )
    with db.session() as session:
        stored = session.get_one(User, account.id)
    assert password not in stored.password_hash and stored.password_hash.startswith("$argon2")
    assert authenticate(db, "EDITOR@example.ge ", password) == account
    assert authenticate(db, "editor@example.ge", password + "x") is None
    assert authenticate(db, "nobody@example.ge", password) is None
    assert account_by_id(db, account.id) == account
    assert account_by_id(db, account.id + 1) is None
    assert user_id_by_email(db, " editor@EXAMPLE.ge") == account.id
    with pytest.raises(NotFound):
        user_id_by_email(db, "nobody@example.ge")


def test_an_address_is_one_user(db: Database) -> None:
    create_user(db, "ed@example.ge", UserRole.editor)
    with pytest.raises(Conflict):
        create_user(db, "ed@example.ge", UserRole.viewer)
    assert [a.email for a in list_users(db)] == ["ed@example.ge"]


def test_a_password_change_checks_the_current_one_and_ends_other_sessions(
    db: Database,
) -> None:
    account, password = create_user(db, "ed@example.ge", UserRole.editor)
    with pytest.raises(InvalidInput, match="at least"):
        change_password(db, account.id, password, "x" * (MIN_PASSWORD - 1))
    with pytest.raises(InvalidInput, match="too easy to guess"):
        change_password(db, account.id, password, "aaaaaaaaaaaa")
    with pytest.raises(InvalidInput, match="differ"):
        change_password(db, account.id, password, password)
    with pytest.raises(InvalidInput, match="current password"):
        change_password(db, account.id, "wrong" * 4, NEW_PASSWORD)
    changed = change_password(db, account.id, password, NEW_PASSWORD)
    assert not changed.must_change_password
    assert changed.session_generation == account.session_generation + 1
    assert authenticate(db, "ed@example.ge", password) is None
    assert authenticate(db, "ed@example.ge", NEW_PASSWORD) == changed


def test_ending_sessions_moves_the_generation_on(db: Database) -> None:
    account, _ = create_user(db, "ed@example.ge", UserRole.editor)
    end_sessions(db, account.id)
    end_sessions(db, account.id)
    found = account_by_id(db, account.id)
    assert found is not None
    assert found.session_generation == account.session_generation + 2


def test_users_are_removed_but_never_the_last_admin(db: Database) -> None:
    admin, _ = create_user(db, "admin@example.ge", UserRole.admin)
    editor, _ = create_user(db, "ed@example.ge", UserRole.editor)
    assert remove_user(db, editor.id) == "ed@example.ge"
    with pytest.raises(NotFound):
        remove_user(db, editor.id)
    with pytest.raises(Conflict, match="last admin"):
        remove_user(db, admin.id)
    assert [a.email for a in list_users(db)] == ["admin@example.ge"]


def test_two_admins_removing_each_other_at_once_leave_one(db: Database) -> None:
    first, _ = create_user(db, "first@example.ge", UserRole.admin)
    second, _ = create_user(db, "second@example.ge", UserRole.admin)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def remove(user_id: int) -> None:
        start.wait()
        try:
            remove_user(db, user_id)
            outcomes.append("removed")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=remove, args=(u.id,)) for u in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["refused", "removed"]
    assert [a.role for a in list_users(db)] == [UserRole.admin]
