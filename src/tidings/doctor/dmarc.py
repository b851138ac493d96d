"""DMARC (RFC 7489): a record at ``_dmarc.DOMAIN`` (or its organisational domain's) with a
policy, and a From domain that SPF or DKIM can align with."""

from dataclasses import dataclass

import dns.resolver

from tidings.doctor.findings import Finding, fail, ok, warn
from tidings.mail.dnsquery import LookupFailed, txt_records

POLICIES = ("none", "quarantine", "reject")


def organisational(domain: str) -> str:
    """The organisational domain, approximated by the last two labels: right for
    ``news.example.org``, wrong under a multi-label public suffix such as ``co.uk`` (the
    Public Suffix List would say; the doctor carries none, so it may call a pair aligned that
    is not, never the other way round for ordinary domains)."""
    return ".".join(domain.lower().rstrip(".").split(".")[-2:])


def aligned(one: str, other: str, strict: bool) -> bool:
    """RFC 7489 3.1: the same domain (strict), or the same organisational domain (relaxed)."""
    one, other = one.lower().rstrip("."), other.lower().rstrip(".")
    return one == other if strict else organisational(one) == organisational(other)


@dataclass(frozen=True)
class Record:
    #: Where it was found (the domain's own name or its organisational domain's).
    name: str
    tags: dict[str, str]


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            tags[name.strip().lower()] = value.strip()
    return tags


def dmarc_record(found: dns.resolver.Resolver, domain: str) -> Record | None:
    """The DMARC record that applies to ``domain``: its own, else its organisational
    domain's (RFC 7489 6.6.3); :class:`LookupFailed` when DNS does not answer."""
    names = [f"_dmarc.{domain}"]
    if organisational(domain) != domain:
        names.append(f"_dmarc.{organisational(domain)}")
    for name in names:
        records = [r for r in txt_records(found, name) if r.lower().startswith("v=dmarc1")]
        if len(records) == 1:
            return Record(name, _tags(records[0]))
    return None


def check_dmarc(
    found: dns.resolver.Resolver, domain: str, bounce_domain: str, dkim_domains: set[str]
) -> list[Finding]:
    """The policy, and alignment: SPF through the bounce domain (the envelope sender of every
    delivery), DKIM through a signing key of the From domain (Tidings signs with d= the From
    domain)."""
    check = f"DMARC {domain}"
    try:
        record = dmarc_record(found, domain)
    except LookupFailed as exc:
        return [warn(check, f"DNS did not answer: {exc}", "try again; check the name servers")]
    if record is None:
        return [
            fail(
                check,
                f"no DMARC record at _dmarc.{domain}: Gmail and Yahoo refuse bulk mail without one",
                f'publish TXT at _dmarc.{domain}: "v=DMARC1; p=none; rua=mailto:dmarc@{domain}", '
                "then move to p=quarantine or p=reject",
            )
        ]
    policy = record.tags.get("p", "").lower()
    found_at = f"{record.name}: p={policy}" if policy else record.name
    if policy not in POLICIES:
        result = fail(
            check,
            f"{record.name} has no valid policy (p=none, quarantine or reject)",
            f"add p=none (then quarantine or reject) to the record at {record.name}",
        )
    elif policy == "none":
        result = warn(
            check,
            f"{found_at}: reports only, nothing is protected",
            "move to p=quarantine, then p=reject, once the reports show only your own mail",
        )
    else:
        result = ok(check, found_at)
    return [result, _alignment(domain, bounce_domain, dkim_domains, record)]


def _alignment(domain: str, bounce_domain: str, dkim_domains: set[str], record: Record) -> Finding:
    check = f"DMARC alignment {domain}"
    strict_spf = record.tags.get("aspf", "r").lower() == "s"
    strict_dkim = record.tags.get("adkim", "r").lower() == "s"
    spf = aligned(bounce_domain, domain, strict_spf)
    dkim = any(aligned(signer, domain, strict_dkim) for signer in dkim_domains)
    if spf or dkim:
        ways = [
            *([f"SPF through the bounce domain {bounce_domain}"] if spf else []),
            *([f"DKIM through a key of {domain}"] if dkim else []),
        ]
        return ok(check, "aligned: " + " and ".join(ways))
    return fail(
        check,
        f"not aligned: the bounce domain {bounce_domain} is not {domain}'s"
        + (" (aspf=s asks for the same domain)" if strict_spf else "")
        + f", and no DKIM key signs for {domain}",
        f"set TIDINGS_BOUNCE_DOMAIN to a name under {organisational(domain)} "
        f"(bounces.{organisational(domain)}), or make a key: tidings dkim keygen {domain}",
    )
