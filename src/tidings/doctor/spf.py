"""Does a domain's SPF record authorise an address? RFC 7208's check_host, enough of it to
answer for a sender: ip4, ip6, a, mx, include, exists, all and redirect=, at most 10 lookups
(4.6.4), each DNS answer bounded by the resolver. Macros and ptr depend on the message or on
reverse DNS: for those it says "cannot tell" rather than guess."""

import enum
import ipaddress
import re
from dataclasses import dataclass

import dns.resolver

from tidings.mail.dnsquery import LookupFailed, records, txt_records

#: RFC 7208, 4.6.4: mechanisms and modifiers that query DNS, in all.
MAX_LOOKUPS = 10
#: RFC 7208, 4.6.4: addresses looked up per mx mechanism.
MAX_MX = 10

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_MODIFIER = re.compile(r"^([a-zA-Z][a-zA-Z0-9_.-]*)=(.*)$")
_MECHANISM = re.compile(r"^([+?~-]?)([a-zA-Z0-9]+)(?::([^/]+))?(?:/(\d+))?(?://(\d+))?$")


class Verdict(enum.StrEnum):
    pass_ = "pass"  # noqa: S105 (an SPF result, not a password)
    fail = "fail"
    softfail = "softfail"
    neutral = "neutral"
    none = "none"
    permerror = "permerror"
    temperror = "temperror"
    #: A macro or ptr decides: the doctor cannot tell.
    unknown = "cannot tell"


_QUALIFIERS = {
    "+": Verdict.pass_,
    "": Verdict.pass_,
    "-": Verdict.fail,
    "~": Verdict.softfail,
    "?": Verdict.neutral,
}


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    #: The term that decided, or why there is no answer.
    reason: str


class _Stop(Exception):
    def __init__(self, verdict: Verdict, reason: str) -> None:
        super().__init__(reason)
        self.result = Result(verdict, reason)


def spf_record(found: dns.resolver.Resolver, domain: str) -> str | None:
    """The one ``v=spf1`` record of ``domain`` (None: there is none); :class:`_Stop` with
    permerror for more than one (4.5), temperror when DNS does not answer."""
    try:
        records = [
            record
            for record in txt_records(found, domain)
            if record.lower() == "v=spf1" or record.lower().startswith("v=spf1 ")
        ]
    except LookupFailed as exc:
        raise _Stop(Verdict.temperror, str(exc)) from exc
    if len(records) > 1:
        raise _Stop(Verdict.permerror, f"{domain} has {len(records)} SPF records (one allowed)")
    return records[0] if records else None


class _Evaluation:
    def __init__(self, found: dns.resolver.Resolver, address: IPAddress) -> None:
        self.found = found
        self.address = address
        self.lookups = 0

    def _count(self) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _Stop(Verdict.permerror, f"more than {MAX_LOOKUPS} DNS lookups (RFC 7208 4.6.4)")

    def _resolve(self, name: str, kind: str) -> list[str]:
        try:
            return records(self.found, name, kind)
        except LookupFailed as exc:
            raise _Stop(Verdict.temperror, str(exc)) from exc

    def _in_hosts(self, names: list[str], cidr4: str | None, cidr6: str | None) -> bool:
        kind = "A" if self.address.version == 4 else "AAAA"
        prefix = int((cidr4 if self.address.version == 4 else cidr6) or self.address.max_prefixlen)
        for name in names:
            for value in self._resolve(name, kind):
                network = ipaddress.ip_network(f"{value}/{prefix}", strict=False)
                if self.address in network:
                    return True
        return False

    def check_host(self, domain: str) -> Result:
        record = spf_record(self.found, domain)
        if record is None:
            return Result(Verdict.none, f"{domain} has no SPF record")
        redirect = None
        for term in record.split()[1:]:
            modifier = _MODIFIER.match(term)
            if modifier:
                if modifier.group(1).lower() == "redirect":
                    redirect = modifier.group(2)
                continue
            if self._matches(term, domain):
                qualifier = term[0] if term[0] in "+-~?" else ""
                return Result(_QUALIFIERS[qualifier], f"{term} in {domain}'s record")
        if redirect is not None:
            self._macro_free(redirect)
            self._count()
            result = self.check_host(redirect)
            if result.verdict == Verdict.none:
                return Result(Verdict.permerror, f"redirect={redirect}: it has no SPF record")
            return result
        return Result(Verdict.neutral, f"nothing in {domain}'s record matches")

    @staticmethod
    def _macro_free(value: str) -> None:
        if "%" in value:
            raise _Stop(Verdict.unknown, f"{value} uses a macro: it depends on each message")

    def _matches(self, term: str, domain: str) -> bool:
        parsed = _MECHANISM.match(term)
        if parsed is None:
            raise _Stop(Verdict.permerror, f"cannot read the term {term!r}")
        name, target, cidr4, cidr6 = parsed.group(2).lower(), *parsed.group(3, 4, 5)
        if target:
            self._macro_free(target)
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            return self._in_network(term, target, cidr4)
        if name == "ptr":
            raise _Stop(Verdict.unknown, "ptr depends on reverse DNS (and is deprecated)")
        self._count()
        if name == "a":
            return self._in_hosts([target or domain], cidr4, cidr6)
        if name == "mx":
            exchanges = [v.split()[-1] for v in self._resolve(target or domain, "MX")][:MAX_MX]
            return self._in_hosts(exchanges, cidr4, cidr6)
        if name == "exists":
            return bool(target) and bool(self._resolve(str(target), "A"))
        if name == "include" and target:
            result = self.check_host(target)
            if result.verdict in (Verdict.temperror, Verdict.unknown):
                raise _Stop(result.verdict, result.reason)
            if result.verdict in (Verdict.none, Verdict.permerror):
                raise _Stop(Verdict.permerror, f"include:{target}: {result.reason}")
            return result.verdict == Verdict.pass_
        raise _Stop(Verdict.permerror, f"unknown mechanism {term!r}")

    def _in_network(self, term: str, target: str | None, cidr: str | None) -> bool:
        try:
            network = ipaddress.ip_network(f"{target}/{cidr}" if cidr else str(target), False)
        except ValueError:
            raise _Stop(Verdict.permerror, f"cannot read the network in {term!r}") from None
        return network.version == self.address.version and self.address in network


def check_host(found: dns.resolver.Resolver, address: IPAddress, domain: str) -> Result:
    """What ``domain``'s SPF record says of mail from ``address``."""
    try:
        return _Evaluation(found, address).check_host(domain)
    except _Stop as stop:
        return stop.result
