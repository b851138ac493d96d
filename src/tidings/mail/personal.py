"""Per-subscriber slots of a rendered edition: only a template can make one.

Rendering shows each personal value (``{{ personal.email }}``) as a slot marker that carries
a nonce drawn for that render and checked absent from every content value, so no text from a
feed, the API, the CLI or an editor can make a slot, whatever it contains: placeholder-like
text in content stays as written. Each rendered part is then split once into literal
segments and slot names (:class:`SlotTemplate`); per subscriber only segments and values are
joined, the values HTML-escaped in the HTML part so that none can break the inlined markup.

Stored form (``editions.html_body``/``text_body``): a first line ``tidings-slots:1:<nonce>``
written by the renderer, then the part with its markers. Only that line names the nonce, and
content never comes first, so stored content cannot become a slot either.
"""

import html
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

from tidings.errors import InvalidInput


@dataclass(frozen=True)
class Personal:
    """The values that differ per subscriber (or per view)."""

    #: The reader's name as stored (older templates and stored editions show it).
    greeting_name: str
    email: str
    unsubscribe_url: str
    preferences_url: str
    view_url: str
    #: The whole greeting: "Hello Nino," by the first name, or "Hello," (:func:`greeting`).
    greeting: str = ""
    #: Why the reader gets the mail: "You get this mail because you signed up on ...".
    signed_up: str = ""


def first_name(name: str | None) -> str | None:
    """The first word of a reader's name, or None when there is no name that reads as one
    (empty, or an address typed as a name: nobody is greeted as "reader0@example.ge")."""
    words = (name or "").split()
    if not words or "@" in words[0] or not any(c.isalpha() for c in words[0]):
        return None
    return words[0].strip(",;:")


def greeting(name: str | None) -> str:
    """ "Hello Nino," by the reader's first name, else a greeting without one."""
    first = first_name(name)
    return f"Hello {first}," if first else "Hello,"


def signed_up_line(moment: datetime | None, zone: str = "UTC") -> str:
    """Why a reader gets a mail, with the day they signed up (in ``zone``) when known."""
    if moment is None:
        return "You get this mail because you signed up"
    local = moment.astimezone(ZoneInfo(zone))
    return f"You get this mail because you signed up on {local:%B} {local.day}, {local.year}"


SLOT_NAMES = tuple(f.name for f in fields(Personal))
_NAMES = "|".join(SLOT_NAMES)
_NONCE = re.compile(r"[0-9a-f]{32}")
_STORED = re.compile(rf"tidings-slots:1:({_NONCE.pattern})\n")
#: The fixed tokens of editions stored before slots had a nonce; only the archive, which fills
#: every slot with neutral values, still reads them as slots.
LEGACY_TOKEN = re.compile(rf"ZZtidings_({_NAMES})_ZZ")


def _new_nonce() -> str:
    return secrets.token_hex(16)


def _marker_pattern(nonce: str) -> "re.Pattern[str]":
    return re.compile(rf"ZZtidings_{nonce}_({_NAMES})_ZZ")


def values_of(personal: Personal, *, escape: bool) -> dict[str, str]:
    """The personal values by slot name, HTML-escaped with ``escape``."""
    values = {name: getattr(personal, name) for name in SLOT_NAMES}
    if escape:
        return {name: html.escape(value, quote=True) for name, value in values.items()}
    return values


@dataclass(frozen=True)
class SlotTemplate:
    """A rendered part split into literal segments with one slot between each two."""

    literals: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def split(cls, body: str, pattern: "re.Pattern[str]") -> "SlotTemplate":
        """Cut ``body`` at each match of ``pattern`` (whose one group is the slot name)."""
        pieces = pattern.split(body)
        return cls(tuple(pieces[0::2]), tuple(pieces[1::2]))

    @classmethod
    def load(cls, stored: str, *, legacy_tokens: bool = False) -> "SlotTemplate":
        """A stored part's segments and slots. A part stored without the slot line has no
        slots, unless ``legacy_tokens`` (neutral values only) reads the old fixed tokens."""
        found = _STORED.match(stored)
        if found is not None:
            return cls.split(stored[found.end() :], _marker_pattern(found.group(1)))
        if legacy_tokens:
            return cls.split(stored, LEGACY_TOKEN)
        return cls((stored,), ())

    def fill(self, values: Mapping[str, str]) -> str:
        """The part with ``values`` (already escaped as the part needs) in its slots."""
        parts = [self.literals[0]]
        for name, literal in zip(self.names, self.literals[1:], strict=True):
            parts.append(values[name])
            parts.append(literal)
        return "".join(parts)


class TemplateAltersSlot(InvalidInput):
    """A template changed a personal value (``|upper``, ``|truncate``...), so its slot would
    not be filled: templates may only show personal values as they are."""


