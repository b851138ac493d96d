"""The pool sizer's decisions on a clock the test moves: grow while jobs wait and each step
raises the rate, take back a step that did not, never beyond the cap, and shrink to what
works when the relay refuses a connection."""

from tidings.deliver.poolsize import (
    PLATEAU_REST_SECONDS,
    REFUSAL_REST_SECONDS,
    WINDOW_SECONDS,
    PoolSizer,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def window(sizer: PoolSizer, clock: Clock, rate: float, backlog: bool = True) -> int:
    """Accept messages at ``rate`` per second until the sizer judges a window (the warm-up,
    then two messages per connection over at least WINDOW_SECONDS); the size it wants."""
    size = sizer.size
    needed = size + max(2 * size, int(rate * WINDOW_SECONDS) + 1)
    wanted = size
    for _ in range(needed):
        clock.now += 1 / rate
        wanted = sizer.accepted(backlog)
    return wanted


def test_doubles_while_each_step_raises_the_rate() -> None:
    clock = Clock()
    sizer = PoolSizer(start=4, cap=50, clock=clock)
    assert window(sizer, clock, rate=10) == 8  # the first step is a probe
    assert window(sizer, clock, rate=15) == 16  # it helped: another
    assert window(sizer, clock, rate=22) == 32
    assert window(sizer, clock, rate=40) == 50  # up to the cap


def test_a_step_that_did_not_help_is_taken_back_and_growth_rests() -> None:
    clock = Clock()
    sizer = PoolSizer(start=4, cap=50, clock=clock)
    assert window(sizer, clock, rate=10) == 8
    assert window(sizer, clock, rate=10.5) == 4  # no better: back to 4
    assert window(sizer, clock, rate=10) == 4  # resting
    clock.now += PLATEAU_REST_SECONDS
    assert window(sizer, clock, rate=10) == 8  # probes again


def test_no_growth_while_no_job_waits() -> None:
    clock = Clock()
    sizer = PoolSizer(start=4, cap=50, clock=clock)
    for _ in range(5):
        assert window(sizer, clock, rate=10, backlog=False) == 4


def test_never_beyond_the_cap() -> None:
    clock = Clock()
    sizer = PoolSizer(start=4, cap=7, clock=clock)
    rate = 10.0
    sizes = []
    for _ in range(6):
        sizes.append(window(sizer, clock, rate))
        rate *= 2
    assert sizes == [7, 7, 7, 7, 7, 7]
    assert PoolSizer(start=10, cap=3).size == 3  # a start above the cap starts at the cap


def test_a_refusal_shrinks_to_what_works_for_a_while() -> None:
    clock = Clock()
    sizer = PoolSizer(start=4, cap=50, clock=clock)
    assert window(sizer, clock, rate=10) == 8
    assert sizer.refused(working=5) == 5
    assert window(sizer, clock, rate=20) == 5  # the ceiling holds
    assert window(sizer, clock, rate=40) == 5
    clock.now += REFUSAL_REST_SECONDS
    assert window(sizer, clock, rate=80) == 10
    assert sizer.refused(working=0) == 1  # never below one connection
