"""The ``tidings`` command line (Typer): thin commands that call one service each.

A command imports its services inside its body, not at the top of its module: every command
(a worker above all) would otherwise start with all the others' libraries in memory, composing,
feeds and the web face among them. tests/cli/test_light_imports.py keeps it so."""

from tidings.cli.app import app, main

__all__ = ["app", "main"]
