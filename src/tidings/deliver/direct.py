"""Send one message now, outside the ledger: confirmation mail and editors' test sends.

These are answers to a person waiting on a page, not bulk mail: one short-lived connection
per message, and the caller learns at once whether the server took it.
"""

from tidings.config import Settings
from tidings.deliver.runner import smtp_target
from tidings.deliver.transport import SmtpConnection, SmtpReply


async def send_now(settings: Settings, sender: str, recipient: str, message: bytes) -> SmtpReply:
    """Send ``message`` over a fresh connection; raises a ``DeliveryError`` if refused."""
    connection = SmtpConnection(smtp_target(settings), settings.smtp_timeout_seconds)
    try:
        return await connection.send(sender, recipient, message)
    finally:
        await connection.close()
