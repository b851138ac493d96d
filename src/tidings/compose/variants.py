"""Editions per distinct choice of sections: which variants an edition needs, and each one
rendered once.

A reader who chose sections of interest gets an edition of those sections only. The readers'
choices are read in one query and grouped by what they mean for *this* edition (the chosen
sections it carries); each group that leaves out some of its sections is rendered once, from
the edition's own (fitted) article list, with the edition's subject and intro, and stored as an
:class:`~tidings.db.models.EditionVariant`. Rendering and CSS inlining so stay once per
distinct choice, never per reader. Beyond ``cap`` groups, the readers of the rarest ones get
the whole edition: the number of renders per edition is bounded whatever the readers chose.

Articles with no section belong to no section a reader could have left out: every variant
keeps them, as the whole edition does.
"""

import hashlib
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.compose.render import RenderedEdition
from tidings.db.models import Article, Edition, EditionVariant

Render = Callable[[list[Article]], RenderedEdition]


@dataclass(frozen=True)
class Choice:
    """One variant to render: the edition's sections it carries, and how many readers get it
    (the fan-out finds them by the same sections, worked out per reader by the database)."""

    sections: tuple[str, ...]
    readers: int

    @property
    def key(self) -> str:
        return choice_key(self.sections)


def sections_of(articles: Sequence[Article]) -> list[str]:
    """The sections an edition carries, alphabetically."""
    return sorted({a.section for a in articles if a.section})


def choice_key(sections: Collection[str]) -> str:
    """A digest of the sorted choice: the same choice, whatever its order, has one key."""
    canonical = json.dumps(sorted(set(sections)), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _chosen(stored: str | None) -> set[str]:
    """The sections a stored choice names (none for no choice, or a malformed one)."""
    try:
        value = json.loads(stored) if stored else None
    except ValueError:
        return set()
    if not isinstance(value, list):
        return set()
    return {item for item in value if isinstance(item, str)}


def plan_variants(
    choices: Sequence[tuple[str | None, int]], edition_sections: Sequence[str], cap: int
) -> list[Choice]:
    """The variants an edition needs: one per distinct choice (as met by the edition's
    sections) that leaves out some of them, the ``cap`` most chosen, most readers first.

    ``choices`` are the stored choices with their reader counts. No choice, or one that
    covers every section, gets the whole edition (no variant); a choice of none of the
    edition's sections gets nothing (those readers are not readers of this edition).
    """
    carried = set(edition_sections)
    grouped: dict[tuple[str, ...], int] = {}
    for stored, readers in choices:
        met = _chosen(stored) & carried
        if stored is None or not met or met == carried:
            continue
        key = tuple(sorted(met))
        grouped[key] = grouped.get(key, 0) + readers
    ranked = sorted(grouped.items(), key=lambda item: (-item[1], item[0]))
    return [Choice(sections, readers) for sections, readers in ranked[: max(cap, 0)]]


def articles_for(articles: Sequence[Article], sections: Collection[str]) -> list[Article]:
    """The edition's articles a choice keeps, in the edition's order."""
    return [a for a in articles if a.section is None or a.section in sections]


def store_variants(
    session: Session,
    edition: Edition,
    articles: Sequence[Article],
    plan: Sequence[Choice],
    render: Render,
) -> dict[int, frozenset[str]]:
    """Render and store each planned variant once (one already stored, by an earlier try of
    this fan-out, is reused as it is); the variant ids, each with its sections (what
    :func:`~tidings.deliver.ledger.fanout.fan_out` takes: it matches a reader by the
    edition's sections they chose, never by a list of every way a choice was stored)."""
    stored = dict(
        session.execute(
            select(EditionVariant.choice_key, EditionVariant.id).where(
                EditionVariant.edition_id == edition.id
            )
        ).all()
    )
    variants: dict[int, frozenset[str]] = {}
    for choice in plan:
        variant_id = stored.get(choice.key)
        if variant_id is None:
            kept = articles_for(articles, choice.sections)
            rendered = render(kept)
            variant = EditionVariant(
                edition_id=edition.id,
                choice_key=choice.key,
                sections=list(choice.sections),
                html_body=rendered.html,
                text_body=rendered.text,
                article_count=len(kept),
            )
            session.add(variant)
            session.flush()
            variant_id = variant.id
        variants[variant_id] = frozenset(choice.sections)
    return variants
