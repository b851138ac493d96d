"""Personal values in quoted-printable bodies: a one-line value (the fast way) and a value kept
for many readers encode exactly as a fresh encoding would, and decode back to the value."""

import binascii
import quopri

import pytest

from tidings.mail.message import QuotedPrintableTemplate
from tidings.mail.personal import SlotTemplate

VALUES = [
    "nino@example.ge",
    "Hello Nino,",
    "https://news.example.ge/u/" + "Ab-_9" * 30,  # wraps: soft line breaks
    "a=b ends in a space ",
    "tab\tin the middle\t",
    "გამარჯობა ნინო, " * 8,
    ".starts with a dot",
    "",
]
BODY = SlotTemplate(("<p>", "</p>\n<p>", "</p>"), ("greeting", "email"))


def _reference(value: str) -> bytes:
    """The piece as encoded before the one-line way: CRLF first, then any bare LF to CRLF."""
    encoded = binascii.b2a_qp(value.encode("utf-8"), istext=True)
    encoded = encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return encoded if encoded.endswith(b"\r\n") else encoded + b"=\r\n"


@pytest.mark.parametrize("value", VALUES)
def test_a_one_line_value_encodes_as_before_and_decodes_back(value: str) -> None:
    template = QuotedPrintableTemplate(SlotTemplate(("", ""), ("email",)))
    encoded = template.render({"email": value})
    assert encoded == _reference("") + _reference(value) + _reference("")
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert quopri.decodestring(encoded).decode("utf-8") == value


@pytest.mark.parametrize("tail", ["9", ".", "é", " ", "="])
def test_a_last_line_of_76_octets_gets_its_soft_break_on_a_line_of_its_own(tail: str) -> None:
    # b2a_qp fills a line to 76 octets, so the soft break that joins the next piece must not
    # be added to that line (77), nor split the last character's "=XX" escape.
    for length in range(60, 200):
        value = ("https://news.example.ge/u/" + "Ab-_9" * 40)[:length] + tail
        encoded = QuotedPrintableTemplate(SlotTemplate(("", ""), ("email",))).render(
            {"email": value}
        )
        assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
        assert quopri.decodestring(encoded).decode("utf-8") == value


def test_kept_values_render_the_same_bytes_for_every_reader() -> None:
    fresh = QuotedPrintableTemplate(BODY)
    keeping = QuotedPrintableTemplate(BODY, frozenset({"greeting"}))
    for round_ in range(3):
        for index, greeting in enumerate(VALUES):
            values = {"greeting": greeting, "email": f"reader{index}.{round_}@example.ge"}
            assert keeping.render(values) == fresh.render(values)


def test_a_value_with_line_breaks_keeps_crlf_only() -> None:
    encoded = QuotedPrintableTemplate(BODY).render({"greeting": "a\nb\r\nc", "email": "x"})
    assert b"\n" not in encoded.replace(b"\r\n", b"")
    assert quopri.decodestring(encoded).decode().startswith("<p>a\r\nb\r\nc")
