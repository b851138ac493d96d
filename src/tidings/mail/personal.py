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

from tidings.errors import InvalidInput


@dataclass(frozen=True)
class Personal:
    """The values that differ per subscriber (or per view)."""

    greeting_name: str
    email: str
    unsubscribe_url: str
    preferences_url: str
    view_url: str


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
