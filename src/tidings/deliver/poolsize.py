"""How many SMTP connections a worker keeps to its relay.

A message costs a few round trips on its connection, so across the internet one connection
sends a few messages a second whatever the machine could do; more connections hide the
latency. The pool starts at ``smtp_pool_size`` and, while jobs wait for a connection,
doubles as long as each step raised the accepted-message rate; a step that did
not is taken back and growth rests a while. It never exceeds ``smtp_max_connections``
(providers limit concurrent connections), and a relay that refuses a connection (a 421
greeting, a refused or timed-out connect) shrinks it to the connections that still work,
which is then its ceiling for a while.

This is the decision only, on a clock it is given, so it can be tested without timing;
:class:`~tidings.deliver.sending.SendPool` opens and retires the connections.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: A growth step helped when the rate rose at least this much (twice the connections would
#: ideally give twice the rate while latency is what limits it).
GROWTH_GAIN = 1.1
#: After a step that did not help, no growth for this long.
PLATEAU_REST_SECONDS = 30.0
#: After a refused connection, the pool stays at most as large as what worked for this long.
REFUSAL_REST_SECONDS = 60.0
#: A measuring window lasts at least this long (and two messages per connection).
WINDOW_SECONDS = 0.25


@dataclass
class PoolSizer:
    """The wanted number of connections, from the accepted messages and the refusals."""

    start: int
    cap: int
    clock: Callable[[], float] = time.monotonic
    size: int = field(init=False)
    _ceiling: int = field(init=False)
    _ceiling_until: float = 0.0
    _rest_until: float = 0.0
    #: The rate before the last growth step, while that step is being judged.
    _before_step: float | None = None
    _size_before_step: int = 0
    _count: int = 0
    _window_start: float | None = None

    def __post_init__(self) -> None:
        self.cap = max(1, self.cap)
        self.size = max(1, min(self.start, self.cap))
        self._ceiling = self.cap

    def accepted(self, backlog: bool) -> int:
        """Note one accepted message (``backlog``: jobs are waiting for a connection now);
        returns the number of connections wanted from now on."""
        now = self.clock()
        self._count += 1
        # The first message per connection after a change warms up (new connections spend
        # their first round trips on the greeting and EHLO); the window starts after it.
        if self._count == self.size:
            self._window_start = now
        if self._window_start is None:
            return self.size
        measured = self._count - self.size
        elapsed = now - self._window_start
        if measured < 2 * self.size or elapsed < WINDOW_SECONDS:
            return self.size
        self._judge(measured / elapsed, backlog, now)
        return self.size

    def refused(self, working: int) -> int:
        """A connection was refused and ``working`` connections remain: that is the size,
        and the most for a while; returns it."""
        self.shrunk(working)
        self._ceiling = self.size
        self._ceiling_until = self.clock() + REFUSAL_REST_SECONDS
        return self.size

    def shrunk(self, working: int) -> int:
        """A connection left (idle, or refused): ``working`` remain, and that is the size;
        measuring starts again. Returns it."""
        self.size = max(1, working)
        self._before_step = None
        self._restart()
        return self.size

    def _judge(self, rate: float, backlog: bool, now: float) -> None:
        """A window is complete at ``rate`` messages per second: judge the last step, and
        take the next one if jobs are waiting."""
        before, self._before_step = self._before_step, None
        self._restart()
        if before is not None and rate < before * GROWTH_GAIN:
            # The last step did not help: take it back and rest.
            self.size = self._size_before_step
            self._rest_until = now + PLATEAU_REST_SECONDS
            return
        if not backlog or now < self._rest_until:
            return
        if now >= self._ceiling_until:
            self._ceiling = self.cap
        step = min(self.size, self._ceiling - self.size)
        if step <= 0:
            return
        self._before_step = rate
        self._size_before_step = self.size
        self.size += step

    def _restart(self) -> None:
        self._count = 0
        self._window_start = None
