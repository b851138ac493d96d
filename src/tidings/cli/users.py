"""``tidings users``: console accounts."""

import typer

from tidings.cli.context import cli_context, friendly
from tidings.db.models import UserRole

app = typer.Typer(help="Console users (admin, editor, viewer).", no_args_is_help=True)
EMAIL = typer.Argument(help="The address the user signs in with.")


@app.command("create")
@friendly
def create(
    ctx: typer.Context,
    email: str = typer.Argument(help="The user's address; they sign in with it."),
    role: UserRole = typer.Option(..., "--role", help="admin, editor or viewer."),
) -> None:
    """Create a console user and print a one-time password, changed at first sign-in.

    Example: tidings users create editor@messenger.example.ge --role editor
    """
    from tidings.access.accounts import create_user

    context = cli_context(ctx)
    account, password = create_user(context.database(), email, role)
    context.out.print(f"created {account.email} ({account.role.value})")
    context.out.print(f"one-time password: {password}")
    context.out.print("They must choose their own password when they first sign in at /admin.")


@app.command("list")
@friendly
def list_command(ctx: typer.Context) -> None:
    """List console users.

    Example: tidings users list
    """
    from tidings.access.accounts import list_users

    context = cli_context(ctx)
    for account in list_users(context.database()):
        note = (
            " (disabled)"
            if account.disabled
            else " (one-time password not yet changed)"
            if account.must_change_password
            else ""
        )
        context.out.print(f"{account.email}\t{account.role.value}{note}")


@app.command("set-role")
@friendly
def set_role_command(
    ctx: typer.Context,
    email: str = EMAIL,
    role: UserRole = typer.Argument(help="admin, editor or viewer."),
) -> None:
    """Change a user's role. The last admin stays an admin.

    Example: tidings users set-role editor@messenger.example.ge admin
    """
    from tidings.access.accounts import user_id_by_email
    from tidings.access.people import set_role

    context = cli_context(ctx)
    db = context.database()
    account = set_role(db, user_id_by_email(db, email), role)
    context.out.print(f"{account.email} is now {account.role.value}")


@app.command("disable")
@friendly
def disable(ctx: typer.Context, email: str = EMAIL) -> None:
    """Disable a user: they cannot sign in, and their sessions end at once. The last admin
    stays enabled.

    Example: tidings users disable editor@messenger.example.ge
    """
    from tidings.access.accounts import user_id_by_email
    from tidings.access.people import disable_user

    context = cli_context(ctx)
    db = context.database()
    account = disable_user(db, user_id_by_email(db, email))
    context.out.print(f"disabled {account.email}; their sessions have ended")


@app.command("enable")
@friendly
def enable(ctx: typer.Context, email: str = EMAIL) -> None:
    """Let a disabled user sign in again, with the password they had.

    Example: tidings users enable editor@messenger.example.ge
    """
    from tidings.access.accounts import user_id_by_email
    from tidings.access.people import enable_user

    context = cli_context(ctx)
    db = context.database()
    account = enable_user(db, user_id_by_email(db, email))
    context.out.print(f"enabled {account.email}")


@app.command("remove")
@friendly
def remove(ctx: typer.Context, email: str = EMAIL) -> None:
    """Remove a console user; their sessions end at once. The last admin stays.

    Example: tidings users remove editor@messenger.example.ge
    """
    from tidings.access.accounts import user_id_by_email
    from tidings.access.people import remove_user

    context = cli_context(ctx)
    db = context.database()
    context.out.print(f"removed {remove_user(db, user_id_by_email(db, email))}")


@app.command("reset-password")
@friendly
def reset_password(ctx: typer.Context, email: str = EMAIL) -> None:
    """Replace a user's password with a one-time password (printed once) and end their
    sessions; they choose their own at their next sign-in.

    Example: tidings users reset-password editor@messenger.example.ge
    """
    from tidings.access.accounts import user_id_by_email
    from tidings.access.people import reset_to_one_time

    context = cli_context(ctx)
    db = context.database()
    account, password = reset_to_one_time(db, user_id_by_email(db, email))
    context.out.print(f"one-time password for {account.email}: {password}")
    context.out.print("They must choose their own password when they next sign in at /admin.")
