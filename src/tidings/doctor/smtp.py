"""Is the relay there, does it offer STARTTLS, is its certificate valid, does it take our
credentials? One short SMTP conversation (smtplib: a check, not the send path), every wait
bounded."""

import smtplib
import ssl

from tidings.config import Settings, SmtpTarget
from tidings.doctor.findings import Finding, Status, fail, ok, warn
from tidings.mail.transport import is_local_host

#: The longest wait for any one step of the conversation.
TIMEOUT_SECONDS = 10.0

CHECK = "SMTP"
TLS_CHECK = "SMTP TLS"


def _where(target: SmtpTarget) -> str:
    return f"{target.host}:{target.port}"


def _connect(target: SmtpTarget, timeout: float) -> smtplib.SMTP:
    if target.security == "tls":
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
    return smtplib.SMTP(target.host, target.port, timeout=timeout)


def _certificate(smtp: smtplib.SMTP, target: SmtpTarget) -> Finding:
    """STARTTLS with a verifying context: the handshake is the certificate check."""
    try:
        smtp.starttls(context=ssl.create_default_context())
    except ssl.SSLCertVerificationError as exc:
        return fail(
            TLS_CHECK,
            f"{target.host}'s certificate is not valid: {exc.verify_message}",
            "install a certificate for that host name from a public CA (Let's Encrypt), or "
            "put the name the certificate is for in TIDINGS_SMTP_URL",
        )
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        return fail(
            TLS_CHECK,
            f"STARTTLS with {_where(target)} failed: {exc}",
            "check the relay's TLS set-up",
        )
    smtp.ehlo()
    return ok(TLS_CHECK, f"STARTTLS works and {target.host}'s certificate is valid")


def _tls(smtp: smtplib.SMTP, target: SmtpTarget) -> list[Finding]:
    if target.security == "tls":
        return [ok(TLS_CHECK, f"TLS from the start; {target.host}'s certificate is valid")]
    offered = smtp.has_extn("starttls")
    if target.security == "starttls":
        if not offered:
            return [
                fail(
                    TLS_CHECK,
                    f"{_where(target)} does not offer STARTTLS, which TIDINGS_SMTP_URL asks for",
                    "enable STARTTLS on the relay, or use smtps:// if it speaks TLS at once",
                )
            ]
        return [_certificate(smtp, target)]
    if is_local_host(target.host):
        return [ok(TLS_CHECK, "plain SMTP on this machine: no TLS needed")]
    if not offered:
        return [
            warn(
                TLS_CHECK,
                f"{_where(target)} does not offer STARTTLS: mail and credentials cross the "
                "network in clear",
                "use a relay that offers STARTTLS, with smtp+starttls:// in TIDINGS_SMTP_URL",
            )
        ]
    found = _certificate(smtp, target)
    if found.status != Status.ok:
        return [found]
    return [
        warn(
            TLS_CHECK,
            f"{_where(target)} offers STARTTLS (certificate valid) but smtp:// does not use it",
            "write smtp+starttls:// in TIDINGS_SMTP_URL",
        )
    ]


def _login(smtp: smtplib.SMTP, target: SmtpTarget) -> Finding | None:
    if not (target.username and target.password):
        return None
    try:
        smtp.login(target.username, target.password)
    except smtplib.SMTPException as exc:
        return fail(
            "SMTP login",
            f"{_where(target)} refused the credentials of TIDINGS_SMTP_URL ({exc})",
            "check the user name and password (URL-encode @ and : in them)",
        )
    return ok("SMTP login", f"{_where(target)} takes the credentials")


def check_smtp(settings: Settings, timeout: float = TIMEOUT_SECONDS) -> list[Finding]:
    """Reachable (EHLO answered), STARTTLS and the certificate, the credentials."""
    target = settings.smtp
    if target is None:
        return [
            warn(
                CHECK,
                "TIDINGS_SMTP_URL is not set: mail goes to the built-in catcher, no reader gets it",
                "set TIDINGS_SMTP_URL=smtp+starttls://USER:PASSWORD@relay.example.org:587",
            )
        ]
    timeout = min(timeout, settings.smtp_timeout_seconds)
    try:
        smtp = _connect(target, timeout)
    except ssl.SSLCertVerificationError as exc:
        return [
            fail(
                TLS_CHECK,
                f"{target.host}'s certificate is not valid: {exc.verify_message}",
                "install a certificate for that host name from a public CA",
            )
        ]
    except (smtplib.SMTPException, OSError) as exc:
        return [
            fail(
                CHECK,
                f"cannot reach {_where(target)}: {exc or type(exc).__name__}",
                "check the host and port of TIDINGS_SMTP_URL and that this machine may "
                f"connect out to port {target.port}",
            )
        ]
    try:
        code, _ = smtp.ehlo()
        if code != 250:
            return [fail(CHECK, f"{_where(target)} answered EHLO with {code}", "check the relay")]
        tls = _tls(smtp, target)
        found = [ok(CHECK, f"{_where(target)} answers EHLO"), *tls]
        if any(item.status == Status.fail for item in tls):
            return found  # the conversation is broken off: no login to try
        login = _login(smtp, target)
        return found + ([login] if login else [])
    except (smtplib.SMTPException, OSError) as exc:
        return [fail(CHECK, f"{_where(target)} broke off: {exc}", "check the relay's logs")]
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
