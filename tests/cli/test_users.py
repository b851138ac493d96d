"""``tidings users`` on both databases: roles, disabling, removing and one-time passwords,
and the last admin refused in one line with exit 1."""

import re

from tests.cli.clisupport import refused
from tests.conftest import Cli
from tidings.access.accounts import account_by_id, authenticate, user_id_by_email
from tidings.config import Settings
from tidings.db.engine import open_database

ADMIN = "admin@messenger.example.ge"
EDITOR = "editor@messenger.example.ge"


def _one_time(output: str) -> str:
    found = re.search(r"one-time password[^:]*: (\S+)", output)
    assert found, output
    return found.group(1)


def test_users_commands(cli: Cli, settings: Settings) -> None:
    assert cli("db", "upgrade").exit_code == 0
    admin_password = _one_time(cli("users", "create", ADMIN, "--role", "admin").stdout)
    cli("users", "create", EDITOR, "--role", "editor")
    db = open_database(settings.resolved_database_url)
    try:
        editor_id = user_id_by_email(db, EDITOR)

        result = cli("users", "set-role", EDITOR, "viewer")
        assert result.exit_code == 0 and f"{EDITOR} is now viewer" in result.stdout
        before = account_by_id(db, editor_id)
        assert before is not None and before.role.value == "viewer"

        result = cli("users", "disable", EDITOR)
        assert result.exit_code == 0 and "disabled" in result.stdout
        after = account_by_id(db, editor_id)
        assert after is not None and after.disabled
        assert after.session_generation == before.session_generation + 1
        assert re.search(rf"{EDITOR}\s+viewer \(disabled\)", cli("users", "list").stdout)
        assert cli("users", "enable", EDITOR).exit_code == 0
        enabled = account_by_id(db, editor_id)
        assert enabled is not None and not enabled.disabled

        # The last admin: one line each, exit 1, nothing changed.
        for args in (("disable", ADMIN), ("remove", ADMIN), ("set-role", ADMIN, "editor")):
            line = refused(cli, "users", *args)
            assert "is the last admin" in line, line
        assert authenticate(db, ADMIN, admin_password) is not None
        assert "no user" in refused(cli, "users", "disable", "nobody@messenger.example.ge")

        result = cli("users", "reset-password", EDITOR)
        assert result.exit_code == 0
        fresh = _one_time(result.stdout)
        signed_in = authenticate(db, EDITOR, fresh)
        assert signed_in is not None and signed_in.must_change_password

        assert cli("users", "remove", EDITOR).exit_code == 0
        assert account_by_id(db, editor_id) is None
    finally:
        db.dispose()
