"""The ORM models: the only mapped classes in Tidings.

The schema follows DESIGN.md. Editions and deliveries are modelled here from the start so the
pipeline can arrive without reshaping tables.
"""

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tidings.db.types import JsonDocument, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: Table options of the tables whose ids are handed out as credentials (a reader's signed link
#: names a subscription, a console session names a user, deleting a row must not hand its id
#: to the next person): on SQLite, AUTOINCREMENT, so an id is never given out twice, even
#: after the newest row is deleted. PostgreSQL sequences never go back anyway.
NEVER_REUSE_IDS: dict[str, Any] = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention, so migrations stay stable."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint, storing the member values."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def _linked_index(name: str, column: str) -> Index:
    """An index over the rows whose ``column`` (a nullable link) names something: what a
    delete of the linked row looks up, without the unlinked rows' cost."""
    where = text(f"{column} IS NOT NULL")
    return Index(name, column, sqlite_where=where, postgresql_where=where)


class SourceKind(enum.StrEnum):
    feed = "feed"
    push = "push"


class SubscriptionStatus(enum.StrEnum):
    pending = "pending"
    active = "active"
    unsubscribed = "unsubscribed"


class Cadence(enum.StrEnum):
    daily = "daily"
    weekly = "weekly"


class EditionKind(enum.StrEnum):
    scheduled = "scheduled"
    oneoff = "oneoff"


class EditionStatus(enum.StrEnum):
    draft = "draft"
    #: A one-off edition an editor scheduled: the scheduler starts it at ``scheduled_for``.
    scheduled = "scheduled"
    skipped = "skipped"
    sending = "sending"
    paused = "paused"
    cancelled = "cancelled"
    sent = "sent"
    #: The slot could not be composed or sent (its ``note`` says why); other slots go on.
    failed = "failed"


#: The editions the public archive shows, and so the only ones a mail may link to.
PUBLIC_EDITION_STATES = (EditionStatus.sending, EditionStatus.sent)


class DeliveryState(enum.StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    deferred = "deferred"
    failed = "failed"
    uncertain = "uncertain"
    cancelled = "cancelled"


class SuppressionReason(enum.StrEnum):
    hard_bounce = "hard_bounce"
    #: Soft bounces on enough days within the window (the bounce score).
    soft_bounce = "soft_bounce"
    complaint = "complaint"
    erasure = "erasure"
    manual = "manual"


class DeliveryFeedback(enum.StrEnum):
    """What came back about a delivery after the relay accepted it."""

    bounced = "bounced"
    complained = "complained"


class DkimAlgorithm(enum.StrEnum):
    rsa = "rsa"
    ed25519 = "ed25519"


class InboundMeaning(enum.StrEnum):
    """What an inbound message or provider event was taken to mean."""

    #: The recipient is gone (5.1.x): suppressed at once.
    hard_bounce = "hard_bounce"
    #: Mailbox full, temporary or unclear: a point on the bounce score.
    soft_bounce = "soft_bounce"
    #: Refused for the sender's reputation or policy (5.7.x, blocklists): never the reader's.
    policy = "policy"
    complaint = "complaint"
    unsubscribe = "unsubscribe"
    #: An auto-reply or out-of-office: never a bounce.
    auto_reply = "auto_reply"
    #: Kept, not understood.
    unknown = "unknown"
    #: Not acted on: its address did not verify (forged or altered), or it names nobody.
    ignored = "ignored"


class HistoryKind(enum.StrEnum):
    """One dated event of a subscriber's consent and history (append-only): how they came,
    confirmed and left, what came back, and what an admin changed or undid."""

    suppressed = "suppressed"
    unsuppressed = "unsuppressed"
    unsubscribed = "unsubscribed"
    resubscribed = "resubscribed"
    bounce_point = "bounce_point"
    #: Signed up through a public form (the double opt-in's first half).
    signed_up = "signed_up"
    #: Added one at a time by an editor or admin (console, API, CLI).
    added = "added"
    imported = "imported"
    #: The double opt-in's second half (or an admin's confirmation, by its source).
    confirmed = "confirmed"
    #: A confirmation mail was sent (first or again).
    confirm_mailed = "confirm_mailed"
    #: An admin changed the record (name, time zone, locale, attributes, sections).
    edited = "edited"


class UserRole(enum.StrEnum):
    admin = "admin"
    editor = "editor"
    viewer = "viewer"


class Newsletter(Base):
    """A publication people subscribe to."""

    __tablename__ = "newsletters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    from_name: Mapped[str] = mapped_column(String(200))
    from_address: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    schedule_cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    min_articles: Mapped[int] = mapped_column(Integer, default=1)
    max_articles: Mapped[int] = mapped_column(Integer, default=20)
    template_set: Mapped[str] = mapped_column(String(64), default="digest")
    #: When set, readers may choose a weekly digest, composed on this crontab schedule.
    weekly_schedule_cron: Mapped[str | None] = mapped_column(String(100))
    #: Web origins (``https://host[:port]``) whose embedded sign-up form subscribes in one
    #: step; a form posted from anywhere else shows the confirm step first.
    allowed_origins: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    #: Send at each reader's own time of day: the schedule's time applies in every
    #: subscriber's zone (the newsletter's zone for readers with none or an unknown one).
    reader_time: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: The sender's postal address, shown in every digest's footer (CAN-SPAM asks for one).
    postal_address: Mapped[str | None] = mapped_column(Text)
    #: The publisher's own words for the footer.
    footer_text: Mapped[str | None] = mapped_column(Text)
    #: Mail a welcome when a subscription becomes active.
    welcome_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: Show article images that the feed gave.
    show_images: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: When set, article links carry utm_source=this, utm_medium=email, utm_campaign=edition.
    utm_source: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    sources: Mapped[list["Source"]] = relationship(back_populates="newsletter")

    @property
    def offers_weekly(self) -> bool:
        return self.weekly_schedule_cron is not None

    __table_args__ = (
        CheckConstraint("min_articles >= 0", name="min_articles_nonnegative"),
        CheckConstraint("max_articles >= 1", name="max_articles_positive"),
    )


class Source(Base):
    """Where articles come from: a feed URL, or the newsletter's push inbox (CLI/API)."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletters.id", ondelete="CASCADE"))
    kind: Mapped[SourceKind] = mapped_column(_enum(SourceKind, "source_kind"))
    url: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    newsletter: Mapped[Newsletter] = relationship(back_populates="sources")

    __table_args__ = (
        UniqueConstraint("newsletter_id", "url"),
        # One push inbox per newsletter (url is NULL for pushes, so the constraint above
        # does not cover it).
        Index(
            "uq_sources_push_per_newsletter",
            "newsletter_id",
            unique=True,
            sqlite_where=text("kind = 'push'"),
            postgresql_where=text("kind = 'push'"),
        ),
    )


class Article(Base):
    """One item of a source; ``guid`` is the dedupe key (the item's id, else its canonical URL)."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    byline: Mapped[str | None] = mapped_column(Text)
    section: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    content_html: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_is_first_seen: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    content_hash: Mapped[str] = mapped_column(String(64))
    #: The article's picture as its feed gave it (media:content, an enclosure, or the first
    #: image of its content), with its size and words when known.
    image_url: Mapped[str | None] = mapped_column(Text)
    image_width: Mapped[int | None] = mapped_column(Integer)
    image_height: Mapped[int | None] = mapped_column(Integer)
    image_alt: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("source_id", "guid"),
        Index("ix_articles_source_published", "source_id", "published_at"),
    )


class Subscriber(Base):
    """A person, identified by one normalised email address."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (NEVER_REUSE_IDS,)


#: Pending and never sent a confirmation mail: the rows ``ix_subscriptions_waiting`` holds.
WAITING_FOR_CONFIRMATION = "status = 'pending' AND confirmation_sent_at IS NULL"


class Subscription(Base):
    """Subscriber x newsletter, with its status and consent record."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletters.id", ondelete="CASCADE"))
    status: Mapped[SubscriptionStatus] = mapped_column(
        _enum(SubscriptionStatus, "subscription_status")
    )
    cadence: Mapped[Cadence] = mapped_column(_enum(Cadence, "cadence"), default=Cadence.daily)
    sections: Mapped[list[str] | None] = mapped_column(JsonDocument)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_method: Mapped[str | None] = mapped_column(String(32))
    consent_source: Mapped[str | None] = mapped_column(Text)
    consent_ip: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the last double opt-in email went out: at most one per address per interval.
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the last welcome mail was claimed for sending (see tidings.audience.welcome).
    welcome_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("subscriber_id", "newsletter_id"),
        Index("ix_subscriptions_newsletter_status", "newsletter_id", "status", "subscriber_id"),
        # The confirmations an admin could still send (tidings.audience.confirmations):
        # a few rows, where the status index holds every pending subscription (migration 0020).
        Index(
            "ix_subscriptions_waiting",
            "newsletter_id",
            "subscriber_id",
            sqlite_where=text(WAITING_FOR_CONFIRMATION),
            postgresql_where=text(WAITING_FOR_CONFIRMATION),
        ),
        NEVER_REUSE_IDS,
    )


