"""What the API reads and writes: the OpenAPI document is generated from these models."""

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tidings.db.models import DkimAlgorithm
from tidings.web.deps import MAX_ROW_ID

ArticleId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


READER_TIME = (
    "send at each reader's own time of day: the schedule's time in every subscriber's zone "
    "(the newsletter's zone for readers with none)"
)
POSTAL_ADDRESS = "the postal address in every digest's footer: one to six lines"
FOOTER_TEXT = "the publisher's own words in every digest's footer"
WELCOME = "mail a welcome when a subscription becomes active"
IMAGES = "show the images the feeds give with their articles"
UTM_SOURCE = (
    "when set (letters, digits, - _ .), article links carry utm_source=this, "
    "utm_medium=email and utm_campaign=the edition"
)
#: Bounds on what is read at all; the catalog's own limits (with sentences) are tighter.
POSTAL_READ_AT_MOST = 2000
FOOTER_READ_AT_MOST = 4000
UTM_SOURCE_READ_AT_MOST = 100


class NewsletterIn(Model):
    slug: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1, max_length=200)
    sender: str = Field(min_length=3, max_length=400, description='"Name <address>"')
    reply_to: str | None = Field(default=None, max_length=320)
    schedule: str = Field(default="0 7 * * *", max_length=100)
    weekly_schedule: str | None = Field(
        default=None, max_length=100, description="crontab of the weekly digest, if offered"
    )
    timezone: str = Field(default="UTC", max_length=64)
    min_articles: int = Field(default=1, ge=0, le=1000)
    max_articles: int = Field(default=20, ge=1, le=1000)
    template_set: str = Field(default="digest", max_length=64)
    feeds: list[str] = Field(default=[], max_length=50)
    allowed_origins: list[str] = Field(
        default=[],
        max_length=20,
        description="web origins (https://host[:port]) whose embedded sign-up form signs a "
        "reader up in one step; other origins get a confirm step",
    )
    reader_time: bool = Field(default=False, description=READER_TIME)
    postal_address: str | None = Field(
        default=None, max_length=POSTAL_READ_AT_MOST, description=POSTAL_ADDRESS
    )
    footer_text: str | None = Field(
        default=None, max_length=FOOTER_READ_AT_MOST, description=FOOTER_TEXT
    )
    welcome_enabled: bool = Field(default=True, description=WELCOME)
    show_images: bool = Field(default=True, description=IMAGES)
    utm_source: str | None = Field(
        default=None, max_length=UTM_SOURCE_READ_AT_MOST, description=UTM_SOURCE
    )


#: Settings a PATCH may leave out (they keep their value) but not set to null; reply_to and
#: weekly_schedule may be null (none).
KEPT_IF_LEFT_OUT = (
    "name",
    "sender",
    "schedule",
    "timezone",
    "min_articles",
    "max_articles",
    "template_set",
    "allowed_origins",
    "reader_time",
    "welcome_enabled",
    "show_images",
)


def _not_nullable(schema: dict[str, Any]) -> None:
    """The document says what :class:`NewsletterPatch` takes: no null for those settings."""
    for name in KEPT_IF_LEFT_OUT:
        field = schema["properties"][name]
        field.update(next(t for t in field.pop("anyOf") if t.get("type") != "null"))
        field.pop("default", None)


