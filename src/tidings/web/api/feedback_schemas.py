"""What the API reads and writes about what came back (an edition's bounces, the sender's
health, a subscriber's history and its undo); the other resources' models are in
:mod:`tidings.web.api.schemas`."""

from datetime import datetime

from pydantic import BaseModel


class CameBackOut(BaseModel):
    """One inbound message (a DSN, a complaint, a provider event) about a delivery."""

    id: int
    received_at: datetime
    channel: str
    provider: str | None
    meaning: str
    status: str | None
    diagnostic: str | None
    changes: str | None


class EditionBounceOut(BaseModel):
    """A delivery refused at send time or that came back."""

    delivery_id: int
    subscriber_id: int | None
    email: str | None
    state: str
    feedback: str | None
    reply_code: int | None
    reply: str | None
    #: hard, soft or policy: the send-time refusal of a failed delivery.
    refusal: str | None
    last_attempt_at: datetime | None
    came_back: list[CameBackOut]


class DomainHealthOut(BaseModel):
    domain: str
    sent: int
    refused: int
    bounced: int
    rate_percent: float | None
    example: str | None


class InboundOut(CameBackOut):
    recipient_domain: str | None
    subscriber_id: int | None
    delivery_id: int | None


class SenderHealthOut(BaseModel):
    """Policy refusals at send time and policy bounces per receiving domain since ``since``."""

    days: int
    since: datetime
    sent: int
    refused: int
    bounced: int
    partial: bool
    domains: list[DomainHealthOut]
    recent: list[InboundOut]


class HistoryEventOut(BaseModel):
    id: int
    kind: str
    newsletter: str | None
    detail: str | None
    inbound_id: int | None
    created_at: datetime
    undone_at: datetime | None
    undone_by: str | None
    undoable: bool
    #: Where it came from: web, api, cli, console, import, mail, inbound, ...
    source: str | None = None


class UndoOut(BaseModel):
    event_id: int
    #: What the undo changed, in a sentence.
    changed: str
