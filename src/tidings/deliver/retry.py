"""Short transactions tried again when the database reports contention.

A deadlock, a serialization failure or a busy SQLite file says nothing about the work: the
same transaction succeeds a moment later (which errors count is :mod:`tidings.db.errors`'s
rule). Each attempt is a fresh transaction, so a retry repeats nothing half-done.
"""

import logging
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import OperationalError

from tidings.db.errors import is_contention

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
#: Attempts in all; the pauses between them are 50, 100, 200 and 400 ms.
RETRIES = 5
FIRST_PAUSE_SECONDS = 0.05


def retry_transient(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``work``, again after a short pause if the database reports a deadlock or a busy
    SQLite file; any other error, or contention that outlasts the retries, is raised."""
    for attempt in range(RETRIES):
        try:
            return work(*args, **kwargs)
        except OperationalError as exc:
            if attempt == RETRIES - 1 or not is_contention(exc):
                raise
            log.warning("database busy (%s); retrying", type(exc.orig).__name__)
            time.sleep(FIRST_PAUSE_SECONDS * 2**attempt)
    raise AssertionError("unreachable")
