"""Confirmation mails an admin asks for, through the CLI, on both databases, to a real SMTP
server: ``subscribers add --send-confirmation`` mails a pending reader once (the sign-up's
ten-minute limit), ``subscribers import --send-confirmation`` mails the file's new pending
readers only, and an import without it says how many are waiting; a suppressed or active
reader is never mailed."""

from pathlib import Path

import pytest
from sqlalchemy import select

from tests.builders import newsletter
from tests.conftest import Cli
from tests.smtpserver import smtp_server
from tidings.audience.confirmations import claim_one, claim_waiting, waiting
from tidings.audience.service import add_subscriber
from tidings.audience.suppressions import suppress
from tidings.db.engine import Database
from tidings.db.models import HistoryKind, Subscriber
from tidings.errors import InvalidInput
from tidings.feedback.history import history_of


def test_cli_add_and_import_send_confirmations_when_asked(
    db: Database, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    newsletter(db)
    with smtp_server() as (smtp, port):
        monkeypatch.setenv("TIDINGS_SMTP_URL", f"smtp://127.0.0.1:{port}")
        quiet = cli("subscribers", "add", "eka@example.ge", "--newsletter", "daily")
        assert quiet.exit_code == 0 and smtp.caught == []
        asked = cli(
            "subscribers", "add", "nino@example.ge", "--newsletter", "daily", "--send-confirmation"
        )
        assert asked.exit_code == 0, asked.output
        assert "confirmation mailed to nino@example.ge" in asked.stdout
        assert [c.rcpt_tos for c in smtp.caught] == [["nino@example.ge"]]
        again = cli(
            "subscribers", "add", "nino@example.ge", "--newsletter", "daily", "--send-confirmation"
        )
        assert "less than ten minutes ago" in again.stdout and len(smtp.caught) == 1

        readers = tmp_path / "readers.csv"
        readers.write_text("email,name\nana@example.ge,Ana\nbob@example.ge,Bob\n", "utf-8")
        imported = cli(
            "subscribers", "import", str(readers), "--newsletter", "daily", "--send-confirmation"
        )
        assert imported.exit_code == 0, imported.output
        assert "2 confirmation mail(s) tried; 1 pending subscriber(s) still waiting" in (
            imported.stdout
        )  # Eka, added before the import without a mail, still waits
        mailed = sorted(c.rcpt_tos[0] for c in smtp.caught)
        assert mailed == ["ana@example.ge", "bob@example.ge", "nino@example.ge"]

        more = tmp_path / "more.csv"
        more.write_text("email\ncara@example.ge\n", "utf-8")
        plain = cli("subscribers", "import", str(more), "--newsletter", "daily")
        assert "2 pending subscriber(s) of daily have had no confirmation mail" in plain.stdout
        assert len(smtp.caught) == 3
    with db.session() as session:
        ana = session.scalars(
            select(Subscriber.id).where(Subscriber.email == "ana@example.ge")
        ).one()
    kinds = [(r.kind, r.source) for r in reversed(history_of(db, ana))]
    assert kinds == [(HistoryKind.imported, "import"), (HistoryKind.confirm_mailed, "cli")]


def test_only_pending_unsuppressed_readers_are_claimed(db: Database) -> None:
    newsletter(db)
    active = add_subscriber(db, "daily", "ana@example.ge", None, True, source="test")
    pending = add_subscriber(db, "daily", "bob@example.ge", None, False, source="test")
    add_subscriber(db, "daily", "cara@example.ge", None, False, source="test")
    suppress(db, "cara@example.ge", "by hand")
    assert waiting(db, "daily") == 1
    with pytest.raises(InvalidInput, match="only a pending subscription"):
        claim_one(db, active.subscription_id, "console")
    (due,) = claim_waiting(db, "daily", "console")
    assert due.email == "bob@example.ge" and due.source == "console"
    assert claim_one(db, pending.subscription_id, "console") is None  # claimed just now
    assert waiting(db, "daily") == 0 and claim_waiting(db, "daily", "console") == []
