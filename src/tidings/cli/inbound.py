"""``tidings inbound``: mail that comes back (bounces, complaints, mailto unsubscribes)."""

import typer
from sqlalchemy.exc import DBAPIError

from tidings.cli.context import cli_context
from tidings.db.errors import describe, is_transient

app = typer.Typer(help="Read mail that comes back to the bounce domain.", no_args_is_help=True)

#: sysexits.h EX_TEMPFAIL: the MTA keeps the message and tries again later.
EX_TEMPFAIL = 75
#: Read from standard input at a time; at most 1 GiB is drained past the limit.
CHUNK = 64 * 1024
DRAIN_LIMIT = 1 << 30


def _read_stdin(limit: int) -> bytes:
    """At most ``limit`` bytes of standard input; the rest is read and dropped (an MTA whose
    pipe is closed early counts the delivery as failed), never kept."""
    stream = typer.get_binary_stream("stdin")
    data = stream.read(limit)
    drained = 0
    while drained < DRAIN_LIMIT and (chunk := stream.read(CHUNK)):
        drained += len(chunk)
    return data


@app.command("receive")
def receive(
    ctx: typer.Context,
    recipient: str | None = typer.Option(
        None,
        "--recipient",
        help="The envelope recipient (Postfix: ${recipient}); default: Delivered-To, then To.",
    ),
) -> None:
    """Read one message on standard input (a pipe transport, procmail, fetchmail), apply what
    it means, keep it, and print one line: what it meant and what it changed.

    Exit 0 when it was handled or deliberately ignored; 75 (EX_TEMPFAIL) for anything else,
    so the MTA keeps it and tries again: the database being away, or a fault of ours, loses
    no mail. Example (Postfix master.cf):
    tidings unix - n n - 4 pipe flags=Rq user=tidings argv=/usr/bin/tidings inbound receive
    --recipient ${recipient}
    """
    context = cli_context(ctx)
    try:
        from tidings.inbound.service import handle_message

        raw = _read_stdin(context.settings.inbound_max_bytes + 1)
        handled = handle_message(context.database(), context.settings, raw, recipient, "pipe")
    except Exception as exc:  # every failure is one line and EX_TEMPFAIL, never a traceback
        line = f"error: {_problem(exc)}; exit {EX_TEMPFAIL}, to be tried again"
        context.err.print(line, markup=False, soft_wrap=True)
        raise typer.Exit(code=EX_TEMPFAIL) from None
    context.out.print(f"{handled.meaning.value}: {handled.changes}", markup=False, soft_wrap=True)


def _problem(exc: Exception) -> str:
    """One line for a failure: never the SQL, its parameters or the database URL."""
    said = describe(exc) if isinstance(exc, DBAPIError) else type(exc).__name__
    if not isinstance(exc, DBAPIError) and str(exc).strip():
        said += ": " + str(exc).strip().splitlines()[0][:200]
    return f"the database cannot be reached ({said})" if is_transient(exc) else said
