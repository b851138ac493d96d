"""Several worker processes under one supervisor: ``tidings worker --processes N``.

Each child is a whole worker process of its own (its own database conversation, its own
event loop and SMTP connections), started from a command line the caller gives, so this
module knows nothing of the command line itself. The supervisor

- restarts a child that dies (or that stops by itself while it should be running) after a
  back-off that doubles from :attr:`Backoff.first` up to :attr:`Backoff.most`, and gives up
  (stopping the others) once a child has died :attr:`Backoff.give_up` times in a row, each
  soon after its start: a broken setting must not spin for ever;
- forwards SIGTERM and SIGINT to every child as SIGTERM (each finishes its in-flight messages
  and releases the rest), waits for them at most ``grace`` seconds, then kills what is left;
- with ``drain``, ends when every child has exited cleanly (nothing left due).

A child reports what it did as one JSON line on its standard output (see :func:`stats_json`),
which the supervisor adds up. Children share the supervisor's standard error (their logs).
"""

import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from types import FrameType
from typing import IO

from tidings.db.dialect import is_postgres
from tidings.db.engine import Database
from tidings.deliver.writebehind import WorkerStats
from tidings.errors import InvalidInput


def process_count(asked: int | None, db: Database) -> int:
    """How many worker processes to run: as ``asked``, else one per core. SQLite takes one
    writer at a time, so it gets one unless more were asked for, which is refused."""
    postgres = is_postgres(db.engine)
    if asked is None:
        return (os.cpu_count() or 1) if postgres else 1
    if asked > 1 and not postgres:
        raise InvalidInput(
            f"--processes {asked} needs PostgreSQL: SQLite takes one writer at a time "
            "(run one worker process, --processes 1)"
        )
    return asked


log = logging.getLogger(__name__)

#: How often the supervisor looks at its children and at the signals it was sent.
TICK_SECONDS = 0.1
#: How long stopping children may take (they finish their in-flight messages) before the
#: ones left are killed.
STOP_GRACE_SECONDS = 120.0


@dataclass(frozen=True)
class Backoff:
    """When a child that died is started again, and when the supervisor gives up."""

    #: The pause before the first restart; it doubles with each death in a row.
    first: float = 1.0
    #: The longest pause between restarts.
    most: float = 30.0
    #: A child that ran this long before it died starts the count of deaths over.
    settled: float = 60.0
    #: Deaths in a row (each within ``settled`` of its start) after which it gives up.
    give_up: int = 5

    def pause(self, deaths: int) -> float:
        """The pause before restarting a child that died ``deaths`` times in a row."""
        return float(min(self.most, self.first * 2 ** max(0, deaths - 1)))


def stats_json(stats: WorkerStats) -> str:
    """A child's figures, as the one line it prints for its supervisor."""
    return json.dumps(asdict(stats), sort_keys=True)


