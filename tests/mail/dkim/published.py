"""What a receiver of our mail sees: the published DKIM records, and dkimpy's own verify."""

import re
from collections.abc import Callable, Iterable

import dkim

from tidings.mail.dkim.store import KeyView

DnsFunc = Callable[..., bytes | None]


def from_zone_lines(lines: Iterable[str]) -> DnsFunc:
    """dkimpy's ``dnsfunc`` answering from zone lines as keygen prints them: the name, then
    the TXT value's quoted pieces joined, as a resolver would hand them over."""
    records = {}
    for line in lines:
        name = line.split()[0]
        records[name.encode()] = "".join(re.findall(r'"([^"]*)"', line)).encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return lookup


def dns_of(keys: Iterable[KeyView]) -> DnsFunc:
    return from_zone_lines(key.record.zone_line for key in keys)


def verified(message: bytes, dnsfunc: DnsFunc) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of ``message``, topmost first (a failure it
    raises, such as a body hash mismatch, is False, as in ``dkim.verify``)."""
    count = sum(1 for name, _ in dkim.rfc822_parse(message)[0] if name.lower() == b"dkim-signature")
    return [_one(message, i, dnsfunc) for i in range(count)]


def _one(message: bytes, idx: int, dnsfunc: DnsFunc) -> bool:
    try:
        return bool(dkim.DKIM(message).verify(idx=idx, dnsfunc=dnsfunc))
    except dkim.DKIMException:
        return False
