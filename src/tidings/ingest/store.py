"""Upsert article drafts of one source: new ones inserted, edited ones updated, others left."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from tidings.db.models import Article
from tidings.ingest.drafts import ArticleDraft
from tidings.ingest.images import ArticleImage

# Feeds rarely carry more than a few hundred items; this keeps IN lists well under
# SQLite's parameter limit when a CMS pushes a large batch.
LOOKUP_CHUNK = 500


@dataclass
class StoreCounts:
    """How many drafts were new, edited, or already stored as they are."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: "StoreCounts") -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged


def _stored_hashes(
    session: Session, source_id: int, guids: list[str]
) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(guids), LOOKUP_CHUNK):
        rows = session.execute(
            select(Article.guid, Article.id, Article.content_hash).where(
                Article.source_id == source_id,
                Article.guid.in_(guids[start : start + LOOKUP_CHUNK]),
            )
        )
        found.update({guid: (article_id, digest) for guid, article_id, digest in rows})
    return found


def _image_columns(image: ArticleImage | None) -> dict[str, object]:
    """The picture's columns; all None when the draft has none, so an edit that drops the
    picture drops it from the article too."""
    if image is None:
        return dict.fromkeys(("image_url", "image_width", "image_height", "image_alt"))
    return {
        "image_url": image.url,
        "image_width": image.width,
        "image_height": image.height,
        "image_alt": image.alt or None,
    }


def upsert_articles(
    session: Session, source_id: int, drafts: list[ArticleDraft], now: datetime
) -> StoreCounts:
    """Store ``drafts`` (unique by guid) for ``source_id``; the caller commits."""
    counts = StoreCounts()
    stored = _stored_hashes(session, source_id, [d.guid for d in drafts])
    new_rows: list[dict[str, object]] = []
    changed_rows: list[dict[str, object]] = []
    for draft in drafts:
        fields: dict[str, object] = {
            "url": draft.url,
            "title": draft.title,
            "byline": draft.byline,
            "section": draft.section,
            "summary": draft.summary,
            "content_html": draft.content_html,
            "content_hash": draft.content_hash,
            "updated_at": now,
            **_image_columns(draft.image),
        }
        if draft.published_at is not None:
            fields["published_at"] = draft.published_at
            fields["published_is_first_seen"] = False
        existing = stored.get(draft.guid)
        if existing is None:
            fields.setdefault("published_at", now)
            fields.setdefault("published_is_first_seen", True)
            new_rows.append(
                {**fields, "source_id": source_id, "guid": draft.guid, "first_seen_at": now}
            )
        elif existing[1] != draft.content_hash:
            changed_rows.append({**fields, "id": existing[0]})
        else:
            counts.unchanged += 1
    if new_rows:
        session.execute(insert(Article), new_rows)
        counts.new = len(new_rows)
    for row in changed_rows:
        article_id = row.pop("id")
        session.execute(update(Article).where(Article.id == article_id).values(**row))
    counts.updated = len(changed_rows)
    return counts
