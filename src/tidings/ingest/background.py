"""Poll now, off the request path: a web request starts the poll and returns at once.

A small pool (``feed_poll_concurrency`` threads) runs the fetches; a source already being
polled by it is not queued again, so a press of "Poll now" repeated a hundred times still
fetches each feed once, and the queue never holds more than one entry per source. The web app
owns one instance and closes it when it shuts down, which cancels the fetches in flight.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.ingest.fetch import FetchPolicy
from tidings.ingest.service import feed_sources, poll_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollStarted:
    """What pressing "Poll now" did: feeds started now, and feeds already being polled."""

    started: int
    already_running: int

    @property
    def message(self) -> str:
        if not self.started and not self.already_running:
            return "This newsletter has no feeds to poll."
        parts = [f"Polling {self.started} feed(s) in the background"]
        if self.already_running:
            parts.append(f"{self.already_running} already being polled")
        return "; ".join(parts) + ". The sources show each feed's last result."


class BackgroundPolls:
    """Runs poll-now requests in a bounded pool, at most one poll per source at a time."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._pool = ThreadPoolExecutor(
            settings.feed_poll_concurrency, thread_name_prefix="poll-now"
        )
        self._busy: set[int] = set()
        self._lock = threading.Lock()
        self._cancel = threading.Event()

    def start(self, slug: str) -> PollStarted:
        """Queue a poll of each of the newsletter's feeds that is not being polled already;
        :class:`~tidings.errors.NotFound` for an unknown newsletter."""
        sources = feed_sources(self._db, slug)
        with self._lock:
            fresh = [(sid, url) for sid, url in sources if sid not in self._busy]
            self._busy.update(sid for sid, _ in fresh)
        if fresh:
            policy = FetchPolicy.from_settings(self._settings)
            for source_id, url in fresh:
                self._pool.submit(self._poll, policy, source_id, url)
        return PollStarted(len(fresh), len(sources) - len(fresh))

    def polling(self) -> frozenset[int]:
        """The ids of the sources being polled (or queued) right now."""
        with self._lock:
            return frozenset(self._busy)

    def _poll(self, policy: FetchPolicy, source_id: int, url: str) -> None:
        try:
            poll_source(self._db, policy, source_id, url, self._cancel)
        except Exception:  # poll_source records feed errors; this is a last resort
            log.exception("background poll of source %s failed", source_id)
        finally:
            with self._lock:
                self._busy.discard(source_id)

    def close(self) -> None:
        """Cancel the fetches in flight (each stops within a fraction of a second), drop the
        queued ones, and wait for the threads."""
        self._cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
