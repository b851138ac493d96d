"""What the checkers found, written where the template authors read it.

One Markdown file per test run (the first record of a process starts it anew, with the
time at the top): every mail, checker and database with its findings, or "clean".
MAILCHECK_FINDINGS names the file; by default test-artifacts/mail/findings.md.
"""

import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from tests.mailcheck.checkers import Finding

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "mail"
_started: set[Path] = set()
_LEGEND = (
    "One section per mail, checker and database (tests/mail/test_mail_checkers.py) or per "
    "Chromium render (tests/web/test_mail_render_browser.py). An error fails its test unless "
    "marked ALLOWED (the test's named list, with the reason); warnings never fail. The HTML "
    "checked and the screenshots are under test-artifacts/mail/."
)


def findings_file() -> Path:
    return Path(os.environ.get("MAILCHECK_FINDINGS") or ARTIFACTS / "findings.md")


def record(
    subject: str, checker: str, findings: list[Finding], allowed: dict[Finding, str] | None = None
) -> None:
    """Add one check's result to this run's findings file: the errors, then each distinct
    warning once with its count; an error the test allows is marked so, with its reason."""
    allowed = allowed or {}
    path = findings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path not in _started:
        _started.add(path)
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        path.write_text(f"# Mail checker findings, run started {now}\n\n{_LEGEND}\n\n")
    errors = [finding for finding in findings if finding.severity == "error"]
    failing = [finding for finding in errors if finding not in allowed]
    warnings = [finding for finding in findings if finding.severity == "warning"]
    lines = [
        f"## {subject}: {checker}: {len(failing)} errors"
        f" (+{len(errors) - len(failing)} allowed), {len(warnings)} warnings"
    ]
    counted = Counter(errors)
    for finding, count in counted.items():
        reason = allowed.get(finding)
        times = f" (x{count})" if count > 1 else ""
        lines.append(finding.line() + times + (f" [ALLOWED: {reason}]" if reason else ""))
    lines += _warnings(warnings)
    with path.open("a") as out:
        out.write("\n".join(lines) + "\n\n")


def _warnings(warnings: list[Finding]) -> list[str]:
    """One line per distinct warning: doiuse-email's per feature, naming its clients; the
    others per message, with where it first occurs."""
    by_feature: dict[str, Counter[str]] = {}
    by_message: dict[str, list[Finding]] = {}
    for finding in warnings:
        if finding.feature:
            by_feature.setdefault(finding.feature, Counter())[finding.where] += 1
        else:
            by_message.setdefault(finding.message, []).append(finding)
    lines = [
        f"- warning: {message} (x{len(found)}; first: {found[0].where})"
        if len(found) > 1
        else found[0].line()
        for message, found in by_message.items()
    ]
    for feature, clients in by_feature.items():
        named = ", ".join(f"{c} x{n}" if n > 1 else c for c, n in clients.items())
        lines.append(f"- warning: `{feature}` only partly supported by {named}")
    return lines
