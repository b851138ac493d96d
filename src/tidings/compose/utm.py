"""Campaign tags on article links: publishers see in their analytics which visits came from
the newsletter (``utm_source`` per newsletter, ``utm_medium=email``, ``utm_campaign`` per
edition). Added at render time, so the stored article keeps its own address."""

from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

UTM_MEDIUM = "email"
#: The tags this module writes; the same tags already in a link (a feed's own
#: ``utm_source=rss``) give way to them, or the visit would be counted twice or wrongly.
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")


def _key(pair: str) -> str:
    return unquote_plus(pair.split("=", 1)[0]).strip().lower()


def with_utm(url: str, source: str | None, campaign: str) -> str:
    """``url`` with ``utm_source=source&utm_medium=email&utm_campaign=campaign`` after its
    own query (kept as written, but for earlier utm tags of these three names) and before
    its fragment; unchanged without a ``source`` or when it is not an http(s) link."""
    if not source or not source.strip():
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return url
    kept = [pair for pair in parts.query.split("&") if pair and _key(pair) not in UTM_KEYS]
    tags = {"utm_source": source.strip(), "utm_medium": UTM_MEDIUM, "utm_campaign": campaign}
    query = "&".join([*kept, urlencode(tags)])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
