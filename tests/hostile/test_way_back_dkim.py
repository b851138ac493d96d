"""DKIM against a careless relay: a message with a non-ASCII display name (RFC 2047), lines
with trailing spaces and tabs, lines that start with a dot, long lines and 8-bit text goes
through a real SMTP server (dot-stuffed and unstuffed, headers as the relay hands them on)
and still verifies with dkimpy; a relay that refolds a header or re-spaces it does not break
a relaxed signature; one that changes a byte of the body does. On SQLite and PostgreSQL."""

import smtplib
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP

import dkim

from tests.mail.dkim.published import dns_of, verified
from tests.smtpserver import smtp_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DkimAlgorithm
from tidings.mail.dkim.store import add_key, load_signer

DOMAIN = "messenger.example.ge"
BODY = (
    "Trailing spaces   \n"
    "Trailing tab\t\n"
    ".A line that starts with a dot\n"
    "..two dots\n"
    ".\n"
    "  leading   inner\t\twhitespace\n"
    + ("ლ" * 300)  # 900 bytes of UTF-8 on one line
    + "\n"
    + ("x" * 990)
    + "\n\n\n"
)


def _message() -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = Address("მესენჯერი — The Messenger ✉", "digest", DOMAIN)
    message["To"] = "reader0@example.ge"
    message["Subject"] = "Ნინო, a subject long enough that the header is folded " * 3
    message["Date"] = "Tue, 14 Jan 2025 08:00:00 +0400"
    message["Message-ID"] = f"<hostile.1@{DOMAIN}>"
    message.set_content(BODY, cte="8bit")
    return message.as_bytes()


def test_a_message_of_awkward_lines_verifies_after_a_real_smtp_hop(
    db: Database, settings: Settings
) -> None:
    keys = [add_key(db, settings, DOMAIN, f"k{a.value}", a) for a in DkimAlgorithm]
    signed = load_signer(db, settings, f"digest@{DOMAIN}").sign(_message())
    assert verified(signed, dns_of(keys)) == [True, True]
    with smtp_server() as (handler, port), smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail(f"b-1-x@{DOMAIN}", ["reader0@example.ge"], signed)
    (caught,) = handler.caught
    for line in (b"Trailing spaces   \r\n", b"\r\n.A line", b"\r\n..two dots", b"\r\n.\r\n"):
        assert line in caught.data  # the relay's dot-stuffing undone, the spaces kept
    assert verified(caught.data, dns_of(keys)) == [True, True]
    assert dkim.verify(caught.data, dnsfunc=dns_of(keys))
    # A relay that unfolds and re-spaces the Subject: relaxed header canonicalisation.
    head, _, body = caught.data.partition(b"\r\n\r\n")
    refolded = head.replace(b"\r\n ", b"  ").replace(b"Subject: ", b"Subject:\t") + b"\r\n\r\n"
    assert verified(refolded + body, dns_of(keys)) == [True, True]
    # One byte of the body changed is caught.
    changed = refolded + body.replace(b"two dots", b"two dotz")
    assert verified(changed, dns_of(keys)) == [False, False]
