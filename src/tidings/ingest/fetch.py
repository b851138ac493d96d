"""Fetch a feed over HTTP: one deadline for the whole fetch, public addresses only (unless
allowed), a size cap on the decoded body, conditional GET and bounded redirects."""

import ssl
import threading
import zlib
from dataclasses import dataclass

import httpcore
import httpx

from tidings import __version__
from tidings.catalog.feedguard import AddressRule, address_rule
from tidings.config import Settings
from tidings.errors import FeedTooLarge, FeedUnreachable
from tidings.ingest.transport import FetchClock, GuardedBackend, GuardedTransport

MAX_REDIRECTS = 5
#: Only encodings decoded here, where the decoded size is capped as it grows.
ACCEPT_ENCODING = "gzip, deflate"
_NETWORK_ERRORS = (
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpx.HTTPError,
    httpx.InvalidURL,
)


@dataclass(frozen=True)
class FetchResult:
    """What a fetch brought back; ``body`` is None when the server said 304 Not Modified."""

    body: bytes | None
    content_type: str
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class FetchPolicy:
    """How every fetch of one poll behaves; made once per poll from the settings."""

    deadline_seconds: float
    max_bytes: int
    #: Public addresses only, unless TIDINGS_FEED_ALLOW_PRIVATE (see ingest/guard.py).
    address_allowed: AddressRule
    user_agent: str
    ssl_context: ssl.SSLContext

    @classmethod
    def from_settings(cls, settings: Settings) -> "FetchPolicy":
        """TIDINGS_FEED_TIMEOUT_SECONDS is the deadline of the whole fetch (DNS, connect, TLS,
        every redirect and the whole body), not of each read."""
        return cls(
            deadline_seconds=settings.feed_timeout_seconds,
            max_bytes=settings.feed_max_bytes,
            address_allowed=address_rule(settings.feed_allow_private),
            user_agent=f"Tidings/{__version__} (feed reader; +{settings.base_url})",
            ssl_context=httpx.create_ssl_context(trust_env=False),
        )


def _client(policy: FetchPolicy, clock: FetchClock) -> httpx.Client:
    """A client for one fetch; proxies from the environment are ignored (the address check
    must see the real destination)."""
    return httpx.Client(
        transport=GuardedTransport(
            GuardedBackend(clock, policy.address_allowed), policy.ssl_context
        ),
        timeout=httpx.Timeout(policy.deadline_seconds),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        trust_env=False,
        headers={
            "User-Agent": policy.user_agent,
            "Accept-Encoding": ACCEPT_ENCODING,
            "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
            "application/json;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1",
        },
    )


def fetch_feed(
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    policy: FetchPolicy,
    cancel: threading.Event | None = None,
) -> FetchResult:
    """GET ``url`` within the policy's deadline; raises :class:`FeedUnreachable` (its
    :class:`~tidings.catalog.feedguard.AddressRefused` for a non-public address) or
    :class:`FeedTooLarge`, and :class:`~tidings.ingest.transport.FetchCancelled` when
    ``cancel`` is set meanwhile."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    clock = FetchClock(policy.deadline_seconds, cancel)
    try:
        with _client(policy, clock) as client, client.stream("GET", url, headers=headers) as reply:
            if reply.status_code == 304:
                return FetchResult(None, "", etag, last_modified)
            if reply.status_code >= 400:
                raise FeedUnreachable(f"HTTP {reply.status_code} from {reply.url}")
            return FetchResult(
                body=_read_capped(reply, policy.max_bytes),
                content_type=reply.headers.get("content-type", ""),
                etag=reply.headers.get("etag"),
                last_modified=reply.headers.get("last-modified"),
            )
    except httpx.TooManyRedirects as exc:
        raise FeedUnreachable(f"more than {MAX_REDIRECTS} redirects (a loop?)") from exc
    except (httpcore.TimeoutException, httpx.TimeoutException) as exc:
        raise FeedUnreachable(f"timed out: {clock.expired_message()}") from exc
    except _NETWORK_ERRORS as exc:
        raise FeedUnreachable(f"{type(exc).__name__}: {exc}") from exc


def _decoder(reply: httpx.Response) -> "zlib._Decompress | None":
    """A decompressor for the reply's Content-Encoding (None for identity)."""
    encoding = reply.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    raise FeedUnreachable(f"unsupported Content-Encoding {encoding[:40]!r}")


def _read_capped(reply: httpx.Response, max_bytes: int) -> bytes:
    """The decoded body, refused as soon as it passes ``max_bytes`` (a compressed bomb is cut
    off while it inflates, not after)."""
    declared = reply.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FeedTooLarge(f"body of {int(declared)} bytes is over the {max_bytes}-byte cap")
    decoder = _decoder(reply)
    chunks: list[bytes] = []
    received = 0
    for raw in reply.iter_raw():
        try:
            chunk = raw if decoder is None else decoder.decompress(raw, max_bytes - received + 1)
        except zlib.error as exc:
            raise FeedUnreachable(f"the compressed body is corrupt: {exc}") from exc
        received += len(chunk)
        if received > max_bytes:
            raise FeedTooLarge(f"body is over the {max_bytes}-byte cap")
        chunks.append(chunk)
    if decoder is not None:
        rest = decoder.flush()
        if received + len(rest) > max_bytes:
            raise FeedTooLarge(f"body is over the {max_bytes}-byte cap")
        chunks.append(rest)
    return b"".join(chunks)
