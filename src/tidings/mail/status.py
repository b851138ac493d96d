"""One classifier for what a receiver says: an SMTP reply at send time and a bounce that
comes back later are judged by the same rule, by their enhanced status code (RFC 3463).

- recipient gone (5.1.x): ``hard``: the address is suppressed at once;
- policy or reputation (x.7.x, blocklists): ``policy``: it counts against the *sender*'s
  health and never suppresses the reader;
- mailbox full (x.2.2), any other 4.x.x, and anything unclear: ``soft``: a point on the
  address's bounce score.
"""

import enum
import re

_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
#: Words of a blocklist or reputation refusal given without an x.7.x code.
_POLICY_WORDS = re.compile(
    r"\b(spamhaus|blocklist(ed)?|blacklist(ed)?|block ?list|listed at|rbl|reputation|"
    r"spam policy|policy reasons?|dmarc|not authori[sz]ed to send)\b",
    re.IGNORECASE,
)
#: Words of a gone recipient given without a 5.1.x code (old servers answer bare 550).
_GONE_WORDS = re.compile(
    r"\b(user unknown|unknown user|no such (user|mailbox|recipient)|"
    r"mailbox (does not exist|not found|unavailable)|recipient (address )?rejected|"
    r"address rejected|does not exist|invalid recipient)\b",
    re.IGNORECASE,
)


class BounceKind(enum.StrEnum):
    hard = "hard"
    soft = "soft"
    policy = "policy"


def enhanced_status(text: str) -> str | None:
    """The first enhanced status code (``5.1.1``) in a reply or diagnostic line."""
    found = _ENHANCED.search(text)
    return ".".join(found.groups()) if found else None


def classify(code: int | None, status: str | None, text: str = "") -> BounceKind:
    """The kind of a refusal: its basic reply ``code`` (550; None when unknown), its enhanced
    ``status`` (``5.1.1``; found in ``text`` when None) and its text."""
    status = status or enhanced_status(text)
    if status is not None:
        klass, subject, _detail = status.split(".")
        if subject == "7":
            return BounceKind.policy
        if klass == "5" and subject == "1":
            return BounceKind.hard
        if klass == "5" and _POLICY_WORDS.search(text):
            return BounceKind.policy
        return BounceKind.soft
    if _POLICY_WORDS.search(text):
        return BounceKind.policy
    if code is not None and 500 <= code < 600 and _GONE_WORDS.search(text):
        return BounceKind.hard
    return BounceKind.soft
