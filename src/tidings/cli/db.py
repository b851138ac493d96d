"""``tidings db``: create and upgrade the schema."""

import typer

from tidings.cli.context import cli_context, friendly

app = typer.Typer(help="Create, upgrade or downgrade the database schema.", no_args_is_help=True)


@app.command("upgrade")
@friendly
def upgrade_command(ctx: typer.Context) -> None:
    """Create the schema, or upgrade it to this version of Tidings.

    Example: TIDINGS_DATABASE_URL=postgresql://localhost/tidings tidings db upgrade
    """
    from tidings.db.migrate import current_revision, upgrade

    context = cli_context(ctx)
    console = context.out
    database = context.database(require_current_schema=False)
    before = current_revision(database.engine)
    upgrade(database.engine)
    after = current_revision(database.engine)
    if before == after:
        console.print(f"database already at {after}")
    else:
        console.print(f"database upgraded from {before or 'empty'} to {after}")


@app.command("downgrade")
@friendly
def downgrade_command(
    ctx: typer.Context,
    revision: str = typer.Argument(help="Revision to go back to; 'base' drops every table."),
) -> None:
    """Downgrade the schema (for rolling back a release).

    Example: tidings db downgrade base
    """
    from tidings.db.migrate import current_revision, downgrade

    context = cli_context(ctx)
    console = context.out
    database = context.database(require_current_schema=False)
    downgrade(database.engine, revision)
    console.print(f"database now at {current_revision(database.engine) or 'empty'}")
