"""Does DNS publish a key? What ``tidings dkim list`` and the console show beside each key."""

import enum
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dns.resolver

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.mail.dkim.store import KeyView, key_is_readable, list_keys
from tidings.mail.dnsquery import LookupFailed, resolver, txt_records

#: DNS lookups at once when listing keys.
MAX_LOOKUPS = 8


class Publication(enum.StrEnum):
    published = "published"
    missing = "not published"
    different = "different key"
    no_answer = "DNS did not answer"


def _tags(record: str) -> dict[str, str]:
    """A DKIM record's tags (RFC 6376 3.6.1: ``tag=value`` separated by ``;``, spaces
    anywhere in a value ignored, as in the base64 of ``p=``)."""
    tags = {}
    for part in record.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            tags[name.strip()] = "".join(value.split())
    return tags


def publication(found: dns.resolver.Resolver, key: KeyView) -> Publication:
    """Whether the key's selector name publishes this key's ``p=`` (and algorithm)."""
    try:
        records = txt_records(found, key.record.name)
    except LookupFailed:
        return Publication.no_answer
    if not records:
        return Publication.missing
    for record in records:
        tags = _tags(record)
        if tags.get("p") == key.public_key and tags.get("k", "rsa") == key.algorithm.value:
            return Publication.published
    return Publication.different


@dataclass(frozen=True)
class KeyStatus:
    key: KeyView
    dns: Publication | None
    #: False when the stored key does not open with this secret key.
    readable: bool


def key_report(db: Database, settings: Settings, check_dns: bool = True) -> list[KeyStatus]:
    """Every key, whether this secret opens it and (with ``check_dns``) whether DNS
    publishes it. The lookups run side by side, each bounded by the resolver's lifetime, so
    a silent name server costs that once, not once per key."""
    keys = list_keys(db)
    states: list[Publication | None] = [None] * len(keys)
    if check_dns and keys:
        found = resolver(settings)
        with ThreadPoolExecutor(min(len(keys), MAX_LOOKUPS)) as pool:
            states = list(pool.map(lambda key: publication(found, key), keys))
    return [
        KeyStatus(key, state, key_is_readable(settings, db, key.id))
        for key, state in zip(keys, states, strict=True)
    ]