class NewsletterPatch(Model):
    """The settings to change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_not_nullable)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    sender: str | None = Field(default=None, min_length=3, max_length=400)
    reply_to: str | None = Field(default=None, max_length=320)
    schedule: str | None = Field(default=None, max_length=100)
    weekly_schedule: str | None = Field(default=None, max_length=100)
    timezone: str | None = Field(default=None, max_length=64)
    min_articles: int | None = Field(default=None, ge=0, le=1000)
    max_articles: int | None = Field(default=None, ge=1, le=1000)
    template_set: str | None = Field(default=None, max_length=64)
    allowed_origins: list[str] | None = Field(
        default=None, max_length=20, description="the whole list; [] clears it"
    )
    reader_time: bool | None = Field(default=None, description=READER_TIME)
    postal_address: str | None = Field(
        default=None,
        max_length=POSTAL_READ_AT_MOST,
        description=POSTAL_ADDRESS + "; null removes it",
    )
    footer_text: str | None = Field(
        default=None,
        max_length=FOOTER_READ_AT_MOST,
        description=FOOTER_TEXT + "; null removes it",
    )
    welcome_enabled: bool | None = Field(default=None, description=WELCOME)
    show_images: bool | None = Field(default=None, description=IMAGES)
    utm_source: str | None = Field(
        default=None,
        max_length=UTM_SOURCE_READ_AT_MOST,
        description=UTM_SOURCE + "; null removes the tags",
    )

    @field_validator(*KEPT_IF_LEFT_OUT, mode="before")
    @classmethod
    def _given(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("give a value, or leave it out to keep the current one")
        return value


class NewsletterOut(BaseModel):
    slug: str
    name: str
    sender: str
    reply_to: str | None
    schedule: str
    weekly_schedule: str | None
    timezone: str
    min_articles: int
    max_articles: int
    template_set: str
    allowed_origins: list[str]
    reader_time: bool
    postal_address: str | None
    footer_text: str | None
    welcome_enabled: bool
    show_images: bool
    utm_source: str | None


class SourceOut(BaseModel):
    id: int
    kind: str
    url: str | None
    last_success_at: datetime | None
    last_error: str | None
    consecutive_failures: int


class FeedIn(Model):
    url: str = Field(min_length=1, max_length=2000)


class PollOut(BaseModel):
    """A poll started in the background: the sources show each feed's last result."""

    started: int
    already_running: int
    message: str


class ArticlesIn(Model):
    articles: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=1000,
        description="url, title, and optionally guid, summary, content_html, author, section, "
        "published (ISO 8601)",
    )


class PushOut(BaseModel):
    new: int
    updated: int
    unchanged: int
    rejected: list[str]


class ArticleOut(BaseModel):
    id: int
    title: str
    section: str | None
    byline: str | None
    published_at: datetime


class EditionIn(Model):
    newsletter: str = Field(min_length=1, max_length=64)
    article_ids: list[ArticleId] = Field(
        default=[], max_length=100, description="empty: the new articles"
    )
    intro_markdown: str | None = Field(default=None, max_length=20_000)
    subject: str | None = Field(default=None, max_length=250)
    send: Literal["now", "scheduled"] = "now"
    scheduled_for: datetime | None = Field(default=None, description="with send=scheduled")


class EditionOut(BaseModel):
    id: int
    newsletter: str
    kind: str
    status: str
    subject: str | None
    scheduled_for: datetime | None
    created_at: datetime
    counts: dict[str, int]
    total: int
    done: int
    #: Deliveries that bounced or were complained about after the relay accepted them.
    bounced: int = 0
    complained: int = 0
    per_second: float
    eta_seconds: float | None


class PreviewIn(Model):
    article_ids: list[ArticleId] = Field(default=[], max_length=100)
    intro_markdown: str | None = Field(default=None, max_length=20_000)
    subject: str | None = Field(default=None, max_length=250)


class PreviewOut(BaseModel):
    subject: str
    html: str
    text: str
    articles: list[str]
    html_bytes: int


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


# --- DKIM keys (admin only; never a private key) ----------------------------------------------


class DkimKeyIn(Model):
    domain: str = Field(
        min_length=1, max_length=253, description="the From domain, e.g. example.org"
    )
    selector: str | None = Field(
        default=None,
        min_length=1,
        max_length=63,
        description="default: the year and month, t202611 for rsa, e202611 for ed25519",
    )
    algorithm: DkimAlgorithm = DkimAlgorithm.rsa


class DkimKeyOut(BaseModel):
    id: int
    domain: str
    selector: str
    algorithm: str
    created_at: datetime
    #: The TXT record to publish: its name, its whole value, and one zone-file line.
    record_name: str
    record_value: str
    zone_line: str
    #: published, not published, different key, DNS did not answer; null when not checked.
    dns: str | None = None
    #: False when the stored key does not open with this server's secret key.
    readable: bool = True
