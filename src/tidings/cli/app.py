"""The root ``tidings`` app: loads the settings once, then dispatches to command groups."""

import typer

from tidings.cli import (
    articles,
    db,
    demo,
    digest,
    dkim,
    doctor,
    editions,
    feeds,
    inbound,
    limits,
    newsletters,
    processes,
    schedule,
    subscribers,
    tokens,
    users,
    worker,
)
from tidings.cli.context import OneLineErrors, make_context

app = typer.Typer(
    cls=OneLineErrors,
    name="tidings",
    help="Tidings: collect a publication's new articles and mail them as a digest.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Tidings: a self-hosted newsletter and daily-digest service.

    Configure it with TIDINGS_* environment variables (see the README).
    """
    try:
        context = make_context()
    except typer.Exit as exit_:
        # A mail transport pipes bounces to `inbound receive`: a setting gone wrong must keep
        # the message queued (EX_TEMPFAIL), not bounce it for good.
        if ctx.invoked_subcommand == "inbound":
            raise typer.Exit(code=inbound.EX_TEMPFAIL) from None
        raise exit_
    ctx.obj = context
    ctx.call_on_close(context.close)


app.add_typer(db.app, name="db")
app.add_typer(newsletters.app, name="newsletter")
app.add_typer(feeds.app, name="feeds")
app.add_typer(articles.app, name="articles")
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(digest.app, name="digest")
app.add_typer(editions.app, name="edition")
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.add_typer(dkim.app, name="dkim")
app.add_typer(inbound.app, name="inbound")
app.add_typer(schedule.app, name="schedule")
app.add_typer(limits.app, name="limits")
app.command(name="doctor")(doctor.doctor)
app.command(name="worker")(worker.worker)
app.command(name="scheduler")(processes.scheduler)
app.command(name="serve")(processes.serve)
app.command(name="run")(processes.run)
app.command(name="demo")(demo.demo)
inbound.app.command(name="serve")(processes.inbound_serve)


def main() -> None:
    """Console-script entry point."""
    app()
