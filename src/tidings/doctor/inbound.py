"""The way back: will a bounce find its delivery? A synthetic DSN for a made-up delivery,
sent to its signed return path, is read by the inbound parser and its address verified with
this secret key and bounce domain; and the bounce domain must have an MX, or no bounce
reaches Tidings at all. Nothing is stored: the doctor changes no data."""

import dns.resolver

from tidings.doctor.findings import Finding, fail, ok, warn
from tidings.doctor.senders import SenderDomain
from tidings.inbound.parse import Kind, parse_message
from tidings.mail.dnsquery import LookupFailed, records
from tidings.mail.returnpath import Role, read_address, tagged_address

#: A delivery id no database reaches (19 digits, the most a return path carries).
MADE_UP_DELIVERY = 9_000_000_000_000_000_001
READER = "nobody@doctor.invalid"


def synthetic_bounce(return_path: str) -> bytes:
    """A DSN (RFC 3464) as a receiving MTA would send it: 5.1.1 for :data:`READER`."""
    return (
        "From: MAILER-DAEMON@mx.doctor.invalid\r\n"
        f"To: {return_path}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: text/plain\r\n\r\nThe mailbox does not exist.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.doctor.invalid\r\n\r\n"
        f"Final-Recipient: rfc822; {READER}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
        "--b--\r\n"
    ).encode("ascii")


def check_matching(secret: str, configured_domain: str, sender: SenderDomain) -> Finding:
    """The synthetic bounce is a DSN about the reader, and its recipient names the delivery."""
    check = f"inbound {sender.bounce_domain}"
    address = tagged_address(secret, Role.bounce, MADE_UP_DELIVERY, sender.bounce_domain)
    parsed = parse_message(synthetic_bounce(address))
    report = parsed.report_for(READER)
    tagged = read_address(secret, address, configured_domain.lower() or None)
    if parsed.kind != Kind.dsn or report is None or report.status != "5.1.1":
        return fail(check, f"a standard DSN was read as {parsed.kind}: {parsed.reason}", "a bug")
    if tagged is None or tagged.role != Role.bounce or tagged.ident != MADE_UP_DELIVERY:
        return fail(
            check,
            f"a bounce to {sender.bounce_domain} does not name its delivery",
            "set TIDINGS_BOUNCE_DOMAIN to the domain the return paths are on",
        )
    return ok(check, "a bounce to a delivery's return path is read and names that delivery")


def check_mx(found: dns.resolver.Resolver, domain: str) -> Finding:
    """Whether mail to the bounce domain goes anywhere (MX, or A as RFC 5321 5.1 allows)."""
    check = f"inbound MX {domain}"
    try:
        exchanges = sorted(
            (int(preference), host.rstrip("."))
            for preference, host in (mx.split() for mx in records(found, domain, "MX"))
        )
    except LookupFailed as exc:
        return warn(check, f"DNS did not answer: {exc}", "try again; check the name servers")
    if not exchanges:
        return fail(
            check,
            f"{domain} has no MX: bounces and List-Unsubscribe mail never come back",
            f"publish an MX for {domain} pointing at the host whose MTA pipes to "
            "tidings inbound receive (or runs tidings inbound serve); see the README",
        )
    hosts = ", ".join(host for _, host in exchanges)
    return ok(check, f"mail to {domain} goes to {hosts} (it must reach tidings inbound)")
