"""The DKIM record of a sender domain: does DNS publish the key Tidings signs with?"""

from tidings.doctor.findings import Finding, fail, ok, warn
from tidings.mail.dkim.published import KeyStatus, Publication


def check_dkim(statuses: list[KeyStatus], domain: str) -> list[Finding]:
    """One finding per stored key of ``domain`` (from mail/dkim's key report, whose lookups
    compare the published ``p=`` and algorithm with the stored public key)."""
    check = f"DKIM {domain}"
    mine = [status for status in statuses if status.key.domain == domain]
    if not mine:
        return [
            fail(
                check,
                f"no DKIM key for {domain}: its mail goes out unsigned",
                f"tidings dkim keygen {domain}, then publish the record it prints",
            )
        ]
    return [_finding(status) for status in mine]


def _finding(status: KeyStatus) -> Finding:
    key = status.key
    check = f"DKIM {key.domain}"
    name = key.record.name
    if not status.readable:
        return fail(
            check,
            f"{key.selector}: the stored key does not open with this TIDINGS_SECRET_KEY",
            "restore the secret key it was made with, or make a new key and publish it",
        )
    if status.dns == Publication.published:
        return ok(check, f"{name} publishes the {key.algorithm.value} key Tidings signs with")
    if status.dns == Publication.missing:
        return fail(check, f"{name} has no record", f"publish: {key.record.zone_line}")
    if status.dns == Publication.different:
        return fail(
            check,
            f"{name} publishes another key than the one Tidings signs with",
            f"replace its TXT record with: {key.record.zone_line}",
        )
    return warn(check, f"{name}: DNS did not answer", "try again; check the name servers")
