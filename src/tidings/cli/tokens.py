"""``tidings tokens``: bearer tokens for the JSON API."""

import typer

from tidings.cli.context import cli_context, friendly
from tidings.db.models import UserRole

app = typer.Typer(help="Bearer tokens for the JSON API (/api/v1).", no_args_is_help=True)


@app.command("create")
@friendly
def create(
    ctx: typer.Context,
    role: UserRole = typer.Option(..., "--role", help="admin, editor or viewer."),
    name: str = typer.Option("cli token", "--name", help="What the token is for."),
) -> None:
    """Create a token and print it once (only its hash is stored).

    Example: tidings tokens create --role editor --name "CMS article push"
    """
    from tidings.access.apitokens import create_token

    context = cli_context(ctx)
    token_id, secret = create_token(context.database(), name, role, created_by="cli")
    context.out.print(f"token {token_id} ({role.value}): {secret}")
    context.out.print("Keep it now: it cannot be shown again. Use it as 'Authorization: Bearer …'.")


@app.command("list")
@friendly
def list_command(ctx: typer.Context) -> None:
    """List tokens (never their secrets).

    Example: tidings tokens list
    """
    from tidings.access.apitokens import list_tokens

    context = cli_context(ctx)
    for token in list_tokens(context.database()):
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
        used = f"last used {token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "unused"
        context.out.print(f"{token.id}\t{token.role.value}\t{state}\t{used}\t{token.name}")


@app.command("revoke")
@friendly
def revoke(ctx: typer.Context, token_id: int = typer.Argument(help="The token's number.")) -> None:
    """Revoke a token at once.

    Example: tidings tokens revoke 3
    """
    from tidings.access.apitokens import revoke_token

    context = cli_context(ctx)
    revoke_token(context.database(), token_id)
    context.out.print(f"token {token_id} revoked")
