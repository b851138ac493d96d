"""The digest, edition and worker commands, end to end through the CLI."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.builders import articles, newsletter, subscribers
from tests.conftest import Cli
from tests.smtpserver import smtp_server
from tidings.db.engine import Database


def test_send_preview_list_status_and_drain(
    cli: Cli, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    newsletter(db)
    ids = articles(db, "daily", 4, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", 3)
    intro = tmp_path / "intro.md"
    intro.write_text("**Good morning** from Tbilisi.", encoding="utf-8")
    out = tmp_path / "preview.html"

    shown = cli(
        "digest",
        "preview",
        "daily",
        "--subscriber",
        "reader1@example.ge",
        "--article",
        str(ids[1]),
        "--intro-file",
        str(intro),
        "--output",
        str(out),
    )
    assert shown.exit_code == 0, shown.output
    assert "articles (1):" in shown.stdout
    assert "Hello Reader," in out.read_text(encoding="utf-8")  # greeted by first name
    assert "<strong>Good morning</strong>" in out.read_text(encoding="utf-8")

    sent = cli(
        "digest",
        "send",
        "daily",
        "--article",
        str(ids[2]),
        "--article",
        str(ids[0]),
        "--subject",
        "Election special",
        "--no-wait",
    )
    assert sent.exit_code == 0, sent.output
    assert "edition 1: 2 article(s), 3 delivery(ies) queued" in sent.stdout

    status = cli("edition", "status", "1")
    assert "queued 3" in status.stdout and "subject: Election special" in status.stdout

    with smtp_server() as (handler, port):
        monkeypatch.setenv("TIDINGS_SMTP_URL", f"smtp://127.0.0.1:{port}")
        drained = cli("worker", "--drain")
        assert drained.exit_code == 0, drained.output
        assert "sent 3, deferred 0, failed 0" in drained.stdout
        assert len(handler.caught) == 3
        assert {c.message["Subject"] for c in handler.caught} == {"Election special"}

    listed = cli("edition", "list", "daily")
    assert listed.exit_code == 0
    assert "oneoff" in listed.stdout and "sent" in listed.stdout
    done = cli("edition", "status", "1")
    assert "edition 1 of daily (oneoff): sent" in done.stdout and "sent 3" in done.stdout
    assert cli("edition", "status", "99").exit_code == 1
