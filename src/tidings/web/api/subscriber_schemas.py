"""What the API reads and writes about subscribers, their subscriptions and suppressions."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tidings.web.api.schemas import Model


class SubscriberIn(Model):
    email: str = Field(min_length=3, max_length=320)
    name: str | None = Field(default=None, max_length=200)
    newsletter: str = Field(min_length=1, max_length=64)
    confirmed: bool = Field(
        default=False, description="active at once (you hold their consent); else pending"
    )


class SubscriberPatch(Model):
    name: str | None = Field(default=None, max_length=200)
    locale: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    attributes: dict[str, str] | None = Field(default=None, max_length=100)


class SubscriptionOut(BaseModel):
    id: int
    newsletter: str
    status: str
    sections: list[str]
    consent_at: datetime | None
    consent_method: str | None
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


class SubscriberOut(BaseModel):
    id: int
    email: str
    name: str | None
    locale: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] = {}
    suppressed: bool = False
    created_at: datetime
    subscriptions: list[SubscriptionOut] | None = None


class SubscriptionPatch(Model):
    status: Literal["active", "unsubscribed"] = Field(
        description="active confirms a pending subscription; unsubscribed leaves"
    )


class ImportIn(Model):
    newsletter: str = Field(min_length=1, max_length=64)
    confirmed: bool = False
    subscribers: list[dict[str, str]] = Field(
        min_length=1,
        max_length=10_000,
        description="objects with email and optionally name, locale, timezone; other keys "
        "become attributes",
    )


class ImportOut(BaseModel):
    rows_read: int
    created: int
    updated: int
    unchanged: int
    duplicates_merged: int
    subscribed: int
    activated: int
    suppressed: int
    invalid: list[dict[str, Any]] = Field(
        description="refused records: position (the index in subscribers, from 0) and reason"
    )


class SuppressionIn(Model):
    email: str = Field(min_length=3, max_length=320)
    detail: str | None = Field(default=None, max_length=500)


class SuppressionOut(BaseModel):
    id: int
    email: str
    reason: str
    detail: str | None
    created_at: datetime