class Edition(Base):
    """One digest of one newsletter; scheduled editions are unique per (newsletter, slot)."""

    __tablename__ = "editions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletters.id", ondelete="CASCADE"))
    kind: Mapped[EditionKind] = mapped_column(_enum(EditionKind, "edition_kind"))
    #: Which readers a scheduled edition is for; one-off editions go to every cadence.
    cadence: Mapped[Cadence] = mapped_column(
        _enum(Cadence, "edition_cadence"), default=Cadence.daily, server_default="daily"
    )
    slot: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The readers' zone a scheduled edition of a reader-time newsletter is for ("" for
    #: every other edition): one edition per send time and zone.
    zone: Mapped[str] = mapped_column(String(64), default="", server_default="")
    status: Mapped[EditionStatus] = mapped_column(_enum(EditionStatus, "edition_status"))
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    #: What happened to this edition that a person should know: why it failed or was paused,
    #: which articles were dropped to fit the size limit.
    note: Mapped[str | None] = mapped_column(Text)
    cutoff_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    subject: Mapped[str | None] = mapped_column(Text)
    intro_markdown: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    text_body: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: A one-off draft an editor scheduled: the scheduler starts it at this time.
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Deliveries per state, counted once when the edition is over (sent, or cancelled and
    #: settled): reports read this instead of counting the ledger again.
    final_counts: Mapped[dict[str, int] | None] = mapped_column(JsonDocument)
    #: When an editor resumed it after a pause: its first results are no longer watched for
    #: a mass refusal (the editor has looked; its 5.1.x refusals fail and are suppressed).
    refusal_watch_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("newsletter_id", "cadence", "slot", "zone"),
        # The few editions sending now: every claim starts from them (migration 0022).
        Index(
            "ix_editions_sending",
            "id",
            sqlite_where=text("status = 'sending'"),
            postgresql_where=text("status = 'sending'"),
        ),
    )