@dataclass(frozen=True)
class SlotMarkers:
    """The slot markers of one render, under a nonce that no content value contains."""

    nonce: str

    @classmethod
    def absent_from(
        cls, content: Iterable[str], draw: Callable[[], str] = _new_nonce
    ) -> "SlotMarkers":
        """Markers whose nonce (drawn after the content is fixed) is in no content value."""
        texts = [text.lower() for text in content]
        while True:
            nonce = draw()
            if not _NONCE.fullmatch(nonce):
                raise ValueError(f"a slot nonce is 32 lowercase hex digits, not {nonce!r}")
            if not any(nonce in text for text in texts):
                return cls(nonce)

    def personal(self) -> Personal:
        """A :class:`Personal` whose values are this render's slot markers."""
        return Personal(**{name: f"ZZtidings_{self.nonce}_{name}_ZZ" for name in SLOT_NAMES})

    def slots(self, rendered: str) -> SlotTemplate:
        """Split a rendered part; every trace of the nonce must be a whole marker."""
        template = SlotTemplate.split(rendered, _marker_pattern(self.nonce))
        if any(self.nonce in literal.lower() for literal in template.literals):
            raise TemplateAltersSlot("a template changes a personal value; show it as it is")
        return template

    def stored(self, rendered: str) -> str:
        """The stored form of a rendered part: the slot line, then the part."""
        self.slots(rendered)
        return f"tidings-slots:1:{self.nonce}\n{rendered}"


#: Elements a personal value's text may take with it: the smallest one around the value.
_BLOCKS = frozenset(
    {"p", "div", "td", "th", "tr", "li", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6"}
    | {"blockquote", "section", "article", "header", "footer", "aside", "address", "center"}
    | {"table", "tbody", "thead", "tfoot", "ul", "ol", "dl"}
)
_NEVER_REMOVED = frozenset({"html", "head", "body"})
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
    | {"track", "wbr"}
)
#: An element that closes one of these when it opens (HTML's implied end tags).
_CLOSES = {"p": {"p"}, "li": {"li"}, "td": {"td", "th"}, "th": {"td", "th"}, "tr": {"tr"}}
#: Left in an element after its personal parts went: separators, not content.
_SEPARATORS = re.compile(r"[\s\u00b7|\u2022\u2013\u2014,.:;-]+")
_TAG = re.compile(r"<!--.*?-->|<[^>]*>", re.S)
#: What a personal place shows in the public copy when it cannot be taken out whole (a
#: template's odd spot: the title, an element that also holds stories).
_NEUTRAL = Personal(greeting_name="", email="", unsubscribe_url="", preferences_url="", view_url="")


@dataclass
class _Element:
    tag: str
    start: int  # where its start tag begins
    open_end: int  # just after its start tag
    end: int  # just after its end tag (the document's end when never closed)
    close: int  # where its end tag begins (``end`` when it has none)
    parent: "_Element | None"
    children: list["_Element"]


