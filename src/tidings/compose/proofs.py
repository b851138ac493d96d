"""Proofs: an edition not yet sent, mailed to a few editors' addresses to check it.

A proof is the edition as a test: "[Test]" before the subject, a banner on top, personalised
for a subscriber the editor names (else a clearly fake reader), with links that unsubscribe
nobody. Nothing is stored and no reader is mailed. Each address gets its own message (its own
Message-ID), its own SMTP conversation and its own result line.
"""

import asyncio
from dataclasses import dataclass

from tidings.compose.oneoff import proof
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.errors import InvalidInput
from tidings.mail.addresses import normalise_email
from tidings.mail.direct import send_now
from tidings.mail.dkim.store import load_signer
from tidings.mail.transport import DeliveryError

MAX_PROOF_ADDRESSES = 5


@dataclass(frozen=True)
class ProofResult:
    address: str
    error: str | None

    def __str__(self) -> str:
        return (
            f"{self.address}: sent"
            if self.error is None
            else f"{self.address}: not sent ({self.error})"
        )


def proof_addresses(raw: str) -> list[str]:
    """The addresses typed (commas or spaces between), validated; at most five."""
    addresses = [a for a in raw.replace(",", " ").split() if a]
    if not addresses or len(addresses) > MAX_PROOF_ADDRESSES:
        raise InvalidInput(f"Give one to {MAX_PROOF_ADDRESSES} test addresses.")
    return [normalise_email(a) for a in addresses]


async def send_proofs(
    db: Database,
    settings: Settings,
    slug: str,
    one_off: OneOff,
    raw_addresses: str,
    reader_email: str | None = None,
) -> list[ProofResult]:
    """Render the edition once and send it to each address, DKIM-signed as readers get it,
    personalised for the subscriber ``reader_email`` (else a test reader)."""
    addresses = proof_addresses(raw_addresses)
    found = await asyncio.to_thread(proof, db, settings, slug, one_off, reader_email)
    signer = await asyncio.to_thread(load_signer, db, settings, found.sender)
    results = []
    for address in addresses:
        try:
            await send_now(settings, found.sender, address, found.message(), signer)
            results.append(ProofResult(address, None))
        except DeliveryError as exc:
            results.append(ProofResult(address, str(exc)))
    return results
