import re

import httpx
import pytest

from tests.conftest import Cli
from tests.smtpserver import free_port
from tests.web.console import sign_in
from tests.web.forms import form_to
from tests.webserver import web_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.deliver.catcher import list_caught
from tidings.sample.loader import DEMO_ADMIN


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
    signed = re.search(r"with the one-time password (\S+)", first.stdout)
    assert signed and "sign in as admin@messenger.example.ge" in first.stdout
    caught = list_caught(local.data_dir)
    assert len(caught) == 8
    assert all(m.subject.startswith("The Tbilisi Messenger Daily: ") for m in caught)

    with web_server(local, db) as base:
        anonymous = httpx.get(f"{base}/mailbox", follow_redirects=False)
        assert anonymous.status_code == 303  # caught mail holds live links: console only
        client = sign_in(base, DEMO_ADMIN, signed.group(1))
        page = client.get("/admin/password")
        token = form_to(page.text, "/admin/password").hidden["csrf_token"]
        new = "a-demo-password-of-my-own"
        changed = client.post(
            "/admin/password",
            data={"csrf_token": token, "current": signed.group(1), "new": new, "repeat": new},
        )
        assert changed.status_code == 303
        mailbox = client.get("/mailbox")
        assert mailbox.status_code == 200
        keys = re.findall(r'href="/mailbox/([^"/]+)"', mailbox.text)
        assert len(keys) == 8
        page = client.get(f"/mailbox/{keys[0]}")
        assert "List-Unsubscribe" in page.text and "Read more" in page.text
        html = client.get(f"/mailbox/{keys[0]}/html")
        assert "sandbox" in html.headers["content-security-policy"]
        assert "Parliament adopts revised budget" in html.text
        assert client.get("/mailbox/..%2Fsecret_key").status_code == 404
        feed = httpx.get(f"{base}/sample/feed.xml")
        assert feed.status_code == 200 and "<rss" in feed.text

    again = cli("demo", "--no-serve")
    assert again.exit_code == 0, again.output
    assert "sample feed: 0 new, 0 updated, 23 unchanged" in again.stdout
    assert "sample subscribers: 0 new, 8 already there, 0 subscribed" in again.stdout
    assert "sent" not in again.stdout  # the demo edition is sent once
    assert "one-time password" not in again.stdout and "tidings users list" in again.stdout