class EditionVariant(Base):
    """An edition rendered for one distinct choice of sections among its readers: rendered
    and inlined once per choice, never per reader."""

    __tablename__ = "edition_variants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    #: A digest of the sorted choice, unique per edition.
    choice_key: Mapped[str] = mapped_column(String(64))
    #: The sections this variant carries (None: the whole edition).
    sections: Mapped[list[str] | None] = mapped_column(JsonDocument)
    html_body: Mapped[str] = mapped_column(Text)
    text_body: Mapped[str] = mapped_column(Text)
    article_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("edition_id", "choice_key"),)


class EditionArticle(Base):
    """The articles of an edition, in order."""

    __tablename__ = "edition_articles"

    edition_id: Mapped[int] = mapped_column(
        ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True
    )
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_edition_articles_article", "article_id"),)


#: The rows of :data:`ix_deliveries_due`: the ledger's due states (queued, deferred).
DUE_ROWS = "state IN ('queued', 'deferred')"


class Delivery(Base):
    """One row of the send ledger: edition x subscriber.

    ``subscriber_id`` becomes NULL when a subscriber is erased, so anonymous counts survive.
    ``edition_id``, ``subscriber_id`` and ``variant_id`` are kept on PostgreSQL by triggers
    (migrations 0017 and 0018), not foreign keys: deleting an edition deletes its deliveries,
    erasing a subscriber or deleting a variant sets theirs to NULL, and a fan-out of a million
    rows pays one set-based check instead of three per row. SQLite keeps them as foreign keys
    with the same effects (not declared here).
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    edition_id: Mapped[int] = mapped_column(Integer)
    subscriber_id: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState, "delivery_state"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reply_code: Mapped[int | None] = mapped_column(Integer)
    last_reply: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255))
    #: The variant of the edition this reader gets (None: the edition's own parts).
    variant_id: Mapped[int | None] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: A bounce or complaint that came back after the relay accepted it.
    feedback: Mapped[DeliveryFeedback | None] = mapped_column(
        _enum(DeliveryFeedback, "delivery_feedback")
    )

    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id"),
        # Only rows waiting for a worker (the ledger's DUE_STATES), per edition: claims and
        # "is anything due" ask each sending edition for its own, earliest first, so a paused
        # edition's queue is never read; a claimed row's new version is not in it (the old
        # entry goes at the next vacuum) (migration 0022).
        Index(
            "ix_deliveries_due",
            "edition_id",
            "next_attempt_at",
            sqlite_where=text(DUE_ROWS),
            postgresql_where=text(DUE_ROWS),
        ),
        # Only leased rows: nearly empty, so a fan-out of a million rows does not pay for it.
        Index(
            "ix_deliveries_leased",
            "lease_expires_at",
            sqlite_where=text("state = 'sending'"),
            postgresql_where=text("state = 'sending'"),
        ),
        Index("ix_deliveries_subscriber", "subscriber_id"),
        # Only the few rows something came back for: an edition's bounced and complained
        # counts read these, not the whole edition.
        Index(
            "ix_deliveries_feedback",
            "edition_id",
            "feedback",
            sqlite_where=text("feedback IS NOT NULL"),
            postgresql_where=text("feedback IS NOT NULL"),
        ),
        # Only the refused ones (a fan-out writes none, so it costs the fan-out nothing): an
        # edition's bounce list and counts read these, not the whole edition.
        Index(
            "ix_deliveries_failed",
            "edition_id",
            "id",
            sqlite_where=text("state = 'failed'"),
            postgresql_where=text("state = 'failed'"),
        ),
    )


class Suppression(Base):
    """An address that must never be mailed again."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(
        _enum(SuppressionReason, "suppression_reason")
    )
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """A person who signs in to the admin console."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[UserRole] = mapped_column(_enum(UserRole, "user_role"))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Bumped to end every console session of this user at once (sign-out, password change).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A disabled user cannot sign in, and their sessions ended when they were disabled.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (NEVER_REUSE_IDS,)


class ApiToken(Base):
    """A bearer token for the JSON API; only its SHA-256 is stored (it is shown once)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[UserRole] = mapped_column(_enum(UserRole, "api_token_role"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (NEVER_REUSE_IDS,)


class IdempotencyKey(Base):
    """A POST that creates a send, remembered per token and Idempotency-Key, so a retried
    request returns the first answer instead of sending twice."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("token_id", "key"),)


class RateEvent(Base):
    """One counted attempt (a sign-up, a sign-in) for a rate limit shared by every web
    process; ``bucket`` names the limit and a keyed hash of the client, never the address."""

    __tablename__ = "rate_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_rate_events_bucket_at", "bucket", "at"),
        #: The upkeep prunes events past every window, whatever their bucket.
        Index("ix_rate_events_at", "at"),
    )


class DkimKey(Base):
    """A DKIM signing key of one sender domain. The private key is sealed (Fernet, with a key
    derived from TIDINGS_SECRET_KEY): every worker on every host reads it from the shared
    database, and a copy of the database alone does not give it away."""

    __tablename__ = "dkim_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(String(253))
    selector: Mapped[str] = mapped_column(String(63))
    algorithm: Mapped[DkimAlgorithm] = mapped_column(_enum(DkimAlgorithm, "dkim_algorithm"))
    private_key_sealed: Mapped[str] = mapped_column(Text)
    #: The ``p=`` value of the DNS record (base64).
    public_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("domain", "selector"),)


class InboundMessage(Base):
    """One message that came back (a bounce, a complaint, a mailto unsubscribe, anything sent
    to a return-path address) or one provider webhook event, with what it was taken to mean
    and what it changed. ``raw`` is capped; rows are deleted after the retention period."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    #: pipe, lmtp, imap or webhook.
    channel: Mapped[str] = mapped_column(String(16))
    #: The webhook's provider (ses, mailgun, sendgrid, postmark) and its event id: unique, so a
    #: replayed event changes nothing.
    provider: Mapped[str | None] = mapped_column(String(32))
    event_id: Mapped[str | None] = mapped_column(String(255))
    #: The envelope recipient (a return-path or unsubscribe address).
    recipient: Mapped[str | None] = mapped_column(String(320))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    meaning: Mapped[InboundMeaning] = mapped_column(_enum(InboundMeaning, "inbound_meaning"))
    #: The enhanced status code (``5.1.1``) and the diagnostic line, when there were any.
    status: Mapped[str | None] = mapped_column(String(16))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL")
    )
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    #: The receiving domain of the reader it is about (for the sender-health panel).
    recipient_domain: Mapped[str | None] = mapped_column(String(253))
    #: What it changed, in words ("suppressed a@example.org", "nothing: ...").
    changes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        Index("ix_inbound_messages_received_at", "received_at"),
        Index("ix_inbound_messages_delivery_id", "delivery_id"),
        # Erasing a reader clears its messages' link to it: found by this, not by a scan.
        _linked_index("ix_inbound_messages_subscriber_id", "subscriber_id"),
    )


