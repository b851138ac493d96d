"""The API's body for changing a scheduled edition (``PATCH /editions/{id}``)."""

from datetime import datetime

from pydantic import Field

from tidings.web.api.schemas import ArticleId, Model


class EditionPatch(Model):
    """Every field is optional: what is left out stays as it is."""

    subject: str | None = Field(
        default=None, max_length=250, description='"" goes back to the first headline'
    )
    intro_markdown: str | None = Field(
        default=None, max_length=20_000, description='"" removes the introduction'
    )
    article_ids: list[ArticleId] | None = Field(
        default=None, min_length=1, max_length=100, description="in order"
    )
    send_at: datetime | None = Field(default=None, description="an instant with its UTC offset")
