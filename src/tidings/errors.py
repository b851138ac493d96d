"""The exception tree of Tidings.

Front doors (CLI, web, scheduler) catch :class:`TidingsError` and show its message; anything
else is a bug and keeps its traceback. Classes also inherit the matching built-in so callers
that only know the standard library still catch them sensibly. The whole tree, with the room
that defines each class kept beside its raiser (``tests/test_errors.py`` keeps this drawing
complete)::

    TidingsError
    ├── ConfigError(TidingsError, ValueError)        a setting is missing or malformed
    ├── NotFound(TidingsError, LookupError)          a named newsletter, source, ... does not exist
    ├── Conflict(TidingsError)                       the thing exists already
    ├── InvalidInput(TidingsError, ValueError)       user data failed validation
    │   ├── InvalidAddress                           an email address is not valid
    │   ├── SettingsRefused catalog/newsletters  newsletter settings, a sentence per setting
    │   ├── HeaderInjection         mail/message     a header value would start a new header
    │   ├── TemplateAltersSlot      mail/personal    a template filter changed a personal slot
    │   ├── EditionTooLarge         compose/render   the HTML part is over the size limit
    │   └── TemplateFailed          compose/failures an email template raised, with file and line
    ├── FeedError(TidingsError)                      one source could not be ingested
    │   ├── FeedUnreachable(FeedError, ConnectionError)   network, timeout, HTTP error, redirects
    │   │   └── AddressRefused      catalog/feedguard     the feed resolves to a private address
    │   ├── FeedTooLarge(FeedError)                       the body passed the size cap
    │   └── NotAFeed(FeedError, ValueError)               the body is not RSS, Atom or JSON Feed
    ├── WebhookRefused      inbound/webhooks     a provider's webhook request was not accepted
    └── DeliveryError               mail/transport   the SMTP server did not take a message
        ├── TransientDeliveryError(DeliveryError, ConnectionError)   4xx, drop, timeout: retry
        │   ├── UncertainDeliveryError                   no answer after DATA: maybe sent
        │   └── ConnectRefusedError                      421 or no connection: never sent
        └── PermanentDeliveryError                       5xx: do not retry
"""


class TidingsError(Exception):
    """Base of every error Tidings raises on purpose."""


class ConfigError(TidingsError, ValueError):
    """A setting is missing or malformed."""


class NotFound(TidingsError, LookupError):
    """A named object does not exist."""


class Conflict(TidingsError):
    """The object to create exists already."""


class InvalidInput(TidingsError, ValueError):
    """User-supplied data failed validation."""


class InvalidAddress(InvalidInput):
    """An email address is not valid."""


class FeedError(TidingsError):
    """A source could not be ingested."""


class FeedUnreachable(FeedError, ConnectionError):
    """The feed could not be fetched: network error, timeout, HTTP error or redirect loop."""


class FeedTooLarge(FeedError):
    """The feed body is larger than the configured cap."""


class NotAFeed(FeedError, ValueError):
    """The body is neither RSS, Atom nor JSON Feed."""
