"""What one check found: a status, what is (or is wrong), and how to fix it."""

import enum
from dataclasses import dataclass


class Status(enum.StrEnum):
    ok = "ok"
    #: Works, but not as it should for real mail (or the doctor cannot tell).
    warn = "warn"
    #: Mail will be refused, go unsigned or land in spam: ``tidings doctor`` exits 1.
    fail = "fail"


@dataclass(frozen=True)
class Finding:
    #: What was checked: "SMTP", "SPF news.example.org", ...
    check: str
    status: Status
    #: What is so, or what is wrong, in one sentence.
    said: str
    #: How to fix it (empty when there is nothing to do).
    fix: str = ""


def ok(check: str, said: str) -> Finding:
    return Finding(check, Status.ok, said)


def warn(check: str, said: str, fix: str = "") -> Finding:
    return Finding(check, Status.warn, said, fix)


def fail(check: str, said: str, fix: str) -> Finding:
    return Finding(check, Status.fail, said, fix)


def failed(findings: list[Finding]) -> bool:
    """Whether any check failed (the command's exit status)."""
    return any(found.status == Status.fail for found in findings)
