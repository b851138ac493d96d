"""Helpers the CLI tests share."""

from tests.conftest import Cli


def refused(cli: Cli, *args: str) -> str:
    """Run a command that must be refused: exit 1 and one line on stderr; that line."""
    result = cli(*args)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]
