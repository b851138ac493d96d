"""What an attempt's outcome means for a delivery, after Postfix's queue defaults.

First retry after 5 minutes, doubling, at most about 67 minutes apart, and give up after
5 days; every number is a setting. :func:`verdict_for` turns an attempt's SMTP reply, or the
error it ended with, into the delivery's next state; it is pure (the caller gives the time).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from tidings.config import Settings
from tidings.db.models import DeliveryState
from tidings.mail.status import BounceKind, classify
from tidings.mail.transport import (
    PermanentDeliveryError,
    SmtpReply,
    TransientDeliveryError,
    UncertainDeliveryError,
)


@dataclass(frozen=True)
class RetryPolicy:
    first: timedelta
    maximum: timedelta
    give_up: timedelta
    at_most_once: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        return cls(
            first=timedelta(seconds=settings.retry_first_seconds),
            maximum=timedelta(seconds=settings.retry_max_seconds),
            give_up=timedelta(seconds=settings.give_up_seconds),
            at_most_once=settings.at_most_once,
        )

    def next_attempt(self, attempts: int, now: datetime) -> datetime:
        """When to try again after ``attempts`` tries (1 = the first one failed): the first
        wait, doubled per further try until the maximum (never computed past it: five days
        of retries are a hundred doublings, far beyond what a timedelta holds)."""
        delay = self.first
        for _ in range(max(attempts - 1, 0)):
            if delay >= self.maximum:
                break
            delay *= 2
        return now + min(delay, self.maximum)

    def gives_up(self, queued_at: datetime, now: datetime) -> bool:
        """True once a delivery has been trying for longer than the give-up time."""
        return now - queued_at >= self.give_up


@dataclass(frozen=True)
class Verdict:
    """What one attempt means for its delivery: the state it moves to, the reply to keep,
    when to try again, and what kind of bounce it was (see :mod:`tidings.mail.status`)."""

    state: DeliveryState
    code: int | None
    reply: str
    retry_at: datetime | None = None
    #: A refusal for good, by the one classifier: ``hard`` (the recipient is gone: the
    #: address is suppressed), ``soft`` (a point on its bounce score), ``policy`` (the
    #: sender's health: nothing happens to the reader). None when nothing bounced.
    bounce: BounceKind | None = None
    #: Not the server's answer but a failure of our own (a bug): worth a traceback.
    unexpected: bool = False


def verdict_for(
    policy: RetryPolicy,
    result: SmtpReply | Exception,
    attempts: int,
    queued_at: datetime,
    now: datetime,
) -> Verdict:
    """The verdict on an attempt (the ``attempts``-th of a delivery queued at ``queued_at``)
    that ended with the server's acceptance ``result`` or with the error ``result``.

    Accepted: sent. Refused for good (5xx): failed, with the kind of bounce the classifier
    sees in the reply. Cut off after the message data went out: uncertain when at most once
    is asked for, else like any temporary failure (4xx, timeout, no connection): deferred by
    the retry schedule, or failed once the give-up time has passed (a soft bounce when the
    receiver kept answering 4xx; nobody's bounce when it could not be reached at all).
    Anything else is a failure of ours: failed.
    """
    if isinstance(result, SmtpReply):
        return Verdict(DeliveryState.sent, result.code, result.message)
    if isinstance(result, PermanentDeliveryError):
        kind = classify(result.code, None, result.message)
        return Verdict(DeliveryState.failed, result.code, str(result), bounce=kind)
    if isinstance(result, UncertainDeliveryError) and policy.at_most_once:
        return Verdict(DeliveryState.uncertain, None, str(result))
    if isinstance(result, TransientDeliveryError):
        code = result.code or None
        if policy.gives_up(queued_at, now):
            reply = f"gave up after {attempts} attempts: {result}"
            answered = code is not None and 400 <= code < 500
            bounce = classify(code, None, result.message) if answered else None
            return Verdict(DeliveryState.failed, code, reply, bounce=bounce)
        retry_at = policy.next_attempt(attempts, now)
        return Verdict(DeliveryState.deferred, code, str(result), retry_at)
    reply = f"internal error: {type(result).__name__}: {result}"
    return Verdict(DeliveryState.failed, None, reply, unexpected=True)


#: An edition's first results are watched for a relay that refuses everyone: while fewer
#: than this many are recorded, what its refusals do to readers waits (suppressions and
#: bounce points), and a mass refusal pauses it.
WATCHED_RESULTS = 100
#: So few refusals prove nothing (a short list with two dead addresses is not an outage).
MASS_REFUSAL_AT_LEAST = 20


def is_mass_refusal(results: int, same_refusals: int) -> bool:
    """True when most of an edition's first results are the same 5xx reply: the relay, not
    the readers, is refusing, so the edition stops instead of suppressing a whole list."""
    return same_refusals >= MASS_REFUSAL_AT_LEAST and 2 * same_refusals > results
