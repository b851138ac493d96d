import re

import httpx
import pytest

from tests.conftest import Cli
from tests.smtpserver import free_port
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.deliver.catcher import list_caught


def test_demo_loads_the_sample_and_sends_one_edition_into_the_catcher(
    cli: Cli, settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = settings.model_copy(update={"catcher_port": free_port()})
    monkeypatch.setenv("TIDINGS_CATCHER_PORT", str(local.catcher_port))
    first = cli("demo", "--no-serve")
    assert first.exit_code == 0, first.output
    assert "sample feed: 23 new" in first.stdout
    assert "sample subscribers: 8 new" in first.stdout
    assert "edition 1: sent 8 message(s)" in first.stdout
    assert re.search(
        r"sign in as admin@messenger\.example\.ge with the one-time password \S+", first.stdout
    )
    caught = list_caught(local.data_dir)
    assert len(caught) == 8
    assert all(m.subject.startswith("The Tbilisi Messenger Daily: ") for m in caught)

    with web_server(local, db) as base:
        mailbox = httpx.get(f"{base}/mailbox")
        assert mailbox.status_code == 200
        keys = re.findall(r'href="/mailbox/([^"/]+)"', mailbox.text)
        assert len(keys) == 8
        page = httpx.get(f"{base}/mailbox/{keys[0]}")
        assert "List-Unsubscribe" in page.text and "Read more" in page.text
        html = httpx.get(f"{base}/mailbox/{keys[0]}/html")
        assert "sandbox" in html.headers["content-security-policy"]
        assert "Parliament adopts revised budget" in html.text
        assert httpx.get(f"{base}/mailbox/..%2Fsecret_key").status_code == 404
        feed = httpx.get(f"{base}/sample/feed.xml")
        assert feed.status_code == 200 and "<rss" in feed.text

    again = cli("demo", "--no-serve")
    assert again.exit_code == 0, again.output
    assert "sample feed: 0 new, 0 updated, 23 unchanged" in again.stdout
    assert "sample subscribers: 0 new, 8 already there, 0 subscribed" in again.stdout
    assert "sent" not in again.stdout  # the demo edition is sent once
    assert "one-time password" not in again.stdout and "tidings users list" in again.stdout
