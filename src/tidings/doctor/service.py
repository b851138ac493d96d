"""``tidings doctor``'s checks in order: the relay, the links, then each sender domain (SPF,
DKIM, DMARC) and the way back. Every check is bounded in time; none changes data."""

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.doctor import dkim, inbound, links, senders, smtp
from tidings.doctor.dmarc import check_dmarc
from tidings.doctor.findings import Finding, warn
from tidings.mail.dkim.published import key_report
from tidings.mail.dnsquery import resolver


def run_checks(db: Database, settings: Settings) -> list[Finding]:
    """Every finding, in the order a sender would fix them."""
    found = resolver(settings)
    findings = smtp.check_smtp(settings)
    findings += [links.check_links(settings), links.check_reachable(settings)]
    domains = senders.sender_domains(db, settings)
    if not domains:
        return [
            *findings,
            warn(
                "senders",
                "no newsletter yet: no sender domain to check",
                "tidings newsletter create",
            ),
        ]
    target = settings.smtp
    addresses = senders.relay_addresses(found, target.host) if target else []
    statuses = key_report(db, settings)
    keys = {status.key.domain for status in statuses if status.readable}
    bounce_domains_seen: set[str] = set()
    for sender in domains:
        if sender.bounce_domain not in bounce_domains_seen:  # SPF is the envelope's
            bounce_domains_seen.add(sender.bounce_domain)
            if target is None:
                findings.append(senders.no_relay(sender))
            else:
                findings.append(senders.check_spf(found, sender, target.host, addresses))
        findings += dkim.check_dkim(statuses, sender.domain)
        findings += check_dmarc(found, sender.domain, sender.bounce_domain, keys)
    for bounce in sorted(bounce_domains_seen):
        sender = next(s for s in domains if s.bounce_domain == bounce)
        findings.append(inbound.check_matching(settings.secret, settings.bounce_domain, sender))
        findings.append(inbound.check_mx(found, bounce))
    return findings
