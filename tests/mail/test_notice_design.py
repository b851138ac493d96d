"""The confirmation and welcome mails as a mail client gets them: one MIME-Version (on the
message, none in a part), every text colour at 4.5:1 or more against its background in light
and in dark mode, a fluid card that holds without the <style> block, a table-cell button,
and a fallback link that wraps."""

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser

import pytest

from tests.compose.slots import PLACEHOLDERS
from tests.contrast import contrast
from tidings.audience.welcome import LatestEdition, WelcomeDue, welcome_mail
from tidings.config import Settings
from tidings.db.models import Cadence, Newsletter
from tidings.mail.notice import Notice, notice_message
from tidings.mail.tokens import Purpose, sign

SETTINGS = Settings(secret_key="notice-design-secret-key-" + "x" * 32)
#: The longest confirmation link there is: the largest subscription id's token.
CONFIRM_URL = "https://news.example.ge/confirm/" + sign(SETTINGS.secret, Purpose.confirm, 2**31 - 1)
HOSTILE = " ".join(PLACEHOLDERS) + " {{ email }} {email} $email"


def _newsletter(name: str = "The Daily Messenger") -> Newsletter:
    return Newsletter(
        slug="daily",
        name=name,
        from_name="The Messenger",
        from_address="digest@messenger.example.ge",
        reply_to=None,
        schedule_cron="0 8 * * *",
        timezone="Asia/Tbilisi",
        reader_time=False,
        postal_address="14 Rustaveli Avenue, Tbilisi 0108, Georgia",
        footer_text=None,
    )


def _confirmation() -> bytes:
    notice = Notice("The Messenger", "digest@messenger.example.ge", None, "nino@example.ge", None)
    context = {
        "newsletter": _newsletter(),
        "name": "Nino",
        "email": "nino@example.ge",
        "confirm_url": CONFIRM_URL,
    }
    return notice_message(SETTINGS, "confirm", notice, context)


def _welcome(name: str | None = "Nino", subject: str = "Panjikidze meets envoys") -> bytes:
    latest = LatestEdition(
        subject, "https://news.example.ge/archive/daily/7", "Monday, 7 December 2026"
    )
    due = WelcomeDue(
        subscription_id=987654,
        email="nino@example.ge",
        name=name,
        previous_sent_at=None,
        claimed_at=datetime.now(UTC),
        newsletter=_newsletter(),
        latest=latest,
    )
    return welcome_mail(SETTINGS, due)[1]


MAILS = {"confirm": _confirmation, "welcome": _welcome}


