"""The README's promise for every command: a user mistake is one line on stderr and exit 1
(no boxed usage screen, no exit 2), quoting the whole bad value; lists fit 80 columns."""

from collections.abc import Iterator

import pytest
import typer
from sqlalchemy import select

from tests.builders import newsletter, subscribers
from tests.conftest import Cli, CliResult
from tidings.access.apitokens import create_token
from tidings.cli.app import app
from tidings.db.engine import Database
from tidings.db.models import Newsletter, UserRole

BOX = set("╭╮╰╯│─")
SENDER = "The Messenger <news@messenger.example.ge>"


def _leaves(
    command: typer.main.TyperGroup | object, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], object]]:
    children = getattr(command, "commands", None)
    if children is None:
        yield path, command
        return
    for name, child in sorted(children.items()):
        yield from _leaves(child, (*path, name))


LEAVES = list(_leaves(typer.main.get_command(app), ()))


def _one_line(result: CliResult) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert not BOX & set(lines[0]), lines[0]
    assert lines[0].startswith("error: ")
    return lines[0]


def test_the_tree_is_walked() -> None:
    names = {" ".join(path) for path, _ in LEAVES}
    assert {"newsletter create", "newsletter edit", "edition send", "worker", "demo"} <= names
    assert len(names) > 30


@pytest.mark.parametrize("path", [p for p, _ in LEAVES], ids=lambda p: " ".join(p))
def test_an_unknown_option_is_one_line_and_exit_1(cli: Cli, path: tuple[str, ...]) -> None:
    line = _one_line(cli(*path, "--no-such-option-here"))
    assert "--no-such-option-here" in line and f"{' '.join(path)} --help" in line


def test_unknown_command_missing_option_and_bad_values(cli: Cli, db: Database) -> None:
    cli("db", "upgrade")
    assert "No such command 'nosuch'" in _one_line(cli("nosuch"))
    assert "Missing option '--newsletter'" in _one_line(cli("subscribers", "add", "a@b.ge"))
    newsletter(db)
    published = cli(
        "articles",
        "add",
        "--newsletter",
        "daily",
        "--url",
        "https://messenger.example.ge/1",
        "--title",
        "T",
        "--published",
        "yester day",
    )
    assert "'yester day'" in _one_line(published)
    wrong = _one_line(cli("subscribers", "add", "not an address", "--newsletter", "daily"))
    assert "'not an address'" in wrong
    # What the user typed is text, never console markup.
    marked = _one_line(cli("subscribers", "add", "[bold]x[/bold]", "--newsletter", "daily"))
    assert "'[bold]x[/bold]'" in marked
    assert "integer" in _one_line(cli("edition", "send", "abc"))


def test_a_bare_group_still_shows_its_help(cli: Cli) -> None:
    shown = cli("newsletter")
    assert "create" in shown.output and "edit" in shown.output and "list" in shown.output


def test_newsletter_edit_sets_and_clears_allowed_origins(cli: Cli, db: Database) -> None:
    cli("db", "upgrade")
    newsletter(db)
    edited = cli(
        "newsletter",
        "edit",
        "daily",
        "--allowed-origin",
        "https://Messenger.example.ge/",
        "--allowed-origin",
        "https://www.messenger.example.ge:8443",
    )
    assert edited.exit_code == 0, edited.output
    assert (
        "allowed origins: https://messenger.example.ge, https://www.messenger.example.ge:8443"
        in edited.stdout
    )
    refused = _one_line(cli("newsletter", "edit", "daily", "--allowed-origin", "https://a.ge/x"))
    assert "'https://a.ge/x'" in refused
    assert (
        "allowed origins: none" in cli("newsletter", "edit", "daily", "--no-allowed-origins").stdout
    )
    assert "at least one setting" in _one_line(cli("newsletter", "edit", "daily"))
    unknown = _one_line(cli("newsletter", "edit", "daily", "--template-set", "fancy"))
    assert "'fancy'" in unknown
    never = _one_line(cli("newsletter", "edit", "daily", "--schedule", "0 0 30 2 *"))
    assert "never sends" in never
    assert "no newsletter 'nope'" in _one_line(cli("newsletter", "edit", "nope", "--name", "N"))


