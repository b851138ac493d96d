"""Why a slot was skipped or an edition failed, and which failures are only passing (the
next tick tries again): the words people read on the edition."""

import enum

from jinja2 import TemplateError
from sqlalchemy.exc import DBAPIError

from tidings.compose.render import EditionTooLarge
from tidings.db import errors as db_errors
from tidings.errors import InvalidInput, TidingsError

#: A failure note is for people to read; a template's traceback text can be long.
NOTE_LIMIT = 2000


class SkipReason(enum.StrEnum):
    too_few_articles = "too_few_articles"


class FailReason(enum.StrEnum):
    """Why an edition failed (kept in ``skip_reason``; ``note`` has the details)."""

    too_large = "too_large"
    template_error = "template_error"
    compose_error = "compose_error"
    start_error = "start_error"


class TemplateFailed(InvalidInput):
    """An email template could not be loaded or rendered (an operator's template, say)."""


def failure_of(exc: BaseException) -> tuple[FailReason, str]:
    """Why composing or starting an edition failed, as a reason code and a note for people."""
    if isinstance(exc, EditionTooLarge):
        return FailReason.too_large, str(exc)
    if isinstance(exc, TemplateFailed):
        return FailReason.template_error, str(exc)
    if isinstance(exc, DBAPIError):  # never the SQL text or its parameters: those are logged
        return FailReason.compose_error, db_errors.describe(exc)
    detail = str(exc) if isinstance(exc, TidingsError) else f"{type(exc).__name__}: {exc}"
    return FailReason.compose_error, detail[:NOTE_LIMIT]


def template_failure(exc: TemplateError) -> str:
    """What went wrong in an email template, where, for people to read."""
    note = f"the email template failed{_template_place(exc)}: {type(exc).__name__}: {exc}"
    return note[:NOTE_LIMIT]


def _template_place(exc: TemplateError) -> str:
    """Which template file and line failed: Jinja2 puts template frames in the traceback
    under the template's file name (a syntax error carries them itself)."""
    where, line = getattr(exc, "filename", None), getattr(exc, "lineno", None)
    trace = exc.__traceback__
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if filename.endswith((".html", ".txt")):
            where, line = filename, trace.tb_lineno
        trace = trace.tb_next
    if not where:
        return ""
    shown = "email/" + where.split("/email/", 1)[1] if "/email/" in where else where
    return f" ({shown}, line {line})" if line else f" ({shown})"


def is_transient(exc: BaseException) -> bool:
    """A passing database error (a lock, a deadlock, a lost connection): it says nothing about
    the slot or draft, so nothing is recorded and the next tick tries again."""
    return db_errors.is_transient(exc)
