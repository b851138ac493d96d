import quopri
from datetime import UTC, datetime

import pytest

from tests.smtpserver import Caught
from tidings.mail.message import (
    HeaderInjection,
    MessageTemplate,
    Personalised,
    QuotedPrintableTemplate,
)
from tidings.mail.personal import SlotMarkers, SlotTemplate

DATE = datetime(2026, 6, 26, 4, 0, tzinfo=UTC)


def _template(subject: str = "The Daily Messenger: Parliament adopts budget") -> MessageTemplate:
    return MessageTemplate(
        from_name="The Messenger",
        from_address="digest@messenger.example.ge",
        reply_to="ed@messenger.example.ge",
        subject=subject,
        list_name="The Daily Messenger",
        list_id="daily.messenger.example.ge",
        date=DATE,
    )


def _personal(
    name: str | None = "Nino Beridze", html: str = "<p>Hello</p>", text: str = "Hello"
) -> Personalised:
    return Personalised(
        to_email="nino@example.ge",
        to_name=name,
        message_id="<tidings.1.ab.2@messenger.example.ge>",
        unsubscribe_url="https://news.example.ge/u/TOKEN",
        unsubscribe_mailto="mailto:unsubscribe@messenger.example.ge?subject=x",
        html_qp=QuotedPrintableTemplate(SlotTemplate((html,), ())).render({}),
        text_qp=QuotedPrintableTemplate(SlotTemplate((text,), ())).render({}),
    )


def test_headers_and_parts() -> None:
    raw = _template().build(_personal())
    message = Caught("", [], raw).message
    assert message["From"] == "The Messenger <digest@messenger.example.ge>"
    assert message["To"] == "Nino Beridze <nino@example.ge>"
    assert message["Reply-To"] == "ed@messenger.example.ge"
    assert message["Message-ID"] == "<tidings.1.ab.2@messenger.example.ge>"
    assert message["List-Id"] == "The Daily Messenger <daily.messenger.example.ge>"
    assert message["List-Unsubscribe"] == (
        "<https://news.example.ge/u/TOKEN>, <mailto:unsubscribe@messenger.example.ge?subject=x>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Precedence"] == "bulk"
    assert message["Date"] == "Fri, 26 Jun 2026 04:00:00 +0000"
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)


def test_non_ascii_is_encoded_and_no_line_is_long() -> None:
    long_html = "<p>" + "ქართული " * 2000 + "</p>"
    raw = _template("ახალი ამბები: “Panjikidze”").build(
        _personal(name="ნინო ბერიძე", html=long_html, text="სალამი " * 500)
    )
    assert raw.isascii()
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 78
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    message = Caught("", [], raw).message
    assert message["Subject"] == "ახალი ამბები: “Panjikidze”"
    assert message["To"] == "ნინო ბერიძე <nino@example.ge>"
    assert message.get_body(("html",)).get_content().strip() == long_html  # type: ignore[union-attr]


def test_line_breaks_in_header_values_are_refused() -> None:
    with pytest.raises(HeaderInjection):
        _template("Hello\r\nBcc: everyone@example.ge")
    with pytest.raises(HeaderInjection):
        _template().build(_personal(name="Nino\nBcc: x@y.ge"))


def test_same_pair_gets_the_same_message_id_on_rebuild() -> None:
    template = _template()
    first = Caught("", [], template.build(_personal())).message
    again = Caught("", [], template.build(_personal())).message
    assert first["Message-ID"] == again["Message-ID"]


def test_quoted_printable_template_round_trips_with_long_values() -> None:
    render = SlotMarkers.absent_from([])
    markers = render.personal()
    body = "<p>" + "x" * 200 + markers.email + "é" * 100 + "</p>\nline two " + markers.view_url
    slots = render.slots(body)
    values = {"email": "nino@example.ge", "view_url": "https://x.ge/" + "a" * 150}
    encoded = QuotedPrintableTemplate(slots).render(values)
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert b"\n" not in encoded.replace(b"\r\n", b"")
    decoded = quopri.decodestring(encoded).decode("utf-8").replace("\r\n", "\n")
    expected = "<p>" + "x" * 200 + values["email"] + "é" * 100 + "</p>\nline two "
    assert decoded.rstrip("\n") == expected + values["view_url"]


def test_plain_names_are_quoted_and_others_encoded() -> None:
    raw = _template().build(_personal(name='Nino "the reader" Beridze, Jr.'))
    assert b'To: "Nino \\"the reader\\" Beridze, Jr." <nino@example.ge>' in raw
    assert Caught("", [], raw).message["To"].addresses[0].display_name == (
        'Nino "the reader" Beridze, Jr.'
    )
