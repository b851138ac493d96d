"""The INSERT construct with ``ON CONFLICT`` support for the session's database."""

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def upsert_insert(bind: Session | Connection) -> Any:
    """``postgresql.insert`` or ``sqlite.insert``: both offer ``on_conflict_do_*``."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