class SubscriberEvent(Base):
    """The subscriber's history: each change made by what came back, with its evidence, and
    whether an admin undid it."""

    __tablename__ = "subscriber_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    kind: Mapped[HistoryKind] = mapped_column(_enum(HistoryKind, "history_kind"))
    newsletter_id: Mapped[int | None] = mapped_column(
        ForeignKey("newsletters.id", ondelete="CASCADE")
    )
    #: The evidence: the diagnostic line, the complaint's feedback type, who asked.
    detail: Mapped[str | None] = mapped_column(Text)
    inbound_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )
    #: Where it came from: web, console, api, cli, import, inbound, webhook, send.
    source: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undone_by: Mapped[str | None] = mapped_column(String(320))

    __table_args__ = (
        Index("ix_subscriber_events_subscriber_id", "subscriber_id", "id"),
        # Purging inbound messages clears the events' link to them: found by this, not by a
        # scan of the whole history (whose import events name no message, so are not in it).
        _linked_index("ix_subscriber_events_inbound_id", "inbound_id"),
    )


class BouncePoint(Base):
    """A point on an address's bounce score: at most one a day (unique per day); points older
    than the window are forgotten, and enough points within it suppress the address."""

    __tablename__ = "bounce_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    day: Mapped[date] = mapped_column(Date)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("email", "day"),)


