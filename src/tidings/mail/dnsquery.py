"""DNS lookups for the sender's own records (DKIM, SPF, DMARC), through dnspython: the
system's resolver, or the name servers of TIDINGS_DNS_NAMESERVERS (``host`` or ``host:port``)."""

import dns.exception
import dns.resolver

from tidings.config import Settings

#: Seconds for one whole lookup, retries included.
LIFETIME_SECONDS = 5.0


def resolver(settings: Settings) -> dns.resolver.Resolver:
    """A resolver for ``settings``; bounded by :data:`LIFETIME_SECONDS` per lookup."""
    servers = [item.strip() for item in settings.dns_nameservers.split(",") if item.strip()]
    found = dns.resolver.Resolver(configure=not servers)
    if servers:
        found.nameservers = []
        for server in servers:
            host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            found.nameservers.append(host or server)
            if port:
                found.port = int(port)
    found.lifetime = LIFETIME_SECONDS
    found.timeout = LIFETIME_SECONDS
    return found


class LookupFailed(Exception):
    """The name servers did not answer (timeout, SERVFAIL): not the same as "no record"."""


def records(found: dns.resolver.Resolver, name: str, kind: str) -> list[str]:
    """The records of ``kind`` at ``name`` as text ("10 mx.example.org." for MX); [] when the
    name or the record does not exist; :class:`LookupFailed` when DNS does not answer."""
    try:
        answer = found.resolve(name, kind)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise LookupFailed(f"{name} {kind}: {exc}") from exc
    return [rdata.to_text() for rdata in answer]


def txt_records(found: dns.resolver.Resolver, name: str) -> list[str]:
    """The TXT records of ``name``, each one string (its quoted pieces joined); [] when the
    name or the record does not exist; :class:`LookupFailed` when DNS does not answer."""
    try:
        answer = found.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise LookupFailed(f"{name}: {exc}") from exc
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
