"""Every public URL a reader is given, built in one place: the signed token of each link's
purpose (:mod:`tidings.mail.tokens`) and the path the web face serves it on.

Paths come without the site's address (for links inside the site's own pages); ``Links``
adds the configured BASE_URL for mail.
"""

from dataclasses import dataclass

from tidings.mail.tokens import Purpose, sign


def unsubscribe_path(token: str) -> str:
    return f"/u/{token}"


def unsubscribe_undo_path(token: str) -> str:
    return f"/u/{token}/undo"


def preferences_path(token: str) -> str:
    return f"/preferences/{token}"


def confirm_path(token: str) -> str:
    return f"/confirm/{token}"


#: Where a path carries a reader's signed token as its next segment: kept out of access logs.
TOKEN_PATH_PREFIXES: tuple[str, ...] = tuple(
    build("") for build in (unsubscribe_path, preferences_path, confirm_path)
)


def archive_path(slug: str, edition_id: int | None = None) -> str:
    """A newsletter's archive, or one edition in it."""
    return f"/archive/{slug}" if edition_id is None else f"/archive/{slug}/{edition_id}"


@dataclass(frozen=True)
class Links:
    """Absolute links for mail: signed for one subscription and purpose each."""

    base_url: str
    secret: str

    def token(self, purpose: Purpose, subscription_id: int) -> str:
        return sign(self.secret, purpose, subscription_id)

    def unsubscribe(self, subscription_id: int) -> str:
        return self.base_url + unsubscribe_path(self.token(Purpose.unsubscribe, subscription_id))

    def preferences(self, subscription_id: int) -> str:
        return self.base_url + preferences_path(self.token(Purpose.preferences, subscription_id))

    def confirm(self, subscription_id: int) -> str:
        return self.base_url + confirm_path(self.token(Purpose.confirm, subscription_id))

    def archive(self, slug: str, edition_id: int | None = None) -> str:
        return self.base_url + archive_path(slug, edition_id)
