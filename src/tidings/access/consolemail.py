"""The console's own mail: the password reset link and the invitation of a new user.

Both are notices (a template triplet ``email/<kind>/``, :mod:`tidings.mail.notice`) sent at
once with :func:`tidings.mail.direct.send_now`, DKIM-signed when the sender's domain has a
key. They come from the publication's first newsletter's address (its domain is the one
whose SPF and DKIM are set up), or ``noreply@`` the console's host when there is none yet.
"""

import asyncio
import logging
from urllib.parse import urlsplit

from sqlalchemy import select

from tidings.access.accounts import Account
from tidings.access.ratelimit import allow
from tidings.access.recovery import (
    LIFETIMES,
    RESET_MAILS,
    LinkKind,
    invitation_link_for,
    link_path,
    reset_link_for,
)
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Newsletter
from tidings.mail.direct import send_now
from tidings.mail.dkim.store import load_signer
from tidings.mail.notice import Notice, notice_message

log = logging.getLogger(__name__)
FROM_NAME = "Tidings"


def console_sender(db: Database, settings: Settings) -> str:
    """The address console mail comes from (see the module's docstring)."""
    with db.session() as session:
        found = session.scalar(select(Newsletter.from_address).order_by(Newsletter.id).limit(1))
    return found or f"noreply@{urlsplit(settings.base_url).hostname}"


def console_mail(
    db: Database, settings: Settings, kind: LinkKind, email: str, token: str
) -> tuple[str, bytes]:
    """The envelope sender and bytes of a reset (``password_reset``) or invitation
    (``invitation``) mail to ``email`` with the link of ``token``."""
    sender = console_sender(db, settings)
    notice = Notice(FROM_NAME, sender, None, email, None)
    lifetime = LIFETIMES[kind]
    context = {
        "email": email,
        "link": settings.base_url + link_path(kind, token),
        "sign_in": settings.base_url + "/admin/login",
        "minutes": int(lifetime.total_seconds() // 60),
        "days": lifetime.days,
    }
    template = "password_reset" if kind == LinkKind.reset else "invitation"
    return sender, notice_message(settings, template, notice, context)


async def _send(db: Database, settings: Settings, kind: LinkKind, email: str, token: str) -> None:
    sender, message = await asyncio.to_thread(console_mail, db, settings, kind, email, token)
    signer = await asyncio.to_thread(load_signer, db, settings, sender)
    await send_now(settings, sender, email, message, signer)


async def send_reset(db: Database, settings: Settings, email: str) -> None:
    """Mail a reset link to the enabled user with ``email``, if there is one and they have
    not had :data:`RESET_MAILS` already. Runs after the visitor has been answered (the answer
    is the same whatever the address); never raises: a failure is logged (no link in it)."""
    try:
        found = await asyncio.to_thread(reset_link_for, db, settings.secret, email)
        if found is None:
            return
        address, token = found
        if not await asyncio.to_thread(allow, db, settings.secret, RESET_MAILS, address):
            log.warning("password reset mail not sent: too many asked for this user")
            return
        await _send(db, settings, LinkKind.reset, address, token)
    except Exception:
        log.exception("password reset mail not sent")


async def invite(db: Database, settings: Settings, account: Account) -> bool:
    """Mail ``account`` an invitation to choose a password; whether the server took it (on
    False the caller hands over the one-time password instead)."""
    try:
        found = await asyncio.to_thread(invitation_link_for, db, settings.secret, account.id)
        if found is None:
            return False
        await _send(db, settings, LinkKind.invite, *found)
    except Exception:
        log.exception("invitation mail to user %s not sent", account.id)
        return False
    return True
