"""What routes need, taken from the app's state (set once by :func:`create_app`)."""

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Path, Request
from jinja2 import Environment

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.web.security import RateLimiter

#: Row ids in paths: positive and within the 32-bit columns that hold them.
MAX_ROW_ID = 2_147_483_647
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    db: Database
    pages: Environment
    #: Sign-ups per client address: 10 in 10 minutes is plenty for a household behind NAT.
    signup_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(10, 600))
    #: Failed and successful sign-in attempts per client address.
    login_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(10, 300))

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
