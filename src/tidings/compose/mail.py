"""The per-edition mail maker: compiled once per edition, asked for each subscriber's bytes."""

from datetime import datetime
from urllib.parse import quote

from tidings.audience.tokens import Purpose, sign
from tidings.compose.message import MessageTemplate, Personalised, QuotedPrintableTemplate
from tidings.compose.personal import TOKEN, Personal, fill, values_of
from tidings.config import Settings


def address_domain(address: str) -> str:
    return address.rsplit("@", 1)[-1]


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
    ) -> None:
        self._secret = settings.secret
        self._base = settings.base_url
        self.sender = from_address
        domain = address_domain(from_address)
        self._mailto = settings.unsubscribe_mailto or f"unsubscribe@{domain}"
        self._html = html
        self._text = text
        self._html_qp = QuotedPrintableTemplate(html, TOKEN)
        self._text_qp = QuotedPrintableTemplate(text, TOKEN)
        self.view_url = f"{self._base}/archive/{slug}/{edition_id}"
        self._template = MessageTemplate(
            from_name=from_name,
            from_address=from_address,
            reply_to=reply_to,
            subject=subject,
            list_name=newsletter_name,
            list_id=f"{slug}.{domain}",
            date=date,
        )

    def unsubscribe_url(self, subscription_id: int) -> str:
        return f"{self._base}/u/{sign(self._secret, Purpose.unsubscribe, subscription_id)}"

    def preferences_url(self, subscription_id: int) -> str:
        token = sign(self._secret, Purpose.preferences, subscription_id)
        return f"{self._base}/preferences/{token}"

    def personal(self, subscription_id: int, email: str, name: str | None) -> Personal:
        return Personal(
            greeting_name=name or "reader",
            email=email,
            unsubscribe_url=self.unsubscribe_url(subscription_id),
            preferences_url=self.preferences_url(subscription_id),
            view_url=self.view_url,
        )

    def parts_for(self, personal: Personal) -> tuple[str, str]:
        """The HTML and text bodies with the personal values filled in."""
        return fill(self._html, personal, escape=True), fill(self._text, personal, escape=False)

    def message_for(
        self, subscription_id: int, email: str, name: str | None, message_id: str
    ) -> bytes:
        """The complete message for one subscriber."""
        personal = self.personal(subscription_id, email, name)
        token = personal.unsubscribe_url.rsplit("/", 1)[-1]
        mailto = f"mailto:{self._mailto}?subject={quote('unsubscribe ' + token)}"
        return self._template.build(
            Personalised(
                to_email=email,
                to_name=name,
                message_id=message_id,
                unsubscribe_url=personal.unsubscribe_url,
                unsubscribe_mailto=mailto,
                html_qp=self._html_qp.render(values_of(personal, escape=True)),
                text_qp=self._text_qp.render(values_of(personal, escape=False)),
            )
        )
