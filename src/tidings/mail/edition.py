"""The per-edition mail maker: compiled once per edition, asked for each subscriber's bytes.

The stored parts are split once into literal segments and the slots their template made
(:mod:`tidings.mail.personal`); per subscriber only the values are escaped, encoded and
joined between them.
"""

import re
from datetime import datetime

from tidings.config import Settings
from tidings.db.models import Edition, Newsletter
from tidings.errors import InvalidInput
from tidings.mail.dkim.signer import Signer
from tidings.mail.links import Links
from tidings.mail.message import MessageTemplate, Personalised, QuotedPrintableTemplate
from tidings.mail.personal import (
    Personal,
    SlotTemplate,
    greeting,
    public_copy,
    signed_up_line,
    values_of,
)
from tidings.mail.returnpath import Role, bounce_domain, tagged_address

#: Where a test message's unsubscribe and preference links lead (and its one-click POST): a
#: page that says it was a test. A test never carries a reader's signed link, so no click on
#: it (nor a mail client's one-click) can unsubscribe anyone.
TEST_UNSUBSCRIBE_PATH = "/test-unsubscribe"
TEST_SUBJECT_PREFIX = "[Test] "
TEST_BANNER_TEXT = (
    "This is a test of this edition: only the test addresses got it, "
    "and its unsubscribe link unsubscribes nobody."
)
_TEST_BANNER_HTML = (
    '<div role="note" style="background:#fff3cd;color:#4a3800;border:2px solid #b38600;'
    "padding:12px 16px;margin:0 0 12px;font-family:Helvetica,Arial,sans-serif;"
    'font-size:15px;line-height:1.4"><strong>Test message.</strong> ' + TEST_BANNER_TEXT + "</div>"
)
_BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
#: Slots whose values many readers share (the edition's archive link, greetings by first
#: name, sign-up days): encoded once per value, not once per message.
REPEATING_SLOTS = frozenset({"view_url", "greeting", "signed_up"})


def with_test_banner(html: SlotTemplate, text: SlotTemplate) -> tuple[SlotTemplate, SlotTemplate]:
    """The parts with the test banner on top: right after the HTML's <body> tag (else first),
    and as the first lines of the text. Only literal segments change: the slots stay."""

    def inserted(part: SlotTemplate, banner: str, after: "re.Pattern[str] | None") -> SlotTemplate:
        literals = list(part.literals)
        for index, literal in enumerate(literals):
            found = after.search(literal) if after else None
            if found is not None:
                literals[index] = literal[: found.end()] + banner + literal[found.end() :]
                break
        else:
            literals[0] = banner + literals[0]
        return SlotTemplate(tuple(literals), part.names)

    return (
        inserted(html, _TEST_BANNER_HTML, _BODY_TAG),
        inserted(text, f"*** TEST *** {TEST_BANNER_TEXT}\n\n", None),
    )


def address_domain(address: str) -> str:
    return address.rsplit("@", 1)[-1]


def feedback_id(edition_id: int, slug: str, domain: str) -> str:
    """Gmail's Feedback-ID ("campaign:customer:type:SenderId", colons between fields only):
    complaints are counted per edition and newsletter, for the sender's domain."""
    fields = [str(edition_id), slug, "tidings", domain]
    return ":".join(field.replace(":", "-") for field in fields)


