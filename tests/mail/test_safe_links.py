"""Safe links in real mail: a real SMTP server is refused while BASE_URL is not https on a
public host (one line naming the setting), unless TIDINGS_ALLOW_INSECURE_LINKS; the built-in
catcher never is. Where sending starts: the worker's transports, one-off sends, and
``tidings run`` / ``tidings worker`` at start (exit 1, one line, no traceback)."""

import asyncio

import pytest

from tests.conftest import Cli
from tests.smtpserver import smtp_server
from tidings.config import Settings
from tidings.errors import ConfigError
from tidings.mail.direct import send_now
from tidings.mail.transport import check_links, insecure_links, smtp_target

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

REFUSED = [
    "http://news.example.org",
    "http://127.0.0.1:8000",
    "https://127.0.0.1",
    "https://10.0.0.5",
    "https://192.168.1.20:8443",
    "https://169.254.0.9",
    "https://0.0.0.0",
    "https://localhost",
    "https://LOCALHOST.",
    "https://app.localhost",
    "https://[::1]",
    "https://[fe80::1]",
    "https://[fd00::5]",
    "https://[::ffff:127.0.0.1]",
]


def _real(settings: Settings, base_url: str, allow: bool = False) -> Settings:
    return settings.model_copy(
        update={
            "smtp_url": "smtp://mail.example.org:25",
            "base_url": base_url,
            "allow_insecure_links": allow,
        }
    )


def _line(base_url: str) -> str:
    return (
        f"TIDINGS_BASE_URL is {base_url}: links in real mail must be https on a public host "
        "(RFC 8058 one-click needs https); set TIDINGS_ALLOW_INSECURE_LINKS=true to send anyway"
    )


@pytest.mark.parametrize("base_url", REFUSED)
def test_a_real_server_is_refused_for_links_readers_cannot_use(
    settings: Settings, base_url: str
) -> None:
    real = _real(settings, base_url)
    assert insecure_links(base_url)
    with pytest.raises(ConfigError) as refused:
        smtp_target(real)
    assert str(refused.value) == _line(real.base_url)
    with pytest.raises(ConfigError):
        check_links(real)


@pytest.mark.parametrize(
    "base_url",
    ["https://news.example.org", "https://news.example.org:8443/tidings", "https://8.8.8.8"],
)
def test_https_on_a_public_host_passes(settings: Settings, base_url: str) -> None:
    real = _real(settings, base_url)
    assert not insecure_links(base_url)
    assert smtp_target(real).host == "mail.example.org"


def test_the_setting_lets_insecure_links_through(settings: Settings) -> None:
    real = _real(settings, "http://127.0.0.1:8000", allow=True)
    assert smtp_target(real).host == "mail.example.org"


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8000", "https://localhost"])
def test_the_catcher_is_never_refused(settings: Settings, base_url: str) -> None:
    catcher = settings.model_copy(
        update={"smtp_url": "", "base_url": base_url, "allow_insecure_links": False}
    )
    check_links(catcher)
    assert smtp_target(catcher).port == settings.catcher_port


def test_a_one_off_send_is_refused_before_it_connects(settings: Settings) -> None:
    with smtp_server() as (handler, port):
        real = settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{port}", "allow_insecure_links": False}
        )
        with pytest.raises(ConfigError, match=r"TIDINGS_BASE_URL is http://127\.0\.0\.1:8000"):
            asyncio.run(
                send_now(real, "news@example.org", "reader@example.org", b"Subject: x\r\n\r\nx")
            )
        assert handler.commands == [] and handler.caught == []
        allowed = real.model_copy(update={"allow_insecure_links": True})
        reply = asyncio.run(
            send_now(allowed, "news@example.org", "reader@example.org", b"Subject: x\r\n\r\nx")
        )
        assert reply.code == 250 and handler.recipients() == ["reader@example.org"]


@pytest.mark.parametrize("command", [["worker", "--drain"], ["run", "--port", "1"]])
def test_worker_and_run_stop_at_start_with_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("TIDINGS_SMTP_URL", "smtp://mail.example.org:25")
    monkeypatch.setenv("TIDINGS_BASE_URL", "https://10.0.0.5")
    monkeypatch.setenv("TIDINGS_ALLOW_INSECURE_LINKS", "false")
    result = cli(*command)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {_line('https://10.0.0.5')}."], result.output  # a sentence
    assert "Traceback" not in result.output
