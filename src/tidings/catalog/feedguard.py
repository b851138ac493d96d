"""Which addresses a feed fetch may reach: public ones, unless private feeds are allowed.

The fetch checks the very address it connects to (see :mod:`tidings.ingest.transport`), so a
name that resolves differently a second later (DNS rebinding) gains nothing; adding a feed
checks its address up front, to refuse the obvious cases with a clear message.
"""

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from tidings.errors import FeedUnreachable, InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Decides whether a fetch may connect to an address.
AddressRule = Callable[[IPAddress], bool]

#: The NAT64 well-known prefix (RFC 6052): its last 32 bits are an IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Special-purpose ranges refused whatever the Python version's ``is_global`` says of them
#: (its tables change between releases): site-local (deprecated, yet Python calls it global),
#: unique-local, link-local, multicast, discard, documentation (old and RFC 9637), SRv6 SIDs,
#: local-use NAT64, and all of 2001::/23, including its few "globally reachable" anycast
#: services (PCP and TURN anycast reach the local gateway; no feed lives in any of them).
_NOT_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "fec0::/10",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
        "64:ff9b:1::/48",
    )
)
#: IPv4 ranges Python calls global that no feed lives at: the deprecated 6to4 relay anycast.
_NOT_PUBLIC_V4 = (ipaddress.IPv4Network("192.88.99.0/24"),)
#: How long adding a feed waits for DNS before letting the poll decide.
ADD_RESOLVE_SECONDS = 3.0
#: The longest a blocking step waits before looking at its deadline and cancel flag again.
SLICE_SECONDS = 0.2

ALLOW_HINT = "set TIDINGS_FEED_ALLOW_PRIVATE=true to poll intranet feeds"


class AddressRefused(FeedUnreachable):
    """The feed's host is not a public address (the message never says what listens there)."""


def refusal(host: str) -> str:
    """The one message for a refused host: the same whether or not anything listens there."""
    return (
        f"refused: {host} is not a public address (loopback, private, link-local, "
        f"multicast or reserved); {ALLOW_HINT}"
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 or 6to4 address leads to, if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address; IPv6 forms that carry an IPv4 address
    (mapped, NAT64, 6to4) are judged by that address, Teredo is refused outright."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo is not None:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address.scope_id or any(address in net for net in _NOT_PUBLIC_V6):
            return False
    elif any(address in net for net in _NOT_PUBLIC_V4):
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _getaddrinfo(host: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]))
        if address not in found:
            found.append(address)
    return found


def resolve(
    host: str, port: int, *, until: float, cancelled: Callable[[], bool] = lambda: False
) -> list[IPAddress]:
    """The addresses of ``host`` (a literal is its own answer), waiting no later than the
    monotonic time ``until``: getaddrinfo has no timeout, so it runs in a helper thread."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    answer: list[list[IPAddress] | BaseException] = []

    def lookup() -> None:
        try:
            answer.append(_getaddrinfo(host, port))
        except (OSError, UnicodeError, ValueError) as exc:
            answer.append(exc)

    worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    worker.start()
    while worker.is_alive():
        remaining = until - time.monotonic()
        if remaining <= 0 or cancelled():
            raise TimeoutError(f"no DNS answer for {host} in time")
        worker.join(min(SLICE_SECONDS, remaining))
    result = answer[0]
    if isinstance(result, BaseException):
        raise FeedUnreachable(f"cannot resolve {host}") from result
    return result


def _any_address(address: IPAddress) -> bool:
    return True


def address_rule(allow_private: bool) -> AddressRule:
    """Which addresses fetches may reach: public ones, or any when private feeds are allowed."""
    return _any_address if allow_private else is_public


def allowed_addresses(host: str, addresses: list[IPAddress], rule: AddressRule) -> list[IPAddress]:
    """The addresses a fetch may connect to; :class:`AddressRefused` if there are none."""
    allowed = [a for a in addresses if rule(a)]
    if not allowed:
        raise AddressRefused(refusal(host))
    return allowed


def check_feed_url(url: str, allow_private: bool) -> None:
    """Refuse, when a feed is added, a URL whose host is not public (unless allowed).

    A name that does not resolve (yet) is let through: the poll checks again, on the address
    it connects to, and records what it finds on the source.
    """
    if allow_private:
        return
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidInput(f"the port of {url!r} is not a number from 1 to 65535") from None
    try:
        addresses = resolve(host, port, until=time.monotonic() + ADD_RESOLVE_SECONDS)
    except (FeedUnreachable, TimeoutError):
        return
    try:
        allowed_addresses(host, addresses, is_public)
    except AddressRefused as exc:
        raise InvalidInput(f"feed {url}: {exc}") from None
