"""The CLI contract, end to end on both databases."""

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli
from tests.feedserver import FeedServer, Reply, feed_server
from tests.ingest.feeds import item, rss
from tidings.cli import app
from tidings.config import Settings

SENDER = "The Messenger <news@messenger.example.ge>"


@pytest.fixture
def server(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[FeedServer]:
    # After `settings` (which clears TIDINGS_*): the feed server is on loopback.
    monkeypatch.setenv("TIDINGS_FEED_ALLOW_PRIVATE", "true")
    with feed_server() as running:
        running.routes["/feed.xml"] = Reply(200, rss([item(1), item(2), item(3)]))
        yield running


def test_cli_contract_end_to_end(cli: Cli, server: FeedServer, tmp_path: Path) -> None:
    result = cli("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "already at" in result.stdout

    result = cli(
        "newsletter",
        "create",
        "daily",
        "--name",
        "The Daily Messenger",
        "--from",
        SENDER,
        "--reply-to",
        "editors@messenger.example.ge",
        "--schedule",
        "0 8 * * 1-5",
        "--timezone",
        "Asia/Tbilisi",
        "--feed",
        server.url("/feed.xml"),
        "--min-articles",
        "2",
        "--max-articles",
        "10",
    )
    assert result.exit_code == 0, result.output
    assert "created newsletter 'daily' with 1 feed(s)" in result.stdout

    result = cli("feeds", "poll", "daily")
    assert result.exit_code == 0, result.output
    assert "3 new article(s), 0 failed" in result.stdout

    result = cli(
        "articles",
        "add",
        "--newsletter",
        "daily",
        "--url",
        "https://messenger.example.ge/x",
        "--title",
        "Exclusive: “Abashidze” speaks",
        "--summary",
        "An interview.",
        "--author",
        "By Messenger Staff",
        "--section",
        "Politics",
        "--published",
        "2026-06-26T09:30:00+04:00",
    )
    assert result.exit_code == 0, result.output
    assert "1 new" in result.stdout

    articles = tmp_path / "articles.json"
    articles.write_text(
        json.dumps(
            {
                "articles": [
                    {
                        "url": "https://messenger.example.ge/y",
                        "title": "Pushed by the CMS",
                        "content_html": "<p>Body<script>x()</script></p>",
                        "published": "2026-06-26T10:00Z",
                    },
                    {"url": "not a url", "title": "Broken"},
                    {"url": "https://messenger.example.ge/z", "title": "Extra", "colour": "red"},
                ]
            }
        ),
        encoding="utf-8",
    )
    result = cli("articles", "import", str(articles), "--newsletter", "daily")
    assert result.exit_code == 0, result.output
    assert "1 new, 0 updated, 0 unchanged" in result.stdout
    assert "rejected article 2: url must be an absolute http(s) URL" in result.stdout
    assert "rejected article 3: colour: Extra inputs are not permitted" in result.stdout

    result = cli(
        "subscribers",
        "add",
        "Nino@Example.GE",
        "--newsletter",
        "daily",
        "--name",
        "Nino Beridze",
        "--confirmed",
    )
    assert result.exit_code == 0, result.output
    assert "nino@example.ge: subscribed (active)" in result.stdout

    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,city\nnino@example.ge,,Tbilisi\nbad-address,X,\n"
        "giorgi@example.ge,Giorgi,Kutaisi\n",
        encoding="utf-8",
    )
    report = tmp_path / "invalid.csv"
    result = cli(
        "subscribers",
        "import",
        str(people),
        "--newsletter",
        "daily",
        "--invalid-report",
        str(report),
    )
    assert result.exit_code == 0, result.output
    assert "read 3 row(s): 1 new subscriber(s), 1 updated" in result.stdout
    assert "line 3: 'bad-address'" in result.stdout
    assert report.read_text(encoding="utf-8").startswith("line,reason\n3,")

    result = cli("newsletter", "list")
    assert result.exit_code == 0, result.output
    assert "daily" in result.stdout and "Asia/Tbilisi" in result.stdout

    exported = tmp_path / "export.csv"
    result = cli("subscribers", "export", "--newsletter", "daily", "--output", str(exported))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(exported.read_text(encoding="utf-8"))))
    assert [(r["email"], r["status"], r["city"]) for r in rows] == [
        ("nino@example.ge", "active", "Tbilisi"),
        ("giorgi@example.ge", "pending", "Kutaisi"),
    ]
    result = cli("subscribers", "export", "--newsletter", "daily")
    assert result.stdout.splitlines()[0].startswith("email,name,locale,timezone,status")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["newsletter", "create", "Bad Slug", "--name", "x", "--from", SENDER], "slug must be"),
        (["newsletter", "create", "d", "--name", "x", "--from", "nobody"], "must have an @-sign"),
        (
            ["newsletter", "create", "d", "--name", "x", "--from", SENDER, "--schedule", "* *"],
            "not a crontab",
        ),
        (
            ["newsletter", "create", "d", "--name", "x", "--from", SENDER, "--timezone", "Mars/X"],
            "not an IANA time zone",
        ),
        (
            ["newsletter", "create", "d", "--name", "x", "--from", SENDER, "--feed", "ftp://x"],
            "absolute http(s) URL",
        ),
        (["feeds", "poll", "nope"], "no newsletter 'nope'"),
        (["subscribers", "add", "not-an-address", "--newsletter", "daily"], "not-an-address"),
        (["subscribers", "import", "/does/not/exist.csv", "--newsletter", "daily"], "cannot read"),
        (["articles", "import", "/does/not/exist.json", "--newsletter", "daily"], "cannot read"),
        (
            ["articles", "add", "--newsletter", "daily", "--url", "https://x.ge/1", "--title", " "],
            "title is empty",
        ),
    ],
)
def test_user_mistakes_are_one_line_and_exit_1(cli: Cli, args: list[str], message: str) -> None:
    assert cli("newsletter", "create", "daily", "--name", "Daily", "--from", SENDER).exit_code == 0
    result = cli(*args)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message.lower() in lines[0].lower()
    assert "Traceback" not in result.output


def test_duplicate_newsletter_and_unmigrated_database(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("newsletter", "create", "daily", "--name", "D", "--from", SENDER).exit_code == 0
    result = cli("newsletter", "create", "daily", "--name", "D", "--from", SENDER)
    assert result.exit_code == 1
    assert "exists already" in result.stderr
    monkeypatch.setenv("TIDINGS_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    result = cli("newsletter", "list")
    assert result.exit_code == 1
    assert "run 'tidings db upgrade'" in result.stderr


def _all_commands() -> list[list[str]]:
    import typer.main

    root = typer.main.get_command(app)
    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, [*path, name])
        else:
            found.append(path)

    walk(root, [])
    return found


def test_every_command_has_help_with_an_example(cli: Cli) -> None:
    commands = _all_commands()
    assert ["subscribers", "import"] in commands and ["db", "upgrade"] in commands
    for path in commands:
        result = cli(*path, "--help")
        assert result.exit_code == 0, path
        assert "Example" in result.stdout, path