def _parsed(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _html(raw: bytes) -> str:
    body = _parsed(raw).get_body(("html",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


@pytest.mark.parametrize("kind", MAILS)
def test_mime_version_is_on_the_message_only(kind: str) -> None:
    raw = MAILS[kind]()
    assert raw.count(b"MIME-Version:") == 1
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nMIME-Version: 1.0\r\n" in head + b"\r\n"
    message = _parsed(raw)
    parts = list(message.walk())[1:]
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert "MIME-Version" not in part
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


# --- colours --------------------------------------------------------------------------


def test_the_contrast_formula_knows_the_extremes() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777", "#fff") == pytest.approx(4.48, abs=0.01)  # just too light


def _rules(css: str) -> dict[str, dict[str, str]]:
    """selector -> its declarations, for a flat list of rules (no nesting)."""
    found: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = {
            name.strip(): value.replace("!important", "").strip()
            for name, _, value in (d.partition(":") for d in body.split(";") if ":" in d)
        }
        for selector in selectors.split(","):
            found.setdefault(" ".join(selector.split()), {}).update(declarations)
    return found


def _dark(html: str) -> dict[str, dict[str, str]]:
    start = html.index("@media (prefers-color-scheme: dark)")
    block = html[html.index("{", start) + 1 :]
    depth = 1
    for end, char in enumerate(block):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return _rules(block[:end])
    raise AssertionError("the dark block never closes")


#: (text, background) selectors of the dark palette: every text on the surface it sits on.
DARK_PAIRS = [
    ("body", "body"),
    ("body", ".container"),
    (".masthead", ".container"),
    (".body", ".container"),
    (".body a", ".container"),
    (".body a.button", ".button-cell"),
    (".small", ".container"),
    (".footer", ".container"),
    (".body .small a", ".container"),
    (".footer a", ".container"),
]


@pytest.mark.parametrize("kind", MAILS)
def test_dark_mode_text_is_at_least_4_5_to_1(kind: str) -> None:
    rules = _dark(_html(MAILS[kind]()))
    ratios = {
        (text, surface): contrast(rules[text]["color"], rules[surface]["background-color"])
        for text, surface in DARK_PAIRS
    }
    low = {pair: round(ratio, 2) for pair, ratio in ratios.items() if ratio < 4.5}
    assert low == {}
    # The button's own colour and the cell's agree, so no edge of another shade shows.
    assert rules[".button"]["background-color"] == rules[".button-cell"]["background-color"]


class _Styles(HTMLParser):
    """Each element's inline style, with its classes and the background it is drawn on."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []  # the background of each open element
        self.seen: list[tuple[str, str, dict[str, str], str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        style = {
            name.strip(): value.strip()
            for name, _, value in (
                d.partition(":") for d in (found.get("style") or "").split(";") if ":" in d
            )
        }
        under = self.stack[-1] if self.stack else "#ffffff"
        self.seen.append((tag, found.get("class") or "", style, under))
        if tag not in ("br", "meta", "img"):
            self.stack.append(style.get("background-color", under))

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("br", "meta", "img") and self.stack:
            self.stack.pop()


@pytest.mark.parametrize("kind", MAILS)
def test_light_text_is_at_least_4_5_to_1_on_what_it_sits_on(kind: str) -> None:
    parser = _Styles()
    parser.feed(_html(MAILS[kind]()))
    checked = [
        (tag, classes, style["color"], style.get("background-color", under))
        for tag, classes, style, under in parser.seen
        if "color" in style and "preheader" not in classes
    ]
    assert len(checked) >= 6
    low = [(t, c, fg, bg) for t, c, fg, bg in checked if contrast(fg, bg) < 4.5]
    assert low == []


@pytest.mark.parametrize("kind", MAILS)
def test_fluid_card_and_table_cell_button_hold_without_the_style_block(kind: str) -> None:
    html = _html(MAILS[kind]())
    card = re.search(r'<table role="presentation" class="container" style="([^"]*)"', html)
    assert card is not None
    assert "width:100%" in card.group(1) and "max-width:600px" in card.group(1)
    assert '<!--[if mso]><table role="presentation" width="600"' in html  # Outlook's wrapper
    button = re.search(r'<td class="button-cell" style="([^"]*)">\s*<a class="button"', html)
    assert button is not None and "background-color:#8c1c13" in button.group(1)
    assert " bgcolor=" not in html
    assert "<style>" in html and "@media (prefers-color-scheme: dark)" in html


def test_the_confirmations_fallback_url_is_a_link_in_short_lines() -> None:
    """The token on lines of its own: short enough for a phone (at most 32 characters, under
    300 px at the link's 12 px), with no CSS word-break, which Yahoo ignores."""
    html = _html(_confirmation())
    link = re.search(r'<a class="fallback" href="([^"]+)"[^>]*>(.*?)</a>', html)
    assert link is not None and link.group(1) == CONFIRM_URL
    lines = link.group(2).split("<br>")
    assert "".join(lines) == CONFIRM_URL
    assert lines[0] == "https://news.example.ge/confirm/"
    assert len(lines) == 3 and max(len(line) for line in lines[1:]) <= 32
    assert "word-break" not in html


def test_the_welcome_shows_names_and_subjects_as_written() -> None:
    raw = _welcome(name=f"Nino {HOSTILE}", subject=f"Envoys {HOSTILE}")
    message = _parsed(raw)
    text = message.get_body(("plain",))
    assert text is not None
    shown = " ".join(text.get_content().split())
    assert f"Nino {HOSTILE}" in shown and f"Envoys {HOSTILE}" in shown
    assert shown.count("nino@example.ge") == 2  # the greeting line and the footer, not more
    assert "14 Rustaveli Avenue, Tbilisi 0108, Georgia" in shown
    unsubscribe = " ".join(message["List-Unsubscribe"].split())
    assert re.fullmatch(
        r"<https?://\S+/u/\S+>, <mailto:u-987654-\S+@\S+\?subject=unsubscribe>", unsubscribe
    ), unsubscribe
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "The Daily Messenger <daily.messenger.example.ge>"
    assert "987654" not in message["Message-ID"]  # no subscription id in it


def test_the_welcome_names_the_schedule_on_the_readers_clock() -> None:
    newsletter = _newsletter()
    newsletter.reader_time = True
    due = WelcomeDue(987654, "nino@example.ge", None, None, datetime.now(UTC), newsletter, None)
    text = _parsed(welcome_mail(SETTINGS, due)[1]).get_body(("plain",))
    assert text is not None
    shown = " ".join(text.get_content().split())
    assert "Every day at 08:00 your time." in shown and "Asia/Tbilisi" not in shown
    assert "There is no edition yet" in shown


#: A name the email package's folder once turned into a group and two mailboxes.
ODD_NAME = "მესენჯერი News: Tbilisi, Georgia"


@pytest.mark.parametrize("kind", MAILS)
def test_names_with_specials_stay_one_mailbox(kind: str) -> None:
    newsletter = _newsletter(name=ODD_NAME)
    newsletter.from_name = ODD_NAME
    if kind == "confirm":
        notice = Notice(ODD_NAME, "digest@messenger.example.ge", None, "nino@example.ge", ODD_NAME)
        context = {"newsletter": newsletter, "name": "Nino", "email": "nino@example.ge"}
        raw = notice_message(SETTINGS, "confirm", notice, context | {"confirm_url": CONFIRM_URL})
    else:
        due = WelcomeDue(
            987654, "nino@example.ge", ODD_NAME, None, datetime.now(UTC), newsletter, None
        )
        raw = welcome_mail(SETTINGS, due)[1]
    message = _parsed(raw)
    for header, address in (("From", "digest@messenger.example.ge"), ("To", "nino@example.ge")):
        mailboxes = message[header].addresses
        assert len(mailboxes) == 1, (header, message[header])
        # Python's parser keeps the space between two encoded words that RFC 2047 drops.
        shown = " ".join(mailboxes[0].display_name.split())
        assert (shown, mailboxes[0].addr_spec) == (ODD_NAME, address)
    assert raw.count(b"\nFrom: ") + raw.startswith(b"From: ") == 1
    if kind == "welcome":
        list_id = " ".join(str(message["List-Id"]).split())
        assert list_id == f"{ODD_NAME} <daily.messenger.example.ge>", list_id


def test_the_welcome_footer_is_the_digests_footer_and_fits_the_text_lines() -> None:
    newsletter = _newsletter()
    newsletter.postal_address = "14 Rustaveli Avenue\nTbilisi 0108\nGeorgia"
    newsletter.footer_text = ("A long word of thanks " * 45).strip() + "\n\nSecond paragraph."
    due = WelcomeDue(987654, "nino@example.ge", None, None, datetime.now(UTC), newsletter, None)
    message = _parsed(welcome_mail(SETTINGS, due)[1])
    text = message.get_body(("plain",))
    assert text is not None
    lines = text.get_content().splitlines()
    assert max(len(line) for line in lines if "://" not in line) <= 72  # links stay whole
    assert "14 Rustaveli Avenue, Tbilisi 0108, Georgia" in lines
    assert "Second paragraph." in lines
    assert "14 Rustaveli Avenue, Tbilisi 0108, Georgia" in _html(welcome_mail(SETTINGS, due)[1])


def test_a_weekly_reader_is_told_the_weekly_schedule() -> None:
    newsletter = _newsletter()
    newsletter.weekly_schedule_cron = "0 9 * * 1"
    due = WelcomeDue(
        987654, "nino@example.ge", None, None, datetime.now(UTC), newsletter, None, Cadence.weekly
    )
    text = _parsed(welcome_mail(SETTINGS, due)[1]).get_body(("plain",))
    assert text is not None
    shown = " ".join(text.get_content().split())
    assert "Every Monday at 09:00 (Asia/Tbilisi)" in shown and "08:00" not in shown