def test_lists_fit_80_columns(cli: Cli, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("db", "upgrade")
    newsletter(db)
    cli(
        "newsletter",
        "create",
        "the-long-evening-edition-of-the-messenger",
        "--name",
        "The Long Evening Edition of The Messenger of Tbilisi",
        "--from",
        "The Messenger Evening Desk <evening-desk@newsroom.messenger.example.ge>",
        "--timezone",
        "America/Argentina/Buenos_Aires",
    )
    subscribers(db, "daily", 2)
    create_token(
        db, "A token with a rather long descriptive name for the CMS", UserRole.editor, "t"
    )
    monkeypatch.setenv("COLUMNS", "80")
    for command in (
        ("newsletter", "list"),
        ("edition", "list"),
        ("tokens", "list"),
        ("users", "list"),
        ("dkim", "list"),
    ):
        shown = cli(*command)
        assert shown.exit_code == 0, shown.output
        widest = max((len(line) for line in shown.stdout.splitlines()), default=0)
        assert widest <= 80, (command, shown.stdout)
    names = cli("newsletter", "list").stdout
    # Wrapped, not cut: every word of the long name is there.
    for word in ("Long", "Evening", "Edition", "Tbilisi"):
        assert word in names


def test_newsletter_reader_settings_at_create_and_edit(cli: Cli, db: Database) -> None:
    cli("db", "upgrade")
    created = cli(
        "newsletter",
        "create",
        "evening",
        "--name",
        "The Evening Messenger",
        "--from",
        "The Messenger <evening@messenger.example.ge>",
        "--reader-time",
        "--postal-address",
        "The Messenger | 14 Rustaveli Avenue | Tbilisi 0108, Georgia",
        "--footer",
        "Written in Tbilisi.",
        "--no-welcome",
        "--utm-source",
        "messenger",
    )
    assert created.exit_code == 0, created.output
    with db.session() as session:
        stored = session.scalars(select(Newsletter).where(Newsletter.slug == "evening")).one()
        assert (stored.reader_time, stored.welcome_enabled, stored.show_images) == (
            True,
            False,
            True,
        )
        assert stored.postal_address == "The Messenger\n14 Rustaveli Avenue\nTbilisi 0108, Georgia"
        assert (stored.footer_text, stored.utm_source) == ("Written in Tbilisi.", "messenger")
    edited = cli(
        "newsletter", "edit", "evening", "--no-reader-time", "--no-images", "--welcome", "--no-utm"
    )
    assert edited.exit_code == 0, edited.output
    for line in (
        "sends at: the schedule's zone",
        "postal address: The Messenger | 14 Rustaveli Avenue | Tbilisi 0108, Georgia",
        "welcome mail: on",
        "images: not shown",
        "UTM source: none (no UTM tags)",
    ):
        assert line in edited.stdout
    removed = cli("newsletter", "edit", "evening", "--postal-address", "", "--footer", "")
    assert "postal address: none" in removed.stdout and "footer: none" in removed.stdout
    with db.session() as session:
        stored = session.scalars(select(Newsletter).where(Newsletter.slug == "evening")).one()
        assert (stored.reader_time, stored.welcome_enabled, stored.show_images) == (
            False,
            True,
            False,
        )
        assert (stored.postal_address, stored.footer_text, stored.utm_source) == (None, None, None)
    bad = _one_line(cli("newsletter", "edit", "evening", "--utm-source", "a b"))
    assert "The UTM source 'a b' must be letters" in bad
    both = _one_line(cli("newsletter", "edit", "evening", "--utm-source", "x", "--no-utm"))
    assert "not both" in both
    long_line = _one_line(cli("newsletter", "edit", "evening", "--postal-address", "x" * 200))
    assert "at most 120" in long_line
    tabbed = _one_line(
        cli("newsletter", "create", "x", "--name", "X", "--from", SENDER, "--footer", "a\tb")
    )
    assert "control character (U+0009)" in tabbed
