"""Which database errors pass (contention, a lost connection, a server going down) and which
say something is wrong with the data or the SQL: the one home of that rule."""

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

#: PostgreSQL SQLSTATEs of contention: deadlock, serialization failure, lock not available.
CONTENTION_SQLSTATES = frozenset({"40P01", "40001", "55P03"})
#: SQLSTATE classes of an outage: connection, transaction rollback, insufficient resources,
#: operator intervention (shutdown, statement timeout), system error.
OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
#: SQLite result codes (extended ones start with these) of a busy or unreachable file.
SQLITE_PASSING = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_FULL")


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _sqlite_name(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlite_errorname", None)


def is_contention(exc: BaseException) -> bool:
    """A deadlock, serialization failure, lock timeout or busy SQLite file: the same work
    succeeds when tried again a moment later."""
    if not isinstance(exc, OperationalError):
        return False
    name = _sqlite_name(exc)
    if name is not None:
        return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
    return _sqlstate(exc) in CONTENTION_SQLSTATES or "database is locked" in str(exc.orig)


def is_transient(exc: BaseException) -> bool:
    """Contention or an outage (a lost or refused connection, an exhausted pool, a server
    shutting down, a statement timeout): it says nothing about the data, so the work is left
    to be tried again later. Bad data or bad SQL (a too-long value, malformed JSON) is not."""
    if isinstance(exc, DisconnectionError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError) or is_contention(exc):
        return True
    if not isinstance(exc, OperationalError):
        return False
    name = _sqlite_name(exc)
    if name is not None:
        return name.startswith(SQLITE_PASSING)
    sqlstate = _sqlstate(exc)
    return sqlstate is None or sqlstate[:2] in OUTAGE_SQLSTATE_CLASSES


def outage_name(exc: BaseException) -> str:
    """The name of what went wrong, for a log line about an outage: the driver's error, or
    the pool's (never its message, which may carry SQL)."""
    return type(getattr(exc, "orig", None) or exc).__name__


def describe(exc: DBAPIError) -> str:
    """A short sentence for a database error: the driver's error and the first line of its
    message, never the SQL text or its parameters (those go to the log)."""
    first_line = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
    return f"a database error ({type(exc.orig).__name__}: {first_line[:200]})"
