"""Fetch a feed over HTTP: timeouts, a size cap, conditional GET and bounded redirects."""

from dataclasses import dataclass

import httpx

from tidings import __version__
from tidings.errors import FeedTooLarge, FeedUnreachable

MAX_REDIRECTS = 5


@dataclass(frozen=True)
class FetchResult:
    """What a fetch brought back; ``body`` is None when the server said 304 Not Modified."""

    body: bytes | None
    content_type: str
    etag: str | None
    last_modified: str | None


def make_feed_client(timeout_seconds: float, base_url: str) -> httpx.Client:
    """One HTTP client for a polling round (connections are reused across sources)."""
    return httpx.Client(
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0)),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        headers={
            "User-Agent": f"Tidings/{__version__} (feed reader; +{base_url})",
            "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
            "application/json;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1",
        },
    )


def fetch_feed(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
) -> FetchResult:
    """GET ``url``; raises :class:`FeedUnreachable` or :class:`FeedTooLarge`."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                return FetchResult(None, "", etag, last_modified)
            if response.status_code >= 400:
                raise FeedUnreachable(f"HTTP {response.status_code} from {response.url}")
            body = _read_capped(response, max_bytes)
            return FetchResult(
                body=body,
                content_type=response.headers.get("content-type", ""),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )
    except httpx.TooManyRedirects as exc:
        raise FeedUnreachable(f"more than {MAX_REDIRECTS} redirects (a loop?)") from exc
    except httpx.TimeoutException as exc:
        raise FeedUnreachable(f"timed out: {type(exc).__name__}") from exc
    except httpx.HTTPError as exc:
        raise FeedUnreachable(f"{type(exc).__name__}: {exc}") from exc


def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FeedTooLarge(f"body of {int(declared)} bytes is over the {max_bytes}-byte cap")
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_bytes():
        received += len(chunk)
        if received > max_bytes:
            raise FeedTooLarge(f"body is over the {max_bytes}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)
