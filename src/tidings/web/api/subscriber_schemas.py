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
    send_confirmation: bool = Field(
        default=False,
        description="mail a pending subscriber the confirmation link now (at most once in ten "
        "minutes, like a sign-up); else they stay pending until asked",
    )


class SubscriberPatch(Model):
    name: str | None = Field(default=None, max_length=200)
    locale: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    attributes: dict[str, str] | None = Field(default=None, max_length=100)


class SubscriptionOut(BaseModel):
    id: int
    newsletter: str
    newsletter_slug: str = ""
    #: The subscription's own status: pending, active or unsubscribed.
    status: str
    #: What it amounts to, as the console's list and the export show it: the status, or
    #: bounced / suppressed when the address is on the suppression list.
    shown_as: str = ""
    sections: list[str]
    consent_at: datetime | None
    consent_method: str | None
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    confirmation_sent_at: datetime | None = None


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
    send_confirmation: bool = Field(
        default=False,
        description="mail the new pending subscribers their confirmation link (ignored with "
        "confirmed)",
    )
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
    confirmations_queued: int = 0


class SuppressionIn(Model):
    email: str = Field(min_length=3, max_length=320)
    reason: Literal["manual", "complaint", "hard_bounce", "soft_bounce", "erasure"] = Field(
        default="manual", description="why the address is never to be mailed"
    )
    detail: str | None = Field(default=None, max_length=500)


class SuppressionOut(BaseModel):
    id: int
    email: str
    reason: str
    detail: str | None
    created_at: datetime
