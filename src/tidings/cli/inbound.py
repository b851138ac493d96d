"""``tidings inbound``."""

import typer

app = typer.Typer(help="(being built)", no_args_is_help=True)
