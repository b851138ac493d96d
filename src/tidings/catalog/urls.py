"""The canonical form of a URL: one spelling per article or feed address."""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tidings.errors import InvalidInput

#: The longest URL taken, after canonicalisation (the common practical limit of browsers and
#: sitemaps): a longer one is refused, as it would crowd every edition it is in.
URL_LIMIT = 2048
_TRACKING_PREFIXES = ("utm_",)
_TRACKING_KEYS = {"fbclid", "gclid", "mc_cid", "mc_eid"}


def canonical_url(url: str) -> str:
    """The URL with scheme and host lower-cased, default port, fragment and trackers removed."""
    try:  # an unclosed IPv6 bracket or a port that is no number is a ValueError here
        parts = urlsplit(url.strip())
        hostname, port = parts.hostname, parts.port
    except ValueError as exc:
        raise InvalidInput(f"url {url!r} cannot be read: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not hostname:
        raise InvalidInput(f"url must be an absolute http(s) URL, not {url!r}")
    host = hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key not in _TRACKING_KEYS and not key.startswith(_TRACKING_PREFIXES)
    ]
    canonical = urlunsplit((scheme, host, parts.path or "/", urlencode(query), ""))
    if len(canonical) > URL_LIMIT:
        raise InvalidInput(
            f"url is {len(canonical):,} characters long; at most {URL_LIMIT:,} are taken"
        )
    return canonical


#: The most origins one newsletter's embedded form may be allowed on.
ORIGINS_AT_MOST = 20


def web_origin(raw: str) -> str:
    """A web origin as browsers send it in the ``Origin`` header: ``https://host[:port]``,
    lower-cased, without a default port, an international host in its ASCII (punycode) form
    as browsers write it; anything with a path, query or user is refused."""
    text = raw.strip().rstrip("/")
    canonical = canonical_url(text).removesuffix("/")
    parts = urlsplit(text)
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput(f"origin {raw!r} must be scheme and host only, like https://example.ge")
    host = urlsplit(canonical).hostname or ""
    if host.isascii():
        return canonical
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput(
            f"origin {raw!r} has a host name that cannot be written in ASCII"
        ) from None
    scheme, _, rest = canonical.partition("://")
    return f"{scheme}://{ascii_host}{rest.removeprefix(host)}"


def web_origins(raw: list[str] | tuple[str, ...]) -> list[str]:
    """Each origin checked by :func:`web_origin`, duplicates dropped, in the order given."""
    origins = list(dict.fromkeys(web_origin(item) for item in raw if item.strip()))
    if len(origins) > ORIGINS_AT_MOST:
        raise InvalidInput(f"at most {ORIGINS_AT_MOST} allowed origins per newsletter")
    return origins
