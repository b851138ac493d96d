"""Sending providers' webhooks: each provider's request verified (its signature, key or
credentials) and mapped to :class:`~tidings.inbound.events.ProviderEvent` values, pure but
for SNS's certificate fetch and subscription confirmation (see :mod:`.sns`) and the memory
of Mailgun tokens already used.

An unset provider setting means that provider's endpoint does not exist."""

from dataclasses import dataclass, field

from tidings.config import Settings
from tidings.inbound.events import ProviderEvent
from tidings.inbound.webhooks.common import (
    RecentTokens,
    Refusal,
    WebhookRefused,
    WebhookRequest,
)
from tidings.inbound.webhooks.mailgun import read_mailgun
from tidings.inbound.webhooks.postmark import read_postmark
from tidings.inbound.webhooks.sendgrid import read_sendgrid
from tidings.inbound.webhooks.ses import read_ses
from tidings.inbound.webhooks.sns import SnsHttp

PROVIDERS = ("ses", "mailgun", "sendgrid", "postmark")

__all__ = [
    "PROVIDERS",
    "Refusal",
    "SnsHttp",
    "WebhookRefused",
    "WebhookRequest",
    "WebhookState",
    "read_events",
]


@dataclass
class WebhookState:
    """What the webhooks keep between requests, one per web process: SNS's fetches (and
    their certificate cache) and the Mailgun tokens seen. A test app is given its own."""

    sns: SnsHttp = field(default_factory=SnsHttp)
    mailgun_tokens: RecentTokens = field(default_factory=RecentTokens)


def read_events(
    provider: str, request: WebhookRequest, settings: Settings, state: WebhookState
) -> list[ProviderEvent]:
    """The verified events of one provider's request; :class:`WebhookRefused` otherwise
    (an unknown provider is ``unconfigured``, as a known one without its setting)."""
    if provider == "ses":
        return read_ses(request, settings, state.sns)
    if provider == "mailgun":
        return read_mailgun(request, settings, state.mailgun_tokens)
    if provider == "sendgrid":
        return read_sendgrid(request, settings)
    if provider == "postmark":
        return read_postmark(request, settings)
    raise WebhookRefused(Refusal.unconfigured, "no such provider")