def read_stats(text: str) -> WorkerStats | None:
    """The figures in a child's output (its last JSON line), or None if it printed none."""
    known = {f.name for f in fields(WorkerStats)}
    for line in reversed(text.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return WorkerStats(
                **{k: int(v) for k, v in found.items() if k in known and isinstance(v, int)}
            )
    return None


def add_stats(total: WorkerStats, more: WorkerStats) -> None:
    """Add ``more`` into ``total``."""
    for name in (f.name for f in fields(WorkerStats)):
        setattr(total, name, getattr(total, name) + getattr(more, name))


def exit_reason(code: int) -> str:
    """How a child ended, in words: ``exit code 1`` or ``signal SIGKILL``."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    output: IO[bytes] | None = None
    started: float = 0.0
    deaths: int = 0
    restart_at: float | None = None
    done: bool = False
    code: int | None = None


@dataclass
class Supervised:
    """What a supervised run did: the children's figures added up, how many restarts, and
    why it gave up (None: it did not)."""

    stats: WorkerStats = field(default_factory=WorkerStats)
    restarts: int = 0
    gave_up: str | None = None
    #: Children that did not end cleanly (killed after the grace, or a failing exit).
    unclean: int = 0


class Supervisor:
    """Runs ``count`` children (``command(i)`` is child i's argv) until a signal or, with
    ``drain``, until every one has exited cleanly."""

    def __init__(
        self,
        command: Callable[[int], Sequence[str]],
        count: int,
        *,
        drain: bool,
        backoff: Backoff = Backoff(),
        grace: float = STOP_GRACE_SECONDS,
    ) -> None:
        if count < 1:
            raise ValueError("a supervisor needs at least one child")
        self._command = command
        self._children = [_Child(i) for i in range(count)]
        self._drain = drain
        self._backoff = backoff
        self._grace = grace
        self._signals: list[int] = []
        self._result = Supervised()

    def run(self) -> Supervised:
        """Start the children and watch them (in the main thread: it takes SIGTERM and
        SIGINT for as long as it runs)."""
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for child in self._children:
                self._start(child)
            self._watch()
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for child in self._children:  # whatever happened, no child outlives us
                if child.proc is not None and child.proc.poll() is None:
                    child.proc.kill()
                    child.proc.wait()
                    self._collect(child)
        return self._result

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _start(self, child: _Child) -> None:
        argv = list(self._command(child.index))
        child.output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _collect)
        child.proc = subprocess.Popen(argv, stdout=child.output)
        child.started = time.monotonic()
        child.restart_at = None
        log.info(
            "worker %d started (pid %d)",
            child.index,
            child.proc.pid,
            extra={"worker": child.index, "pid": child.proc.pid},
        )

    def _collect(self, child: _Child) -> None:
        """Add what an exited child printed to the totals, and forget its process."""
        if child.output is not None:
            child.output.seek(0)
            stats = read_stats(child.output.read(64 * 1024).decode("utf-8", "replace"))
            child.output.close()
            child.output = None
            if stats is not None:
                add_stats(self._result.stats, stats)
                log.info(
                    "worker %d (pid %d) finished: sent %d, deferred %d, failed %d, "
                    "uncertain %d, released %d",
                    child.index,
                    child.proc.pid if child.proc else 0,
                    stats.sent,
                    stats.deferred,
                    stats.failed,
                    stats.uncertain,
                    stats.released,
                    extra={"worker": child.index},
                )
        child.proc = None

    def _watch(self) -> None:
        """Until a signal, a give-up, or (draining) every child done."""
        while not self._signals and self._result.gave_up is None:
            now = time.monotonic()
            for child in self._children:
                if child.proc is not None and (code := child.proc.poll()) is not None:
                    self._exited(child, code, now)
                elif child.restart_at is not None and now >= child.restart_at:
                    self._result.restarts += 1
                    self._start(child)
            if all(child.done for child in self._children):
                return
            time.sleep(TICK_SECONDS)

    def _exited(self, child: _Child, code: int, now: float) -> None:
        pid = child.proc.pid if child.proc else 0
        ran = now - child.started
        self._collect(child)
        if self._drain and code == 0:
            child.done, child.code = True, 0
            return
        child.deaths = 1 if ran >= self._backoff.settled else child.deaths + 1
        how = exit_reason(code) if code else "stopped by itself"
        if child.deaths >= self._backoff.give_up:
            self._result.gave_up = (
                f"worker {child.index} died {child.deaths} times in a row (last: {how}); "
                "stopping the others"
            )
            child.done, child.code = True, code
            log.error(self._result.gave_up, extra={"worker": child.index, "pid": pid})
            return
        pause = self._backoff.pause(child.deaths)
        child.restart_at = now + pause
        log.warning(
            "worker %d (pid %d) ended (%s); starting it again in %.0f s",
            child.index,
            pid,
            how,
            pause,
            extra={"worker": child.index, "pid": pid},
        )

    def _stop_all(self) -> None:
        """Ask every running child to stop (SIGTERM), wait up to the grace, kill the rest."""
        running = [c for c in self._children if c.proc is not None]
        if self._signals:
            log.info("stopping %d worker(s): they finish what they are sending", len(running))
        for child in running:
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        forwarded = len(self._signals)
        while any(c.proc is not None for c in running) and time.monotonic() < deadline:
            if len(self._signals) > forwarded:  # asked again: pass it on again
                forwarded = len(self._signals)
                for child in running:
                    if child.proc is not None:
                        child.proc.send_signal(signal.SIGTERM)
            for child in running:
                if child.proc is not None and (code := child.proc.poll()) is not None:
                    child.code = code
                    # Ended by our SIGTERM itself: it was still starting (a worker takes the
                    # signal over before it claims anything), so it held no work.
                    if code not in (0, -signal.SIGTERM):
                        self._result.unclean += 1
                    self._collect(child)
            time.sleep(TICK_SECONDS)
        for child in running:
            if child.proc is not None:
                log.error(
                    "worker %d (pid %d) did not stop within %.0f s; killing it",
                    child.index,
                    child.proc.pid,
                    self._grace,
                    extra={"worker": child.index},
                )
                child.proc.kill()
                child.proc.wait()
                self._result.unclean += 1
                self._collect(child)
