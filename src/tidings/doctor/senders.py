"""The sender domains (every newsletter's From domain and the bounce domain its deliveries
go out with) and whether SPF lets the relay send for them."""

import ipaddress
from dataclasses import dataclass

import dns.resolver

from tidings.catalog.newsletters import list_newsletters
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.doctor.findings import Finding, fail, ok, warn
from tidings.doctor.spf import IPAddress, Verdict, check_host
from tidings.mail.addresses import parse_mailbox
from tidings.mail.dnsquery import LookupFailed, records
from tidings.mail.edition import address_domain
from tidings.mail.returnpath import bounce_domain


@dataclass(frozen=True)
class SenderDomain:
    #: The From address's domain (what DMARC protects, what DKIM signs for).
    domain: str
    #: The envelope sender's domain (what SPF is asked about).
    bounce_domain: str


def sender_domains(db: Database, settings: Settings) -> list[SenderDomain]:
    """Each From domain of the newsletters once, with its bounce domain."""
    found: dict[str, SenderDomain] = {}
    for newsletter in list_newsletters(db):
        address = parse_mailbox(newsletter.sender)[1]  # normalised: lower case
        domain = address_domain(address)
        found.setdefault(
            domain, SenderDomain(domain, bounce_domain(settings.bounce_domain, address))
        )
    return sorted(found.values(), key=lambda sender: sender.domain)


def relay_addresses(found: dns.resolver.Resolver, host: str) -> list[IPAddress]:
    """The relay's addresses: the host itself when it is an IP literal, else its A and AAAA
    records. Approximate: a relay may send out from other addresses than it is reached at
    (its SPF include: then says so)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    addresses: list[IPAddress] = []
    for kind in ("A", "AAAA"):
        try:
            addresses += [ipaddress.ip_address(text) for text in records(found, host, kind)]
        except LookupFailed:
            continue
    return addresses


def check_spf(
    found: dns.resolver.Resolver, sender: SenderDomain, relay: str, addresses: list[IPAddress]
) -> Finding:
    """Whether the bounce domain's SPF record authorises every address of the relay."""
    domain = sender.bounce_domain
    check = f"SPF {domain}"
    if not addresses:
        return warn(
            check,
            f"cannot tell: the relay {relay} has no address in DNS",
            "check the host of TIDINGS_SMTP_URL",
        )
    results = [(address, check_host(found, address, domain)) for address in addresses]
    for address, result in results:
        if result.verdict == Verdict.none:
            return fail(
                check,
                f"no SPF record at {domain} (the envelope sender's domain)",
                f'publish TXT at {domain}: "v=spf1 {_mechanism(address)} -all" '
                "(or your relay provider's include:)",
            )
        if result.verdict in (Verdict.temperror, Verdict.unknown):
            return warn(check, f"cannot tell for {address}: {result.reason}", "")
        if result.verdict == Verdict.permerror:
            return fail(check, f"the SPF record is broken: {result.reason}", "correct the record")
        if result.verdict != Verdict.pass_:
            return fail(
                check,
                f"SPF at {domain} does not authorise the relay {relay} ({address}): "
                f"{result.verdict.value}, {result.reason}",
                f"add {_mechanism(address)} (or your relay provider's include:) to the "
                f"record at {domain}, before its all",
            )
    said = ", ".join(f"{address} by {result.reason}" for address, result in results)
    return ok(check, f"authorises the relay {relay}: {said}")


def _mechanism(address: IPAddress) -> str:
    return f"ip{address.version}:{address}"


def no_relay(sender: SenderDomain) -> Finding:
    return warn(
        f"SPF {sender.bounce_domain}",
        "cannot tell: no TIDINGS_SMTP_URL, so no relay to authorise",
        "set TIDINGS_SMTP_URL, then run tidings doctor again",
    )
