"""``tidings users``: console accounts."""

import typer

from tidings.access.accounts import create_user, list_users, remove_user, user_id_by_email
from tidings.cli.context import cli_context, friendly
from tidings.db.models import UserRole

app = typer.Typer(help="Console users (admin, editor, viewer).", no_args_is_help=True)


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
    context = cli_context(ctx)
    for account in list_users(context.database()):
        note = " (one-time password not yet changed)" if account.must_change_password else ""
        context.out.print(f"{account.email}\t{account.role.value}{note}")


@app.command("remove")
@friendly
def remove(
    ctx: typer.Context, email: str = typer.Argument(help="The address of the user to remove.")
) -> None:
    """Remove a console user; their sessions end at once. The last admin stays.

    Example: tidings users remove editor@messenger.example.ge
    """
    context = cli_context(ctx)
    db = context.database()
    context.out.print(f"removed {remove_user(db, user_id_by_email(db, email))}")