class EditionMail:
    """Everything about an edition's messages that does not depend on the subscriber."""

    def __init__(
        self,
        *,
        settings: Settings,
        edition_id: int,
        slug: str,
        newsletter_name: str,
        from_name: str,
        from_address: str,
        reply_to: str | None,
        subject: str,
        html: str,
        text: str,
        date: datetime,
        signer: Signer | None = None,
        test: bool = False,
        zone: str = "UTC",
    ) -> None:
        #: A test message (a proof): marked in the subject and on top of the body, and its
        #: unsubscribe links lead to :data:`TEST_UNSUBSCRIBE_PATH`, never a reader's token.
        self.test = test
        #: The zone the edition's times are shown in (a reader's sign-up day too).
        self.zone = zone
        self._date = date
        if test:
            subject = TEST_SUBJECT_PREFIX + subject
        #: The subject every message carries.
        self.subject = subject
        self._links = Links(settings.base_url, settings.secret)
        #: The From address (the envelope sender of proofs, which no bounce should reach).
        self.sender = from_address
        domain = address_domain(from_address)
        self._secret = settings.secret
        #: The From domain's DKIM keys (None or keyless: messages go unsigned).
        self._signer = signer if signer else None
        self._bounce_domain = bounce_domain(settings.bounce_domain, from_address)
        self._stored_html = html
        self._html = SlotTemplate.load(html)
        self._text = SlotTemplate.load(text)
        if test:
            self._html, self._text = with_test_banner(self._html, self._text)
        self._html_qp = QuotedPrintableTemplate(self._html, REPEATING_SLOTS)
        self._text_qp = QuotedPrintableTemplate(self._text, REPEATING_SLOTS)
        self.view_url = self._links.archive(slug, edition_id)
        self._template = MessageTemplate(
            from_name=from_name,
            from_address=from_address,
            reply_to=reply_to,
            subject=subject,
            list_name=newsletter_name,
            list_id=f"{slug}.{domain}",
            date=date,
            list_archive=self._links.archive(slug),
            feedback_id=feedback_id(edition_id, slug, domain),
        )

    def envelope_sender(self, delivery_id: int) -> str:
        """The delivery's own return path: its bounces name it (:mod:`tidings.mail.returnpath`)."""
        return tagged_address(self._secret, Role.bounce, delivery_id, self._bounce_domain)

    def personal(
        self,
        subscription_id: int,
        email: str,
        name: str | None,
        signed_up_at: datetime | None = None,
    ) -> Personal:
        """One reader's values: greeted by first name (or none), with the day they signed up."""
        harmless = self._links.base_url + TEST_UNSUBSCRIBE_PATH
        if self.test and signed_up_at is None:
            signed_up_at = self._date  # a test shows the footer's line as readers see it
        return Personal(
            greeting_name=name or "reader",
            email=email,
            unsubscribe_url=harmless if self.test else self._links.unsubscribe(subscription_id),
            preferences_url=harmless if self.test else self._links.preferences(subscription_id),
            view_url=self.view_url,
            greeting=greeting(name),
            signed_up=signed_up_line(signed_up_at, self.zone),
        )

    def parts_for(self, personal: Personal) -> tuple[str, str]:
        """The HTML and text bodies with the personal values filled in."""
        return (
            self._html.fill(values_of(personal, escape=True)),
            self._text.fill(values_of(personal, escape=False)),
        )

    def public_html(self) -> str:
        """The HTML part without its personal places, for the public archive: nobody's
        address or links (:func:`~tidings.mail.personal.public_copy`)."""
        return public_copy(self._stored_html)

    def message_for(
        self,
        subscription_id: int,
        email: str,
        name: str | None,
        message_id: str,
        *,
        signed_up_at: datetime | None = None,
    ) -> bytes:
        """The complete message for one subscriber, DKIM-signed when the From domain has a key;
        ``signed_up_at`` is when they subscribed (the footer says why they get the mail)."""
        personal = self.personal(subscription_id, email, name, signed_up_at)
        if self.test:
            # A test's mailto names no subscription: it reaches the sender, who sent the test.
            mailto = f"mailto:{self.sender}?subject=test%20unsubscribe"
        else:
            address = tagged_address(
                self._secret, Role.unsubscribe, subscription_id, self._bounce_domain
            )
            mailto = f"mailto:{address}?subject=unsubscribe"
        message = self._template.build(
            Personalised(
                to_email=email,
                to_name=name,
                message_id=message_id,
                unsubscribe_url=personal.unsubscribe_url,
                unsubscribe_mailto=mailto,
                html_qp=self._html_qp.render(values_of(personal, escape=True)),
                text_qp=self._text_qp.render(values_of(personal, escape=False)),
                list_help=personal.preferences_url,
            )
        )
        return message if self._signer is None else self._signer.sign(message)


def edition_mail(
    settings: Settings,
    edition: Edition,
    newsletter: Newsletter,
    signer: Signer | None = None,
    *,
    test: bool = False,
    parts: tuple[str, str] | None = None,
) -> EditionMail:
    """The mail maker of a stored edition; ``signer`` signs each message (see
    :func:`tidings.mail.dkim.store.signer_for`); ``test`` makes test messages (proofs);
    ``parts``: the stored HTML and text to send instead of the edition's own (a variant of
    it for one choice of sections), with the edition's subject and headers."""
    if edition.html_body is None or edition.text_body is None or edition.subject is None:
        raise InvalidInput(f"edition {edition.id} has no rendered content")
    html, text = parts if parts is not None else (edition.html_body, edition.text_body)
    return EditionMail(
        settings=settings,
        edition_id=edition.id,
        slug=newsletter.slug,
        newsletter_name=newsletter.name,
        from_name=newsletter.from_name,
        from_address=newsletter.from_address,
        reply_to=newsletter.reply_to,
        subject=edition.subject,
        html=html,
        text=text,
        date=edition.started_at or edition.created_at,
        signer=signer,
        test=test,
        zone=edition.zone or newsletter.timezone,
    )
