"""Hostile text for the slot tests, and a check that a reader's data sits only in the slots
the digest template made.

Each string is one that an old token scheme, a guessed marker, a template engine or a
format string could read as a personal slot; all must reach readers exactly as written.
"""

import html
import re
from dataclasses import dataclass
from email.message import EmailMessage

from tidings.mail.personal import greeting
from tidings.paths import templates_dir

NAMES = (
    "greeting_name",
    "email",
    "unsubscribe_url",
    "preferences_url",
    "view_url",
    "greeting",
    "signed_up",
)
GUESSED_NONCE = "0123456789abcdef" * 2
#: Placeholders as the issue saw them, the nonce form with a guessed nonce, the stored slot
#: line, case and entity look-alikes, and other engines' syntax.
PLACEHOLDERS = (
    *(f"ZZtidings_{name}_ZZ" for name in NAMES),
    # The slots that carry a reader's data (all five would pass a title's 500 characters).
    *(f"ZZtidings_{GUESSED_NONCE}_{name}_ZZ" for name in NAMES[1:4]),
    f"tidings-slots:1:{GUESSED_NONCE}",
    "ZZTIDINGS_EMAIL_ZZ",
    "{{ personal.email }}",
    "{personal.email}",
    "$email",
    "%(email)s",
)
TRACKER = (
    "https://tracker.example.net/track?who=ZZtidings_email_ZZ"
    "&prefs=ZZtidings_preferences_url_ZZ&u=ZZtidings_unsubscribe_url_ZZ"
    f"&n=ZZtidings_{GUESSED_NONCE}_email_ZZ"
)
SLOT_LINE = re.compile(r"tidings-slots:1:([0-9a-f]{32})\n")


def sentence(field: str) -> str:
    """A field's value that carries every placeholder, words short enough not to be wrapped."""
    return f"{field}: " + " ".join(PLACEHOLDERS)


def article_fields(n: int) -> dict[str, str]:
    """Every article field, hostile: url, title, byline, section, summary, content_html."""
    return {
        "url": f"{TRACKER}&story={n}",
        "title": sentence(f"Title {n}"),
        "author": sentence("Byline"),
        "section": sentence("Section"),
        "summary": sentence("Summary"),
        "content_html": f"<p>{html.escape(sentence('Body'))}</p>",
    }


def intro_markdown() -> str:
    """An editor's intro that uses Markdown around the placeholders."""
    return (
        f"**{sentence('Intro')}**\n\n"
        f"[a link](https://example.net/?p=ZZtidings_preferences_url_ZZ) `ZZtidings_email_ZZ` "
        "ZZtidings&#95;unsubscribe&#95;url&#95;ZZ\n"
    )


def subject() -> str:
    return "Special: ZZtidings_email_ZZ ZZtidings_unsubscribe_url_ZZ {{ personal.email }}"


@dataclass(frozen=True)
class Slots:
    """How often the digest template shows each personal value, in each part."""

    html: dict[str, int]
    text: dict[str, int]

    @classmethod
    def of_digest(cls) -> "Slots":
        folder = templates_dir() / "email" / "digest"
        html_source = (folder / "body.html").read_text()
        text_source = (folder / "body.txt").read_text()

        def uses(source: str, name: str) -> int:
            return len(re.findall(rf"personal\.{name}\b", source))

        return cls(
            {name: uses(html_source, name) for name in NAMES},
            {name: uses(text_source, name) for name in NAMES},
        )


def parts(message: EmailMessage) -> tuple[str, str]:
    """The HTML part with entities decoded, and the text part, as a reader sees them."""
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    return html.unescape(html_part.get_content()), text_part.get_content()


def flat(text: str) -> str:
    """Without white space, upper-cased: the text part wraps lines (at hyphens too) and
    shows the section in capitals."""
    return "".join(text.split()).upper()


def assert_parts_only_in_slots(
    html_text: str,
    text: str,
    reader: tuple[str, str | None],
    literals: list[str],
    nonce: str | None = None,
) -> None:
    """In both parts (the HTML one with entities decoded), the reader's address, their
    greeting (by first name) and the token links appear exactly as often as the template put
    them, no marker of the edition's slot ``nonce`` is left, and every hostile literal
    arrived as written."""
    email, name = reader
    slots = Slots.of_digest()
    for body, counts in ((html_text, slots.html), (text, slots.text)):
        seen = {
            "email": body.count(email),
            "greeting": body.count(greeting(name)),
            "unsubscribe_url": body.count("/u/"),
            "preferences_url": body.count("/preferences/"),
        }
        assert seen == {key: counts[key] for key in seen}, f"{seen} in {body[-3000:]}"
        assert nonce is None or nonce not in body.lower()
    for literal in literals:
        assert literal in html_text, f"not as written in the HTML part: {literal}"
        assert flat(literal) in flat(text), f"not as written in the text part: {literal}"


def assert_only_in_slots(
    message: EmailMessage,
    reader: tuple[str, str | None],
    literals: list[str],
    nonce: str | None = None,
) -> None:
    """:func:`assert_parts_only_in_slots` for a message, whose one-click link (in the
    List-Unsubscribe header) is in the body exactly where the template put it."""
    unsubscribe = re.search(r"<(http[^>]+/u/[^>]+)>", message["List-Unsubscribe"])
    assert unsubscribe is not None
    html_text, text = parts(message)
    assert_parts_only_in_slots(html_text, text, reader, literals, nonce)
    slots = Slots.of_digest()
    assert html_text.count(unsubscribe.group(1)) == slots.html["unsubscribe_url"]
    assert text.count(unsubscribe.group(1)) == slots.text["unsubscribe_url"]
    assert reader[0] not in message["Subject"]
