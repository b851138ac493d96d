"""BASE_URL: https on a public host (the safe-links rule of mail/transport) and answering."""

import httpx

from tidings import __version__
from tidings.config import Settings
from tidings.doctor.findings import Finding, fail, ok, warn
from tidings.mail.transport import insecure_links, links_refusal

#: The longest wait for the web app's answer, connection included.
TIMEOUT_SECONDS = 10.0
CHECK = "BASE_URL"
REACHABLE = "BASE_URL reachable"


def check_links(settings: Settings) -> Finding:
    """Whether readers' links will work in real mail (the rule sending enforces)."""
    base = settings.base_url
    if not insecure_links(base):
        return ok(CHECK, f"{base} is https on a public host")
    if settings.smtp is None:
        return warn(
            CHECK,
            f"{base} is fine for the built-in catcher, not for real mail",
            "set TIDINGS_BASE_URL to the public https address before TIDINGS_SMTP_URL",
        )
    if settings.allow_insecure_links:
        return warn(
            CHECK,
            f"{base}: readers cannot use its links; sent anyway (TIDINGS_ALLOW_INSECURE_LINKS)",
            "set TIDINGS_BASE_URL to the public https address and drop the override",
        )
    return fail(CHECK, links_refusal(base), "set TIDINGS_BASE_URL=https://news.example.org")


def check_reachable(settings: Settings, timeout: float = TIMEOUT_SECONDS) -> Finding:
    """GET BASE_URL/healthz (certificate verified, no redirect followed, body not read):
    does Tidings answer at the address its links point to?"""
    url = f"{settings.base_url}/healthz"
    headers = {"User-Agent": f"tidings-doctor/{__version__}"}
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, headers=headers) as client,
            client.stream("GET", url) as answer,
        ):
            status = answer.status_code
    except httpx.HTTPError as exc:
        return fail(
            REACHABLE,
            f"{url} does not answer: {exc or type(exc).__name__}",
            "start tidings serve (or tidings run) behind that address, and check its "
            "proxy, firewall and TLS certificate",
        )
    if status != 200:
        return fail(
            REACHABLE,
            f"{url} answered {status}, not Tidings' 200",
            "point the address (or its proxy) at tidings serve",
        )
    return ok(REACHABLE, f"{url} answers 200")