class _Outline(HTMLParser):
    """Each element's start and end offsets in a document, for cutting pieces out of it
    without re-serialising the rest (content stays byte for byte as stored)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self._lines = [0]
        self._lines += [m.end() for m in re.finditer("\n", text)]
        self.root = _Element("#document", 0, 0, len(text), len(text), None, [])
        self._open: list[_Element] = [self.root]
        self.feed(text)
        self.close()

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._lines[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self._offset()
        raw = self.get_starttag_text() or ""
        while self._open[-1].tag in _CLOSES.get(tag, ()):
            closed = self._open.pop()
            closed.end = closed.close = start
        end = self.root.end
        element = _Element(tag, start, start + len(raw), end, end, self._open[-1], [])
        self._open[-1].children.append(element)
        if tag not in _VOID and not raw.endswith("/>"):
            self._open.append(element)
        else:
            element.end = element.close = element.open_end

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # "<x/>" opens and closes x, and nothing else

    def handle_endtag(self, tag: str) -> None:
        if not any(e.tag == tag for e in self._open[1:]):
            return  # a stray end tag closes nothing
        start = self._offset()
        text_end = self.rawdata.find(">", start)
        while True:
            element = self._open.pop()
            element.close = start
            element.end = (text_end + 1) if element.tag == tag else start
            if element.tag == tag:
                return

    def innermost(self, position: int) -> _Element:
        """The deepest element whose span holds ``position``."""
        found = self.root
        while True:
            inner = next((c for c in found.children if c.start <= position < c.end), None)
            if inner is None:
                return found
            found = inner


def _visible(text: str, element: _Element, cuts: list[tuple[int, int]]) -> bool:
    """Whether ``element`` still shows anything (text beyond separators, an image) once the
    ``cuts`` are made."""
    kept, at = [], element.open_end
    for start, end in sorted(cuts):
        if element.open_end <= start < element.end:
            kept.append(text[at:start])
            at = max(at, end)
    kept.append(text[at : max(at, element.end)])
    inside = "".join(kept)
    if "<img" in inside.lower():
        return True
    words = html.unescape(_TAG.sub("", inside))
    return _SEPARATORS.sub("", words) != ""


def _holds_blocks(element: _Element) -> bool:
    return any(c.tag in _BLOCKS or _holds_blocks(c) for c in element.children)


def _place(outline: _Outline, text: str, position: int) -> _Element | None:
    """The element a personal value at ``position`` takes out with it, or None (neutral).

    A value inside a start tag (a link's address) takes its element; one in text takes the
    smallest block around it, unless that block also holds other blocks (stories)."""
    element = outline.innermost(position)
    if element.start <= position < element.open_end:
        return None if element.tag in _NEVER_REMOVED else element
    while element.parent is not None and element.tag not in _BLOCKS:
        if element.tag in _NEVER_REMOVED or element.tag == "title":
            return None
        element = element.parent
    if element.parent is None or _holds_blocks(element):
        return None
    return element


def public_copy(stored: str, before: str = "", after: str = "") -> str:
    """A stored HTML part for everyone to read (the public archive): every element that
    shows a personal value (the greeting, the reader's address, the unsubscribe, preference
    and view links) taken out, with what it leaves empty; ``before`` and ``after`` (HTML)
    first and last in the body.

    The personal places are found by markers under a fresh nonce that no stored text
    contains, so content that looks like a marker stays as written; a place that cannot be
    taken out whole (a personal value in the title) shows an empty value."""
    template = SlotTemplate.load(stored, legacy_tokens=True)
    markers = SlotMarkers.absent_from(template.literals)
    text = template.fill(values_of(markers.personal(), escape=False))
    try:
        outline = _Outline(text)
    except AssertionError:  # html.parser's answer to a declaration it cannot read ("<![ x")
        # Nothing is cut: every personal place shows its neutral (empty) value instead.
        return _cut(text, [], list(zip(_tag_span(text), (before, after), strict=True)), markers)
    cuts: list[tuple[int, int]] = []
    for found in _marker_pattern(markers.nonce).finditer(text):
        element = _place(outline, text, found.start())
        if element is None:
            continue
        while (
            element.parent is not None
            and element.parent.tag not in _NEVER_REMOVED
            and element.parent.parent is not None
            and not _visible(text, element.parent, [*cuts, (element.start, element.end)])
        ):
            element = element.parent
        cuts.append((element.start, element.end))
    return _cut(
        text, cuts, list(zip(_body_span(outline, text), (before, after), strict=True)), markers
    )


_DOCTYPE = re.compile(r"\s*<!doctype[^>]*>", re.I)


def _first(outline: _Outline, tag: str) -> _Element | None:
    return next((e for e in _walk(outline.root) if e.tag == tag), None)


def _body_span(outline: _Outline, text: str) -> tuple[int, int]:
    """Where the body's content begins and ends. Without a ``<body>`` tag (HTML lets it be
    left out): after the head (when closed), else after ``<html>``, else after the doctype,
    so nothing comes before the doctype and sends browsers into quirks mode."""
    body = _first(outline, "body")
    if body is not None:
        return body.open_end, body.close
    page, head = _first(outline, "html"), _first(outline, "head")
    doctype = _DOCTYPE.match(text)
    start = doctype.end() if doctype else 0
    if page is not None:
        start = max(start, page.open_end)
    if head is not None and head.close < head.end:  # closed by its own end tag
        start = max(start, head.end)
    return start, page.close if page is not None else len(text)


_BODY_OPEN = re.compile(r"<body\b[^>]*>", re.I)
_BODY_CLOSE = re.compile(r"</body\s*>", re.I)


def _tag_span(text: str) -> tuple[int, int]:
    """The body's content by its tags alone, for a document the outline cannot read."""
    opened = _BODY_OPEN.search(text)
    doctype = _DOCTYPE.match(text)
    start = opened.end() if opened else (doctype.end() if doctype else 0)
    closes = [m.start() for m in _BODY_CLOSE.finditer(text, start)]
    return start, closes[-1] if closes else len(text)


def _walk(element: _Element) -> Iterable[_Element]:
    for child in element.children:
        yield child
        yield from _walk(child)


def _cut(
    text: str,
    cuts: list[tuple[int, int]],
    inserts: list[tuple[int, str]],
    markers: SlotMarkers,
) -> str:
    """``text`` without the cut spans (nested ones taken once), with the inserts, and the
    neutral value in any marker left."""
    pieces, at = [], 0
    edits = sorted([(s, e, "") for s, e in cuts] + [(p, p, extra) for p, extra in inserts])
    for start, end, extra in edits:
        if start < at:
            at = max(at, end)  # inside a span already cut
            continue
        pieces.append(text[at:start])
        pieces.append(extra)
        at = end
    pieces.append(text[at:])
    left = SlotTemplate.split("".join(pieces), _marker_pattern(markers.nonce))
    return left.fill(values_of(_NEUTRAL, escape=True))