class WorkerHeartbeat(Base):
    """A running worker process, as it last said: where it runs, since when, how fast it
    sends and how much it holds. Written on a timer by the worker itself, deleted when it
    stops cleanly; a row whose last beat is older than a few beats is a worker that died."""

    __tablename__ = "worker_heartbeats"

    #: The worker's name (host, pid and a random suffix), unique per process.
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Messages finished per second over the last few seconds.
    per_second: Mapped[float] = mapped_column(Float, default=0.0)
    #: Deliveries claimed and not finished yet (queued in the worker or being sent).
    in_flight: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_worker_heartbeats_last_beat_at", "last_beat_at"),)


#: The longest name a sending limit (a relay's ``host:port``, a domain) may have: the
#: column's width, which the limits' name checks refuse beyond in one line.
LIMIT_NAME_LENGTH = 255


class SendLimitScope(enum.StrEnum):
    """What a sending limit applies to."""

    #: One SMTP relay ("host:port"): every message through it.
    relay = "relay"
    #: One receiving domain ("gmail.com"): every message to an address there.
    domain = "domain"


class SendLimit(Base):
    """A sending limit that every worker process on every host obeys: a rate (messages per
    second) and a number of concurrent connections, for one relay or one receiving domain.

    ``per_second`` and ``max_connections`` are what the admin set (None: no cap). ``rate``
    is the rate in force now (None: no rate): at most ``per_second``, lowered by the relay's
    "slow down" replies (421, 4.7.x) and raised again while it stays quiet. ``clock`` is the
    shared clock of the rate: the earliest time the next message may go, in Unix seconds (a
    number, so that "the later of it and now, plus k / rate" is the same plain arithmetic
    on both databases); a worker reserves sends by moving it on, in one conditional UPDATE.
    """

    __tablename__ = "send_limits"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(LIMIT_NAME_LENGTH), primary_key=True)
    per_second: Mapped[float | None] = mapped_column(Float)
    max_connections: Mapped[int | None] = mapped_column(Integer)
    rate: Mapped[float | None] = mapped_column(Float)
    clock: Mapped[float | None] = mapped_column(Float)
    #: When a "slow down" reply last lowered the rate, how many did, and the last one.
    slowed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When a quiet spell last raised the rate back up (one step per quiet minute).
    raised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    slow_downs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_reply: Mapped[str | None] = mapped_column(String(512))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("scope IN ('relay', 'domain')", name="scope"),
        CheckConstraint("per_second IS NULL OR per_second > 0", name="per_second"),
        CheckConstraint("max_connections IS NULL OR max_connections > 0", name="max_connections"),
        CheckConstraint("rate IS NULL OR rate > 0", name="rate"),
    )


class SendLimitSlot(Base):
    """One of a limit's concurrent connections, held by a worker under a lease: a worker
    that dies gives its slots back when their lease runs out."""

    __tablename__ = "send_limit_slots"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(LIMIT_NAME_LENGTH), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The worker's name, as in its heartbeat.
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        ForeignKeyConstraint(
            ["scope", "name"], ["send_limits.scope", "send_limits.name"], ondelete="CASCADE"
        ),
        Index("ix_send_limit_slots_holder", "holder"),
    )
