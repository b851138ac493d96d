"""Make an edition fit the size limit by leaving articles out, and say which.

The limit itself lives in the render step (:class:`EditionTooLarge`); this module only decides
what to leave out: articles are dropped from the end (the oldest, as editions list the newest
first) until the rest fits; but an article too large to fit even on its own (a feed's 120 KB
URL, say) is left out wherever it stands, so it cannot take the others down with it. Only
when not one article fits does the edition fail, with the render step's reason.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tidings.compose.render import EditionTooLarge, RenderedEdition
from tidings.db.models import Article

#: How many dropped articles a note names one by one; the rest are counted.
NOTE_NAMES = 10
NOTE_TITLE_CHARS = 60

Render = Callable[[list[Article]], RenderedEdition]


@dataclass(frozen=True)
class FittedEdition:
    """The rendered edition, the articles it kept (in order), and what was left out."""

    rendered: RenderedEdition
    articles: list[Article]
    too_large_alone: list[Article]
    dropped: list[Article]

    @property
    def note(self) -> str | None:
        """What an editor should know about the trimming, or None if nothing was left out."""
        parts = []
        if self.too_large_alone:
            parts.append(
                f"left out {len(self.too_large_alone)} article(s) too large to fit even alone: "
                + _names(self.too_large_alone)
            )
        if self.dropped:
            parts.append(
                f"dropped the last {len(self.dropped)} article(s) to fit the size limit: "
                + _names(self.dropped)
            )
        return "; ".join(parts) or None


def _names(articles: Sequence[Article]) -> str:
    named = [f"#{a.id} \u201c{_short(a.title)}\u201d" for a in articles[:NOTE_NAMES]]
    more = len(articles) - NOTE_NAMES
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def _short(title: str) -> str:
    return title if len(title) <= NOTE_TITLE_CHARS else title[: NOTE_TITLE_CHARS - 1] + "\u2026"


def _try(render: Render, articles: list[Article]) -> RenderedEdition | None:
    try:
        return render(articles)
    except EditionTooLarge:
        return None


def _longest_prefix(render: Render, articles: list[Article]) -> tuple[int, RenderedEdition | None]:
    """The most leading articles that fit, knowing all of them do not: a binary search, as
    each article only adds to the size (log2(n) renders instead of n)."""
    fits, too_many, best = 0, len(articles), None
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        rendered = _try(render, articles[:middle])
        if rendered is None:
            too_many = middle
        else:
            fits, best = middle, rendered
    return fits, best


def render_to_fit(render: Render, articles: list[Article]) -> FittedEdition:
    """Render ``articles``, leaving out as few as needed to fit; :class:`EditionTooLarge`
    (with the render step's reason) when not even one article fits.

    One binary search finds where the edition stops fitting; only if the article there is
    too large even alone are the articles from there on each rendered alone once, and one
    more search runs over the rest: at most n + 2 log2(n) + 3 renders, never n log n.
    """
    try:
        return FittedEdition(render(articles), list(articles), [], [])
    except EditionTooLarge as exc:
        if len(articles) <= 1:
            raise _none_fits(exc) if articles else exc from None
    count, rendered = _longest_prefix(render, articles)
    blocker = articles[count]  # the first article that made it too large
    if rendered is not None and _try(render, [blocker]) is not None:
        return FittedEdition(rendered, articles[:count], [], articles[count:])
    # The blocker is too large alone; those before it fit together, so only the rest is tried.
    alone = {id(blocker)} | {id(a) for a in articles[count + 1 :] if _try(render, [a]) is None}
    return _fit_without(render, articles, alone)


def _fit_without(render: Render, articles: list[Article], alone: set[int]) -> FittedEdition:
    """Fit the articles not in ``alone`` (ids of those too large alone, which are left out)."""
    rest = [a for a in articles if id(a) not in alone]
    if not rest:
        try:
            render(articles[-1:])
        except EditionTooLarge as exc:
            raise _none_fits(exc) from None
    too_large = [a for a in articles if id(a) in alone]
    rendered = _try(render, rest)
    if rendered is not None:
        return FittedEdition(rendered, rest, too_large, [])
    count, rendered = _longest_prefix(render, rest)  # rest[0] fits alone: count >= 1
    assert rendered is not None
    cut = next(i for i, a in enumerate(articles) if a is rest[count])
    before = [a for a in articles[:cut] if id(a) in alone]
    return FittedEdition(rendered, rest[:count], before, articles[cut:])


def _none_fits(exc: EditionTooLarge) -> EditionTooLarge:
    return EditionTooLarge(f"not even one article fits: {exc}")
