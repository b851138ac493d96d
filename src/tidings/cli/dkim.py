"""``tidings dkim``: the DKIM keys that sign outgoing mail."""

import typer

from tidings.cli.context import cli_context, friendly
from tidings.db.models import DkimAlgorithm

app = typer.Typer(
    help="DKIM keys: make, list (with their DNS state), remove.", no_args_is_help=True
)


@app.command("keygen")
@friendly
def keygen(
    ctx: typer.Context,
    domain: str = typer.Argument(help="The From domain to sign for, e.g. example.org."),
    selector: str | None = typer.Option(
        None,
        "--selector",
        help="The selector (default: this year and month, t202611 for rsa, e202611 for ed25519).",
    ),
    algorithm: DkimAlgorithm = typer.Option(
        DkimAlgorithm.rsa, "--algorithm", help="rsa (2048 bits) or ed25519."
    ),
) -> None:
    """Make a key for DOMAIN and print the DNS record to publish.

    The newest key of each algorithm signs every message from DOMAIN from now on; with an
    RSA and an Ed25519 key, messages carry both signatures.

    Example: tidings dkim keygen example.org --selector t202611
    """
    from tidings.mail.dkim.store import add_key

    context = cli_context(ctx)
    key = add_key(context.database(), context.settings, domain, selector, algorithm)
    out = context.out
    out.print(f"DKIM key {key.id} made for {key.domain}: {key.algorithm.value}, {key.selector}")
    out.print(f"Publish this TXT record in the zone of {key.domain}:")
    out.print(key.record.zone_line, soft_wrap=True, markup=False)
    out.print(
        "The private key is kept in the database, sealed with a key derived from "
        "TIDINGS_SECRET_KEY; 'tidings dkim list' shows when DNS publishes it.",
        soft_wrap=True,
    )


@app.command("list")
@friendly
def list_command(ctx: typer.Context) -> None:
    """List the keys and whether DNS publishes each (never a private key).

    Example: tidings dkim list
    """
    from tidings.mail.dkim.published import key_report

    context = cli_context(ctx)
    report = key_report(context.database(), context.settings)
    if not report:
        context.out.print("no DKIM keys: make one with 'tidings dkim keygen DOMAIN'")
    for status in report:
        key = status.key
        dns = status.dns.value if status.dns is not None else "not checked"
        sealed = "" if status.readable else "\tunreadable: sealed with another secret key"
        context.out.print(
            f"{key.id}\t{key.domain}\t{key.selector}\t{key.algorithm.value}\t"
            f"{key.created_at:%Y-%m-%d}\t{dns}{sealed}",
            soft_wrap=True,
            markup=False,
        )


@app.command("remove")
@friendly
def remove(
    ctx: typer.Context,
    domain: str = typer.Argument(help="The key's domain."),
    selector: str = typer.Option(..., "--selector", help="The key's selector."),
) -> None:
    """Delete a key: mail from DOMAIN is no longer signed with it (remove its DNS record
    a few days later, once mail in transit has arrived).

    Example: tidings dkim remove example.org --selector t202611
    """
    from tidings.mail.dkim.store import remove_named_key

    context = cli_context(ctx)
    key = remove_named_key(context.database(), domain, selector)
    context.out.print(f"DKIM key {key.id} of {key.domain} ({key.selector}) removed")
