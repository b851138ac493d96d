"""How the long-running commands log: human-readable lines by default, or with
``TIDINGS_LOG_FORMAT=json`` one JSON object per line for a log collector.

A JSON line carries ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus
the facts a call site passed with ``extra=`` when they are among :data:`FIELDS` (the
edition, the delivery, the newsletter, the SMTP reply...): only those, so a stray attribute
never carries a secret out. A traceback, when there is one, is in ``exception``.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

#: The facts a call site may attach with ``extra=`` that a JSON line carries.
FIELDS = (
    "edition",
    "delivery",
    "newsletter",
    "state",
    "smtp_code",
    "smtp_reply",
    "slot",
    "worker",
    "pid",
    "meaning",
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: Chatty loggers of the libraries, kept to warnings (all of alembic: newer releases also
#: announce each of their plugins at INFO on every schema check).
QUIET = ("mail.log", "apscheduler", "alembic")


class JsonFormatter(logging.Formatter):
    """One log record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if isinstance(value, int | float | bool):
                line[name] = value
            elif isinstance(value, datetime):
                line[name] = value.isoformat()
            elif value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["exception"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(log_format: str) -> None:
    """Log INFO and above to standard error, as text or as JSON lines (``log_format``)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
