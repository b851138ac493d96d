"""What admins do to console users, on SQLite and PostgreSQL: roles, disabling (sessions end
at once, sign-in refused), removing, one-time passwords, and never leaving nobody in charge."""

import re
import threading
from collections.abc import Callable

import pytest

from tidings.access.accounts import (
    DISABLED,
    Account,
    account_by_id,
    authenticate,
    change_password,
    create_user,
    list_users,
)
from tidings.access.people import (
    disable_user,
    enable_user,
    remove_user,
    reset_to_one_time,
    set_role,
)
from tidings.db.engine import Database
from tidings.db.models import User, UserRole
from tidings.errors import Conflict, NotFound

PASSWORD = "correct-horse-battery-staple"


def _user(db: Database, email: str, role: UserRole) -> Account:
    account, one_time = create_user(db, email, role)
    return change_password(db, account.id, one_time, PASSWORD)


def test_an_admin_changes_roles_but_never_demotes_the_last_admin(db: Database) -> None:
    admin = _user(db, "admin@example.ge", UserRole.admin)
    editor = _user(db, "ed@example.ge", UserRole.editor)
    assert set_role(db, editor.id, UserRole.viewer).role == UserRole.viewer
    for role in (UserRole.editor, UserRole.viewer):
        with pytest.raises(Conflict, match=re.escape("admin@example.ge is the last admin")):
            set_role(db, admin.id, role)
    assert set_role(db, editor.id, UserRole.admin).role == UserRole.admin
    # Two admins now: one may step down, and then the other is the last.
    assert set_role(db, admin.id, UserRole.editor).role == UserRole.editor
    with pytest.raises(Conflict, match=re.escape("ed@example.ge is the last admin")):
        set_role(db, editor.id, UserRole.viewer)
    with pytest.raises(NotFound):
        set_role(db, editor.id + 100, UserRole.viewer)
    roles = {a.email: a.role for a in list_users(db)}
    assert roles == {"admin@example.ge": UserRole.editor, "ed@example.ge": UserRole.admin}


def test_a_disabled_user_cannot_sign_in_and_their_sessions_end(db: Database) -> None:
    _user(db, "admin@example.ge", UserRole.admin)
    editor = _user(db, "ed@example.ge", UserRole.editor)
    disabled = disable_user(db, editor.id)
    assert disabled.disabled
    assert disabled.session_generation == editor.session_generation + 1
    # The right password is told the account is disabled; a wrong one hears nothing new.
    with pytest.raises(Conflict, match="disabled") as refused:
        authenticate(db, "ed@example.ge", PASSWORD)
    assert str(refused.value) == DISABLED
    assert authenticate(db, "ed@example.ge", PASSWORD + "x") is None
    # Disabling again keeps the first date.
    with db.session() as session:
        first = session.get_one(User, editor.id).disabled_at
    disable_user(db, editor.id)
    with db.session() as session:
        assert session.get_one(User, editor.id).disabled_at == first
    enabled = enable_user(db, editor.id)
    assert not enabled.disabled
    assert authenticate(db, "ed@example.ge", PASSWORD) == account_by_id(db, editor.id)


def test_the_last_enabled_admin_stays_enabled(db: Database) -> None:
    first = _user(db, "first@example.ge", UserRole.admin)
    second = _user(db, "second@example.ge", UserRole.admin)
    disable_user(db, second.id)
    # A disabled admin is nobody in charge: the first is now the last enabled admin.
    for change in (
        lambda: disable_user(db, first.id),
        lambda: remove_user(db, first.id),
        lambda: set_role(db, first.id, UserRole.viewer),
    ):
        with pytest.raises(Conflict, match=re.escape("first@example.ge is the last admin")):
            change()
    # The disabled one may be removed or demoted freely.
    assert set_role(db, second.id, UserRole.editor).role == UserRole.editor
    assert remove_user(db, second.id) == "second@example.ge"
    assert [(a.email, a.role, a.disabled) for a in list_users(db)] == [
        ("first@example.ge", UserRole.admin, False)
    ]


@pytest.mark.parametrize(
    "change",
    [
        lambda db, user_id: disable_user(db, user_id),
        lambda db, user_id: set_role(db, user_id, UserRole.editor),
        lambda db, user_id: remove_user(db, user_id),
    ],
    ids=["disable", "demote", "remove"],
)
def test_two_admins_at_once_leave_one_in_charge(
    db: Database, change: Callable[[Database, int], object]
) -> None:
    first = _user(db, "first@example.ge", UserRole.admin)
    second = _user(db, "second@example.ge", UserRole.admin)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def run(user_id: int) -> None:
        start.wait()
        try:
            change(db, user_id)
            outcomes.append("done")
        except Conflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=run, args=(u.id,)) for u in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["done", "refused"]
    in_charge = [a for a in list_users(db) if a.role == UserRole.admin and not a.disabled]
    assert len(in_charge) == 1


def test_a_one_time_password_replaces_the_old_one_and_ends_sessions(db: Database) -> None:
    editor = _user(db, "ed@example.ge", UserRole.editor)
    account, password = reset_to_one_time(db, editor.id)
    assert account.must_change_password
    assert account.session_generation == editor.session_generation + 1
    assert authenticate(db, "ed@example.ge", PASSWORD) is None
    assert authenticate(db, "ed@example.ge", password) == account
