"""What an SMTP outcome means for a delivery, after Postfix's queue defaults.

First retry after 5 minutes, doubling, at most about 67 minutes apart, and give up after
5 days; every number is a setting.
"""

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from tidings.config import Settings

_NO_SUCH_USER = re.compile(r"\b5\.1\.\d{1,3}\b")


class Verdict(enum.StrEnum):
    sent = "sent"
    retry = "retry"
    failed = "failed"
    uncertain = "uncertain"


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
        """When to try again after ``attempts`` tries (1 = the first one failed)."""
        delay: timedelta = self.first * (2 ** max(attempts - 1, 0))
        return now + min(delay, self.maximum)

    def gives_up(self, queued_at: datetime, now: datetime) -> bool:
        """True once a delivery has been trying for longer than the give-up time."""
        return now - queued_at >= self.give_up


def verdict_for_code(code: int) -> Verdict:
    """2xx sent, 4xx try again, 5xx failed (anything else is treated as temporary)."""
    if 200 <= code < 300:
        return Verdict.sent
    if 500 <= code < 600:
        return Verdict.failed
    return Verdict.retry


def means_no_such_user(code: int, message: str) -> bool:
    """A 5.1.x enhanced status (bad mailbox or address): the address should be suppressed."""
    return 500 <= code < 600 and bool(_NO_SUCH_USER.search(message))


#: An edition's first results are watched for a relay that refuses everyone: while fewer
#: than this many are recorded, 5.1.x suppressions wait, and a mass refusal pauses it.
WATCHED_RESULTS = 100
#: So few refusals prove nothing (a short list with two dead addresses is not an outage).
MASS_REFUSAL_AT_LEAST = 20


def is_mass_refusal(results: int, same_refusals: int) -> bool:
    """True when most of an edition's first results are the same 5xx reply: the relay, not
    the readers, is refusing, so the edition stops instead of suppressing a whole list."""
    return same_refusals >= MASS_REFUSAL_AT_LEAST and 2 * same_refusals > results
