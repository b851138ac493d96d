"""The retry policy and the verdict on an attempt, table by table (pure: no database, no
server; the errors are the transport's own, as it raises them)."""

from datetime import UTC, datetime, timedelta

import pytest

from tidings.db.models import DeliveryState
from tidings.deliver.policy import (
    RetryPolicy,
    Verdict,
    is_mass_refusal,
    means_no_such_user,
    verdict_for,
)
from tidings.mail.transport import (
    DeliveryError,
    PermanentDeliveryError,
    SmtpReply,
    TransientDeliveryError,
    UncertainDeliveryError,
)

NOW = datetime(2026, 6, 26, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(
    first=timedelta(minutes=5),
    maximum=timedelta(minutes=67),
    give_up=timedelta(days=5),
    at_most_once=False,
)
AT_MOST_ONCE = RetryPolicy(POLICY.first, POLICY.maximum, POLICY.give_up, at_most_once=True)


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [
        (0, timedelta(minutes=5)),
        (1, timedelta(minutes=5)),
        (2, timedelta(minutes=10)),
        (3, timedelta(minutes=20)),
        (4, timedelta(minutes=40)),
        (5, timedelta(minutes=67)),  # 80 minutes, capped
        (40, timedelta(minutes=67)),
    ],
)
def test_retries_double_from_the_first_delay_up_to_the_maximum(
    attempts: int, delay: timedelta
) -> None:
    assert POLICY.next_attempt(attempts, NOW) == NOW + delay


@pytest.mark.parametrize(
    ("trying_for", "gives_up"),
    [
        (timedelta(0), False),
        (timedelta(days=5) - timedelta(seconds=1), False),
        (timedelta(days=5), True),
        (timedelta(days=9), True),
    ],
)
def test_gives_up_after_the_give_up_time(trying_for: timedelta, gives_up: bool) -> None:
    assert POLICY.gives_up(NOW - trying_for, NOW) is gives_up


YOUNG = NOW - timedelta(hours=1)
OLD = NOW - timedelta(days=6)


@pytest.mark.parametrize(
    ("policy", "result", "attempts", "queued_at", "expected"),
    [
        pytest.param(
            POLICY,
            SmtpReply(250, "2.0.0 Ok: queued"),
            1,
            YOUNG,
            Verdict(DeliveryState.sent, 250, "2.0.0 Ok: queued"),
            id="accepted",
        ),
        pytest.param(
            POLICY,
            PermanentDeliveryError(550, "5.1.1 <a@example.ge>: no such user"),
            1,
            YOUNG,
            Verdict(
                DeliveryState.failed,
                550,
                "550 5.1.1 <a@example.ge>: no such user",
                suppress=True,
            ),
            id="5.1.1 refused: failed and suppressed",
        ),
        pytest.param(
            POLICY,
            PermanentDeliveryError(554, "5.7.1 rejected by policy"),
            1,
            YOUNG,
            Verdict(DeliveryState.failed, 554, "554 5.7.1 rejected by policy"),
            id="5.7.1 refused: failed, not suppressed",
        ),
        pytest.param(
            POLICY,
            TransientDeliveryError(451, "4.3.0 try again later"),
            1,
            YOUNG,
            Verdict(
                DeliveryState.deferred,
                451,
                "451 4.3.0 try again later",
                NOW + timedelta(minutes=5),
            ),
            id="4xx: deferred by the schedule",
        ),
        pytest.param(
            POLICY,
            TransientDeliveryError(0, "cannot connect: refused"),
            3,
            YOUNG,
            Verdict(
                DeliveryState.deferred,
                None,
                "0 cannot connect: refused",
                NOW + timedelta(minutes=20),
            ),
            id="no connection: deferred, no code kept",
        ),
        pytest.param(
            POLICY,
            TransientDeliveryError(421, "4.7.0 busy"),
            9,
            OLD,
            Verdict(DeliveryState.failed, 421, "gave up after 9 attempts: 421 4.7.0 busy"),
            id="4xx past the give-up time: failed",
        ),
        pytest.param(
            POLICY,
            UncertainDeliveryError(0, "connection lost: after DATA"),
            2,
            YOUNG,
            Verdict(
                DeliveryState.deferred,
                None,
                "0 connection lost: after DATA",
                NOW + timedelta(minutes=10),
            ),
            id="cut off after DATA: retried by default",
        ),
        pytest.param(
            AT_MOST_ONCE,
            UncertainDeliveryError(0, "connection lost: after DATA"),
            2,
            YOUNG,
            Verdict(DeliveryState.uncertain, None, "0 connection lost: after DATA"),
            id="cut off after DATA, at most once: uncertain",
        ),
        pytest.param(
            AT_MOST_ONCE,
            TransientDeliveryError(451, "4.3.0 later"),
            1,
            YOUNG,
            Verdict(DeliveryState.deferred, 451, "451 4.3.0 later", NOW + timedelta(minutes=5)),
            id="4xx, at most once: still deferred (nothing was sent)",
        ),
        pytest.param(
            POLICY,
            KeyError("slot"),
            1,
            YOUNG,
            Verdict(
                DeliveryState.failed, None, "internal error: KeyError: 'slot'", unexpected=True
            ),
            id="a bug of ours: failed, flagged",
        ),
        pytest.param(
            POLICY,
            DeliveryError(550, "neither permanent nor transient"),
            1,
            YOUNG,
            Verdict(
                DeliveryState.failed,
                None,
                "internal error: DeliveryError: 550 neither permanent nor transient",
                unexpected=True,
            ),
            id="an unclassified delivery error: a bug, failed",
        ),
    ],
)
def test_the_verdict_on_an_attempt(
    policy: RetryPolicy,
    result: SmtpReply | Exception,
    attempts: int,
    queued_at: datetime,
    expected: Verdict,
) -> None:
    assert verdict_for(policy, result, attempts, queued_at, NOW) == expected


@pytest.mark.parametrize(
    ("code", "message", "suppress"),
    [
        (550, "5.1.1 no such user", True),
        (553, "5.1.3 bad address syntax", True),
        (550, "Requested action not taken: 5.1.10 null MX", True),
        (550, "5.7.1 blocked", False),
        (550, "mailbox unavailable", False),
        (450, "4.1.1 mailbox busy", False),
        (451, "5.1.1 odd but temporary", False),  # a 4xx never suppresses
        (550, "15.1.1 not an enhanced status", False),
    ],
)
def test_only_a_5xx_with_a_5_1_x_status_suppresses(code: int, message: str, suppress: bool) -> None:
    assert means_no_such_user(code, message) is suppress


@pytest.mark.parametrize(
    ("results", "same", "mass"),
    [
        (30, 19, False),  # too few to prove anything
        (30, 20, True),
        (40, 20, False),  # not most of them
        (41, 21, True),
        (100, 50, False),
        (100, 51, True),
    ],
)
def test_a_mass_refusal_is_most_of_at_least_twenty(results: int, same: int, mass: bool) -> None:
    assert is_mass_refusal(results, same) is mass
