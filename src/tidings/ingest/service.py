"""Ingestion services: poll feed sources, and take articles pushed by an editor or a CMS.

Each source is polled in its own unit of work, so one broken feed records its error and the
others go on; a bounded pool fetches a few at once, so one slow feed does not hold up the rest.
"""

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tidings.catalog.newsletters import newsletter_by_slug, push_source
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Newsletter, Source, SourceKind
from tidings.db.types import utcnow
from tidings.errors import FeedError, InvalidInput
from tidings.ingest.drafts import ArticleDraft, make_draft
from tidings.ingest.fetch import FetchPolicy, fetch_feed
from tidings.ingest.parse import parse_feed
from tidings.ingest.store import StoreCounts, upsert_articles
from tidings.ingest.transport import FetchCancelled
from tidings.metrics import FEED_POLL_SECONDS, FEED_POLLS

log = logging.getLogger(__name__)


@dataclass
class PollOutcome:
    """The result of polling one source."""

    source_id: int
    url: str
    counts: StoreCounts = field(default_factory=StoreCounts)
    not_modified: bool = False
    error: str | None = None
    rejected: list[str] = field(default_factory=list)
    #: How long the poll took, fetch to stored (for the metrics).
    seconds: float = 0.0

    @property
    def result(self) -> str:
        """In one word, for the metrics: error, not_modified or ok."""
        return "error" if self.error else "not_modified" if self.not_modified else "ok"


def feed_sources(db: Database, slug: str | None) -> list[tuple[int, str]]:
    """(id, url) of every feed source of ``slug`` (or of every newsletter), by id."""
    with db.session() as session:
        query = select(Source.id, Source.url).where(Source.kind == SourceKind.feed)
        if slug is not None:
            query = query.where(Source.newsletter_id == newsletter_by_slug(session, slug).id)
        return [(sid, url) for sid, url in session.execute(query.order_by(Source.id)) if url]


def count_feed_sources(db: Database, slug: str | None = None) -> int:
    """How many feed sources a poll of ``slug`` (or of everything) will visit."""
    return len(feed_sources(db, slug))


