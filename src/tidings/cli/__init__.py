"""The ``tidings`` command line (Typer): thin commands that call one service each."""

from tidings.cli.app import app, main

__all__ = ["app", "main"]
