"""What routes need, taken from the app's state (set once by :func:`create_app`)."""

from dataclasses import dataclass

from fastapi import Request
from jinja2 import Environment

from tidings.config import Settings
from tidings.db.engine import Database


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    db: Database
    pages: Environment


def web_context(request: Request) -> WebContext:
    context = request.app.state.tidings
    assert isinstance(context, WebContext)
    return context
