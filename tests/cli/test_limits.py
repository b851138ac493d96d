"""``tidings limits`` on both databases: set, show and clear a relay's and a domain's limit,
a slow-down shown with its reply, and bad values refused in one line with exit 1."""

import pytest

from tests.cli.clisupport import refused
from tests.conftest import Cli
from tidings.config import Settings
from tidings.db.engine import open_database
from tidings.db.models import SendLimitScope
from tidings.db.types import utcnow
from tidings.deliver import limits
from tidings.deliver.limitkeys import Key


def _shown(cli: Cli) -> list[str]:
    """``limits show``'s lines, runs of spaces (rich expands the tabs) made one."""
    return [" ".join(line.split()) for line in cli("limits", "show").stdout.splitlines()]


def test_set_show_clear(cli: Cli, settings: Settings) -> None:
    assert cli("db", "upgrade").exit_code == 0
    assert "no sending limits" in cli("limits", "show").stdout

    result = cli("limits", "set", "domain", "GMail.com", "--per-second", "20")
    assert result.exit_code == 0, result.output
    assert "domain gmail.com: at most 20/s" in result.stdout
    result = cli("limits", "set", "relay", "smtp.example.ge:587", "--connections", "4")
    assert result.exit_code == 0, result.output
    # What is not given stays: the domain keeps its rate when connections are added.
    cli("limits", "set", "domain", "gmail.com", "--connections", "3")

    db = open_database(settings.resolved_database_url)
    try:
        with db.session() as session:
            limits.slow_down(
                session,
                Key(SendLimitScope.domain, "gmail.com"),
                "421 4.7.28 rate limited",
                0.0,
                utcnow(),
            )
            session.commit()
    finally:
        db.dispose()
    shown = _shown(cli)
    assert shown[0].startswith("relay smtp.example.ge:587 no cap, 4 connections no rate")
    assert "0/4 connections held" in shown[0]
    assert shown[1].startswith("domain gmail.com at most 20/s, 3 connections 10/s in force")
    assert "(1 replies, last: 421 4.7.28 rate limited)" in shown[1]

    assert "domain gmail.com: no limit now" in cli("limits", "clear", "domain", "gmail.com").stdout
    assert "had no limit" in cli("limits", "clear", "domain", "gmail.com").stdout
    shown = _shown(cli)
    assert len(shown) == 1 and shown[0].startswith("relay ")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("set", "domain", "gmail.com", "--per-second", "0"), "--per-second must be from"),
        (("set", "domain", "gmail.com", "--per-second", "-1"), "--per-second must be from"),
        (("set", "domain", "gmail.com", "--per-second", "inf"), "--per-second must be from"),
        (("set", "domain", "gmail.com", "--connections", "0"), "--connections must be from 1"),
        (("set", "domain", "gmail.com"), "give --per-second and/or --connections"),
        (("set", "mx", "gmail.com", "--per-second", "1"), "scope must be relay or domain"),
        (("set", "relay", "smtp.example.ge", "--per-second", "1"), "relay is host:port"),
        (("clear", "relay", "nowhere"), "relay is host:port"),
    ],
)
def test_bad_values_are_refused_in_one_line(
    cli: Cli, settings: Settings, args: tuple[str, ...], says: str
) -> None:
    assert cli("db", "upgrade").exit_code == 0
    assert says.lower() in refused(cli, "limits", *args).lower()
    assert "no sending limits" in cli("limits", "show").stdout
