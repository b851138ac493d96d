"""What routes need, taken from the app's state (set once by :func:`create_app`)."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Path, Request
from jinja2 import Environment

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.ratelimit import RateLimit, allow

#: Sign-ups per client address: 10 in 10 minutes is plenty for a household behind NAT.
SIGNUPS = RateLimit("signup", 10, timedelta(minutes=10))
#: Sign-in attempts (failed or not) per client address.
SIGN_INS = RateLimit("sign-in", 10, timedelta(minutes=5))

#: Row ids in paths: positive and within the 32-bit columns that hold them.
MAX_ROW_ID = 2_147_483_647
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    db: Database
    pages: Environment

    def allow(self, rule: RateLimit, request: Request) -> bool:
        """Count one attempt of this client under ``rule`` (shared by every web process)."""
        return allow(self.db, self.settings.secret, rule, client_ip(request))

    @property
    def secure_cookies(self) -> bool:
        return self.settings.base_url.startswith("https://")


def web_context(request: Request) -> WebContext:
    context = request.app.state.tidings
    assert isinstance(context, WebContext)
    return context


def client_ip(request: Request) -> str:
    """The client's address (uvicorn's proxy_headers applies X-Forwarded-For from proxies it
    trusts)."""
    return request.client.host if request.client else "unknown"