def poll_sources(
    db: Database,
    settings: Settings,
    slug: str | None = None,
    on_outcome: Callable[[PollOutcome], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[PollOutcome]:
    """Fetch every feed source (of one newsletter, or all) and store what is new or edited."""
    return poll_feeds(db, settings, feed_sources(db, slug), on_outcome, cancel)


def poll_feeds(
    db: Database,
    settings: Settings,
    sources: list[tuple[int, str]],
    on_outcome: Callable[[PollOutcome], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[PollOutcome]:
    """Poll ``sources`` (id, url), at most ``feed_poll_concurrency`` at once, so a slow feed
    holds one slot for at most its deadline while the others go on.

    Outcomes come back in the order of ``sources`` (``on_outcome`` sees them as they finish).
    Once ``cancel`` is set, fetches in flight stop within a fraction of a second and the
    sources not reached are left for the next poll, with no outcome.
    """
    cancel = cancel or threading.Event()
    policy = FetchPolicy.from_settings(settings)
    workers = max(1, min(settings.feed_poll_concurrency, len(sources)))
    finished: dict[int, PollOutcome] = {}
    with ThreadPoolExecutor(workers, thread_name_prefix="feed-poll") as pool:
        futures = {
            pool.submit(poll_source, db, policy, source_id, url, cancel): position
            for position, (source_id, url) in enumerate(sources)
        }
        try:
            for future in as_completed(futures):
                outcome = future.result()
                if outcome is None:
                    continue
                FEED_POLLS.labels(outcome.result).inc()
                FEED_POLL_SECONDS.labels(outcome.result).observe(outcome.seconds)
                finished[futures[future]] = outcome
                if on_outcome is not None:
                    on_outcome(outcome)
        except BaseException:  # Ctrl-C, or the caller's callback failed: stop the rest
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [finished[position] for position in sorted(finished)]


def poll_source(
    db: Database, policy: FetchPolicy, source_id: int, url: str, cancel: threading.Event
) -> PollOutcome | None:
    """Fetch one source and store its items, recording the error on the source if it fails;
    None if the poll was cancelled (a shutdown is not the feed's fault)."""
    if cancel.is_set():
        return None
    outcome = PollOutcome(source_id=source_id, url=url)
    started = time.perf_counter()
    try:
        with db.session() as session:
            source = session.get_one(Source, source_id)
            etag, last_modified = source.etag, source.last_modified
        result = fetch_feed(
            url, etag=etag, last_modified=last_modified, policy=policy, cancel=cancel
        )
        if result.body is None:
            outcome.not_modified = True
            _record_success(db, source_id, etag, last_modified)
        else:
            store_feed_document(
                db,
                source_id,
                result.body,
                result.content_type,
                outcome,
                result.etag,
                result.last_modified,
            )
    except FetchCancelled:
        return None
    except FeedError as exc:
        outcome.error = str(exc)
        _record_failure(db, source_id, outcome.error)
    except Exception as exc:  # a bug must not stop the other sources either
        log.exception("polling source %s (%s) failed", source_id, url)
        outcome.error = f"internal error: {type(exc).__name__}"
        _record_failure(db, source_id, outcome.error)
    outcome.seconds = time.perf_counter() - started
    return outcome


def store_feed_document(
    db: Database,
    source_id: int,
    body: bytes,
    content_type: str,
    outcome: PollOutcome,
    etag: str | None = None,
    last_modified: str | None = None,
) -> None:
    """Parse a fetched (or shipped) feed document and store its items for ``source_id``."""
    parsed = parse_feed(body, content_type)
    now = utcnow()
    with db.session() as session:
        outcome.counts = upsert_articles(session, source_id, parsed.drafts, now)
        outcome.rejected = parsed.rejected
        _mark_success(session, source_id, now, etag, last_modified)
        session.commit()


def _mark_success(
    session: Session, source_id: int, now: datetime, etag: str | None, last_modified: str | None
) -> None:
    session.execute(
        update(Source)
        .where(Source.id == source_id)
        .values(
            last_polled_at=now,
            last_success_at=now,
            last_error=None,
            consecutive_failures=0,
            etag=etag,
            last_modified=last_modified,
        )
    )


def _record_success(
    db: Database, source_id: int, etag: str | None, last_modified: str | None
) -> None:
    with db.session() as session:
        _mark_success(session, source_id, utcnow(), etag, last_modified)
        session.commit()


def _record_failure(db: Database, source_id: int, error: str) -> None:
    with db.session() as session:
        session.execute(
            update(Source)
            .where(Source.id == source_id)
            .values(
                last_polled_at=utcnow(),
                last_error=error[:2000],
                consecutive_failures=Source.consecutive_failures + 1,
            )
        )
        session.commit()


class ArticleInput(BaseModel):
    """One pushed article, as the CLI or a CMS gives it."""

    model_config = ConfigDict(extra="forbid", str_max_length=2_000_000)

    url: str
    title: str
    summary: str | None = None
    author: str | None = None
    section: str | None = None
    published: datetime | None = None
    content_html: str | None = None
    guid: str | None = Field(default=None, max_length=2000)

    def to_draft(self) -> ArticleDraft:
        """Apply the rules every article passes (the same as for feed items)."""
        return make_draft(
            url=self.url,
            title=self.title,
            guid=self.guid,
            byline=self.author,
            section=self.section,
            summary=self.summary,
            content_html=self.content_html,
            published_at=self.published,
        )


@dataclass
class PushReport:
    """What a push of articles did: stored counts, and the rejected items with reasons."""

    counts: StoreCounts = field(default_factory=StoreCounts)
    rejected: list[str] = field(default_factory=list)


def _describe_validation(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "article"
    return f"{where}: {first['msg']}"


def push_articles(db: Database, slug: str, items: list[Any]) -> PushReport:
    """Validate ``items`` and store the valid ones in the newsletter's push source."""
    report = PushReport()
    drafts: dict[str, ArticleDraft] = {}
    for position, item in enumerate(items, start=1):
        try:
            draft = ArticleInput.model_validate(item).to_draft()
        except ValidationError as exc:
            report.rejected.append(f"article {position}: {_describe_validation(exc)}")
            continue
        except InvalidInput as exc:
            report.rejected.append(f"article {position}: {exc}")
            continue
        drafts.setdefault(draft.guid, draft)
    with db.session() as session:
        newsletter: Newsletter = newsletter_by_slug(session, slug)
        source = push_source(session, newsletter)
        report.counts = upsert_articles(session, source.id, list(drafts.values()), utcnow())
        session.commit()
    return report


def read_article_file(path: Path) -> list[Any]:
    """The articles of a JSON file: a list, or an object with an ``articles`` list."""
    try:
        document = json.loads(path.read_bytes())
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("articles"), list):
        document = document["articles"]
    if not isinstance(document, list):
        raise InvalidInput(f'{path}: expected a list of articles or {{"articles": [...]}}')
    return document
