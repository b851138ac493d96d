"""The words a newsletter shows its readers besides the news: its postal address and footer
text (both in every digest's footer), and the ``utm_source`` its article links may carry.

Each check returns the value to store (None when left empty) or raises :class:`InvalidInput`
with a sentence for the person who typed it; one home for these rules, whatever the door.
"""

import re
import unicodedata

from tidings.errors import InvalidInput

#: A postal address is a few short lines (street, town and postcode, country).
POSTAL_LINES_AT_MOST = 6
POSTAL_LINE_AT_MOST = 120
#: The footer is a sentence or a short paragraph, not a second newsletter.
FOOTER_AT_MOST = 1000
#: Analytics tools show the source as a short token; the column holds 100.
UTM_SOURCE_AT_MOST = 64
_UTM_SOURCE = re.compile(r"^[A-Za-z0-9._-]+$")
#: Format characters that spell words rather than hide or reorder them: the zero-width
#: non-joiner (Persian "می‌خواهید", Indic scripts) and joiner (emoji sequences, Indic scripts).
_JOINERS = frozenset({"\u200c", "\u200d"})


def _lines_of(raw: str) -> list[str]:
    """``raw`` as lines (any line break), each stripped of spaces at its ends."""
    return [line.strip() for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")]


def _refuse_control(text: str, what: str) -> None:
    """Refuse control and format characters (tabs, NUL, bidi overrides...) within a line: they
    would hide or reorder what readers see, and the footer is also written in the plain part.
    The joiners (:data:`_JOINERS`) are part of spelling in some scripts: they are kept."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char not in _JOINERS:
            raise InvalidInput(
                f"The {what} has an invisible control character (U+{ord(char):04X}); "
                "write it as plain text, one line per line."
            )


#: How a postal address is typed on one line (a CLI option, a one-line field), and how
#: the CLI shows it back: "14 Rustaveli Avenue | Tbilisi 0108".
LINE_SEPARATOR = " | "


def check_postal_address(raw: str | None) -> str | None:
    """The postal address as stored: its non-empty lines (line breaks, or
    :data:`LINE_SEPARATOR` between them) joined by newlines, or None."""
    parts = (part.strip() for line in _lines_of(raw or "") for part in line.split(LINE_SEPARATOR))
    lines = [part for part in parts if part]
    if not lines:
        return None
    for line in lines:
        _refuse_control(line, "postal address")
    if len(lines) > POSTAL_LINES_AT_MOST:
        raise InvalidInput(
            f"The postal address has {len(lines)} lines; at most {POSTAL_LINES_AT_MOST} are taken."
        )
    longest = max(len(line) for line in lines)
    if longest > POSTAL_LINE_AT_MOST:
        raise InvalidInput(
            f"A line of the postal address has {longest} characters; "
            f"at most {POSTAL_LINE_AT_MOST} are taken."
        )
    return "\n".join(lines)


def check_footer_text(raw: str | None) -> str | None:
    """The footer text as stored: trimmed, line breaks kept (runs of blank lines become one
    blank line), or None when empty."""
    lines = _lines_of(raw or "")
    for line in lines:
        _refuse_control(line, "footer text")
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    if not text:
        return None
    if len(text) > FOOTER_AT_MOST:
        raise InvalidInput(
            f"The footer text has {len(text):,} characters; at most {FOOTER_AT_MOST:,} are taken."
        )
    return text


def check_utm_source(raw: str | None) -> str | None:
    """The utm_source token, or None (no UTM tags on article links)."""
    token = (raw or "").strip()
    if not token:
        return None
    if len(token) > UTM_SOURCE_AT_MOST or not _UTM_SOURCE.match(token):
        raise InvalidInput(
            f"The UTM source {token[:80]!r} must be letters, digits, '-', '_' and '.', "
            f"at most {UTM_SOURCE_AT_MOST} of them (such as 'newsletter')."
        )
    return token


def postal_line(text: str | None) -> str | None:
    """A postal address as mail shows it: its lines on one line, joined by commas."""
    lines = [line.strip().rstrip(",") for line in (text or "").splitlines() if line.strip()]
    return ", ".join(lines) or None


def footer_paragraphs(text: str | None) -> tuple[str, ...]:
    """A footer text's paragraphs (blank lines between), each on one line."""
    blocks = re.split(r"\n\s*\n", (text or "").strip())
    return tuple(" ".join(block.split()) for block in blocks if block.strip())
