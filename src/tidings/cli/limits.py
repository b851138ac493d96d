"""``tidings limits``: the sending limits every worker obeys, per relay and per receiving
domain (rate and concurrent connections), and what "slow down" replies made of them."""

import typer

from tidings.cli.context import cli_context, friendly

app = typer.Typer(
    help="Sending limits shared by every worker: per relay (host:port) and per receiving domain.",
    no_args_is_help=True,
)

SCOPE_HELP = "relay (host:port, as in TIDINGS_SMTP_URL) or domain (gmail.com)."


@app.command("set")
@friendly
def set_command(
    ctx: typer.Context,
    scope: str = typer.Argument(help=SCOPE_HELP),
    name: str = typer.Argument(help="The relay's host:port or the domain."),
    per_second: float | None = typer.Option(
        None, "--per-second", help="Messages per second at most, across every worker."
    ),
    connections: int | None = typer.Option(
        None, "--connections", help="Concurrent connections at most (a relay's), across workers."
    ),
) -> None:
    """Set a limit (what is not given stays as it was).

    Example: tidings limits set domain gmail.com --per-second 20
    """
    from tidings.deliver.limitadmin import set_limit

    context = cli_context(ctx)
    view = set_limit(context.database(), scope, name, per_second, connections)
    caps = _caps(view.per_second, view.max_connections)
    context.out.print(f"{view.scope} {view.name}: {caps}", markup=False)


@app.command("show")
@friendly
def show(ctx: typer.Context) -> None:
    """Show every limit: its cap, the rate in force, its last slow-down, its slots held.

    Example: tidings limits show
    """
    from tidings.deliver.limitadmin import limits_overview

    context = cli_context(ctx)
    views = limits_overview(context.database())
    if not views:
        context.out.print("no sending limits (set one with 'tidings limits set')", markup=False)
    for view in views:
        rate = "no rate" if view.rate is None else f"{view.rate:.3g}/s in force"
        line = f"{view.scope}\t{view.name}\t{_caps(view.per_second, view.max_connections)}\t{rate}"
        if view.max_connections is not None:
            line += f"\t{view.slots_held}/{view.max_connections} connections held"
        if view.slowed_at is not None:
            line += (
                f"\tslowed {view.slowed_at:%Y-%m-%d %H:%M:%S} UTC ({view.slow_downs} replies, "
                f"last: {view.last_reply})"
            )
        context.out.print(line, markup=False)  # a relay's reply is not markup


@app.command("clear")
@friendly
def clear(
    ctx: typer.Context,
    scope: str = typer.Argument(help=SCOPE_HELP),
    name: str = typer.Argument(help="The relay's host:port or the domain."),
) -> None:
    """Remove a limit (and what slow-downs taught it).

    Example: tidings limits clear domain gmail.com
    """
    from tidings.deliver.limitadmin import clear_limit

    context = cli_context(ctx)
    if clear_limit(context.database(), scope, name):
        context.out.print(f"{scope} {name}: no limit now", markup=False)
    else:
        context.out.print(f"{scope} {name} had no limit", markup=False)


def _caps(per_second: float | None, connections: int | None) -> str:
    rate = "no cap" if per_second is None else f"at most {per_second:g}/s"
    return rate if connections is None else f"{rate}, {connections} connections"
