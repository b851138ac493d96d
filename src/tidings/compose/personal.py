"""Per-subscriber parts of a rendered edition, filled in after inlining.

Templates are rendered once per edition with placeholder tokens where personal values go;
the tokens are plain letters and underscores, so premailer and the HTML serialiser leave them
alone. Each subscriber's copy is one regex pass that inserts the values, HTML-escaped in the
HTML part, so no value can break the inlined markup.
"""

import html
import re
from dataclasses import dataclass, fields

TOKEN = re.compile(r"ZZtidings_([a-z_]+)_ZZ")


@dataclass(frozen=True)
class Personal:
    """The values that differ per subscriber (or per view)."""

    greeting_name: str
    email: str
    unsubscribe_url: str
    preferences_url: str
    view_url: str


def placeholders() -> Personal:
    """A :class:`Personal` whose values are the tokens that :func:`fill` replaces."""
    return Personal(**{f.name: f"ZZtidings_{f.name}_ZZ" for f in fields(Personal)})


def values_of(personal: Personal, *, escape: bool) -> dict[str, str]:
    """The personal values by placeholder name, HTML-escaped with ``escape``."""
    values = {f.name: getattr(personal, f.name) for f in fields(Personal)}
    if escape:
        return {name: html.escape(value, quote=True) for name, value in values.items()}
    return values


def fill(template: str, personal: Personal, *, escape: bool) -> str:
    """Insert ``personal`` into a rendered part; ``escape`` for HTML parts."""
    values = values_of(personal, escape=escape)
    return TOKEN.sub(lambda match: values.get(match.group(1), match.group(0)), template)
