"""Send one message now, outside the ledger: confirmation mail and editors' test sends.

These are answers to a person waiting on a page, not bulk mail: one short-lived connection
per message, and the caller learns at once whether the server took it.
"""

from tidings.config import Settings
from tidings.mail.dkim.signer import Signer
from tidings.mail.transport import (
    SEND_DEADLINE_TIMEOUTS,
    SmtpConnection,
    SmtpReply,
    send_within,
    smtp_target,
)


async def send_now(
    settings: Settings,
    sender: str,
    recipient: str,
    message: bytes,
    signer: Signer | None = None,
) -> SmtpReply:
    """Send ``message`` over a fresh connection, within the same overall deadline as the
    worker's sends; raises a ``DeliveryError`` if refused or too slow. ``signer`` (the From
    domain's, from :func:`tidings.mail.dkim.store.load_signer`) DKIM-signs it first."""
    if signer is not None:
        message = signer.sign(message)
    connection = SmtpConnection(smtp_target(settings), settings.smtp_timeout_seconds)
    deadline = settings.smtp_timeout_seconds * SEND_DEADLINE_TIMEOUTS
    try:
        return await send_within(connection, sender, recipient, message, deadline)
    finally:
        await connection.close()
