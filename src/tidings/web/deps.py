"""What routes need, taken from the app's state (set once by :func:`create_app`)."""

import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated

from annotated_types import Interval
from fastapi import Request
from jinja2 import Environment

from tidings.access.ratelimit import RateLimit, allow
from tidings.audience.signup import SignupQueue
from tidings.config import IPNetwork, Settings
from tidings.db.engine import Database
from tidings.db.types import MAX_ROW_ID as MAX_ROW_ID  # web/api imports it from here
from tidings.ingest.background import BackgroundPolls

#: Sign-ups per client address: 10 in 10 minutes is plenty for a household behind NAT.
SIGNUPS = RateLimit("signup", 10, timedelta(minutes=10))
#: Sign-in attempts (failed or not) per client address.
SIGN_INS = RateLimit("sign-in", 10, timedelta(minutes=5))

#: Row ids in paths, queries and forms: positive and within the 32-bit columns that hold
#: them (a larger one never reaches the database, where it would overflow).
RowId = Annotated[int, Interval(ge=1, le=MAX_ROW_ID)]
#: A keyset page's cursor in a query: the last row id of the page before, 0 for the first.
AfterRowId = Annotated[int, Interval(ge=0, le=MAX_ROW_ID)]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class WebContext:
    settings: Settings
    db: Database
    pages: Environment
    #: Sign-ups are recorded and confirmed from here, after the visitor has been answered.
    signups: SignupQueue = field(init=False)

    #: "Poll now" runs here, off the request path (closed when the app shuts down).
    polls: BackgroundPolls = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signups", SignupQueue(self.db, self.settings))
        object.__setattr__(self, "polls", BackgroundPolls(self.db, self.settings))

    def allow(self, rule: RateLimit, request: Request) -> bool:
        """Count one attempt of this client under ``rule`` (shared by every web process)."""
        return allow(self.db, self.settings.secret, rule, self.client_ip(request))

    def client_ip(self, request: Request) -> str:
        """The client's address, believing X-Forwarded-For only from trusted proxies."""
        return client_ip(request, self.settings.trusted_proxy_networks)

    def page_url(self, request: Request) -> str:
        """This page's public address: BASE_URL and the path, never the Host header."""
        return self.settings.base_url + request.url.path

    @property
    def secure_cookies(self) -> bool:
        return self.settings.base_url.startswith("https://")


def web_context(request: Request) -> WebContext:
    context = request.app.state.tidings
    assert isinstance(context, WebContext)
    return context


def _address(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address: IPAddress, proxies: tuple[IPNetwork, ...]) -> bool:
    return any(address in network for network in proxies)


def client_ip(request: Request, proxies: tuple[IPNetwork, ...]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is read from the right (the entries the trusted
    proxies appended) and the first address that is not itself a trusted proxy is the client;
    entries further left are whatever the client chose to send, so they are never believed.
    The one answer for the consent record and the rate limits.
    """
    peer = request.client.host if request.client else "unknown"
    current = _address(peer)
    if current is None or not _trusted(current, proxies):
        return peer
    hops = ",".join(request.headers.getlist("x-forwarded-for")).split(",")
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # malformed: nothing at or left of it can be believed
        current = address
        if not _trusted(address, proxies):
            break
    return str(current)
