"""The retry policy and the verdict on an attempt, table by table (pure: no database, no
server; the errors are the transport's own, as it raises them)."""

from datetime import UTC, datetime, timedelta

import pytest

from tidings.db.models import DeliveryState
from tidings.deliver.policy import (
    RetryPolicy,
    Verdict,
    is_mass_refusal,
    verdict_for,
)
from tidings.mail.status import BounceKind
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
                bounce=BounceKind.hard,
            ),
            id="5.1.1 refused: failed, a hard bounce",
        ),
        pytest.param(
            POLICY,
            PermanentDeliveryError(554, "5.7.1 rejected by policy"),
            1,
            YOUNG,
            Verdict(
                DeliveryState.failed, 554, "554 5.7.1 rejected by policy", bounce=BounceKind.policy
            ),
            id="5.7.1 refused: failed, the sender's policy problem",
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
            Verdict(
                DeliveryState.failed,
                421,
                "gave up after 9 attempts: 421 4.7.0 busy",
                bounce=BounceKind.policy,
            ),
            id="4.7.x past the give-up time: failed, policy",
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
    ("code", "message", "bounce"),
    [
        (550, "5.1.1 <a@example.ge>: no such user", BounceKind.hard),
        (553, "5.1.3 bad address syntax", BounceKind.hard),
        (550, "Requested action not taken: 5.1.10 null MX", BounceKind.hard),
        (550, "Requested action not taken: user unknown", BounceKind.hard),  # no status
        (552, "5.2.2 mailbox full", BounceKind.soft),
        (550, "Requested action not taken", BounceKind.soft),  # unclear: soft
        (550, "15.1.1 not an enhanced status", BounceKind.soft),
        (550, "5.7.1 blocked", BounceKind.policy),
        (554, "5.7.1 message rejected by policy", BounceKind.policy),
        (554, "Service unavailable; client host blocked using zen.spamhaus.org", BounceKind.policy),
        (550, "5.1.1 sender domain listed at spamhaus", BounceKind.hard),  # 5.1.x decides
    ],
)
def test_a_refusal_is_judged_by_the_one_classifier(
    code: int, message: str, bounce: BounceKind
) -> None:
    expected = Verdict(DeliveryState.failed, code, f"{code} {message}", bounce=bounce)
    assert verdict_for(POLICY, PermanentDeliveryError(code, message), 1, YOUNG, NOW) == expected


@pytest.mark.parametrize(
    ("code", "message", "bounce"),
    [
        (452, "4.2.2 mailbox full", BounceKind.soft),
        (451, "4.3.0 try again later", BounceKind.soft),
        (450, "4.7.1 greylisted, policy", BounceKind.policy),
        (0, "cannot connect: refused", None),  # nobody answered: nobody's bounce
    ],
)
def test_a_temporary_refusal_bounces_only_once_given_up(
    code: int, message: str, bounce: BounceKind | None
) -> None:
    result = TransientDeliveryError(code, message)
    young = verdict_for(POLICY, result, 2, YOUNG, NOW)
    assert (young.state, young.bounce) == (DeliveryState.deferred, None)
    old = verdict_for(POLICY, result, 30, OLD, NOW)
    assert (old.state, old.bounce) == (DeliveryState.failed, bounce)


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
