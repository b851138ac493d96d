"""Settings, read from ``TIDINGS_*`` environment variables.

:func:`load_settings` is called once by a front door and the result is passed down; nothing
reads the environment anywhere else.
"""

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tidings.errors import ConfigError

ENV_PREFIX = "TIDINGS_"
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name, not a secret)

SmtpSecurity = Literal["none", "starttls", "tls"]
_SMTP_SCHEMES: dict[str, tuple[SmtpSecurity, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to send mail, parsed from TIDINGS_SMTP_URL."""

    host: str
    port: int
    security: SmtpSecurity
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    """Parse ``smtp://``, ``smtp+starttls://`` or ``smtps://`` URLs with optional credentials."""
    parts = urlsplit(url)
    if parts.scheme not in _SMTP_SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(_SMTP_SCHEMES)}, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("a host is required, e.g. smtp://mail.example.org:25")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("the port must be a number from 1 to 65535") from exc
    security, default_port = _SMTP_SCHEMES[parts.scheme]
    return SmtpTarget(
        host=parts.hostname,
        port=port or default_port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split_networks(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class Settings(BaseSettings):
    """Every setting Tidings reads; see README "Configuration"."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    smtp_url: str = ""
    base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    feed_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    feed_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    #: Feeds whose address is loopback, private or link-local are refused unless this is set
    #: (intranet feeds; the tests and the demo).
    feed_allow_private: bool = False
    #: How many feeds one poll fetches at once.
    feed_poll_concurrency: int = Field(default=4, ge=1, le=64)
    #: Proxies (addresses or networks, comma-separated) whose X-Forwarded-For is believed.
    trusted_proxies: str = ""
    #: ``/metrics`` answers loopback clients, and anyone sending ``Authorization: Bearer``
    #: with this token when it is set.
    metrics_token: SecretStr | None = None
    #: The largest request body the web face reads (JSON API bulk imports included).
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    #: The largest CSV the console's import upload takes (streamed to disk, never held).
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=64 * 1024)
    #: Per subscriber: at most this many attributes, and this much JSON for all of them.
    max_attributes: int = Field(default=50, ge=0, le=10_000)
    max_attributes_bytes: int = Field(default=16 * 1024, ge=256)
    import_batch_size: int = Field(default=10_000, ge=1, le=1_000_000)
    templates_dir: Path | None = None
    #: The domain of every return path (per-delivery bounce address) and List-Unsubscribe
    #: mailto; empty: the From address's domain. Its mail must reach ``tidings inbound``.
    bounce_domain: str = ""
    #: ``tidings run`` starts the inbound SMTP/LMTP listener on this port when it is set.
    inbound_port: int | None = Field(default=None, ge=1, le=65535)
    inbound_host: str = "127.0.0.1"
    #: An IMAP mailbox polled for bounces (``imaps://user:password@host/INBOX``); handled mail
    #: is moved to ``bounce_imap_done_folder``, never deleted.
    bounce_imap_url: SecretStr | None = None
    bounce_imap_done_folder: str = "Tidings/Handled"
    bounce_imap_interval_minutes: float = Field(default=5.0, gt=0, le=1440)
    #: An inbound message larger than this is refused (SMTP 552, or ignored from a pipe).
    inbound_max_bytes: int = Field(default=10 * 1024 * 1024, ge=64 * 1024)
    #: How much of each inbound message is kept, and for how long.
    inbound_keep_bytes: int = Field(default=256 * 1024, ge=1024)
    inbound_retention_days: int = Field(default=90, ge=1, le=3650)
    #: The bounce score (after Mailman 3): at most one point a day, suppressed at this many
    #: points, points older than the window forgotten.
    bounce_score_threshold: int = Field(default=5, ge=1, le=100)
    bounce_score_window_days: int = Field(default=14, ge=1, le=365)
    #: Provider webhooks (``/webhooks/{provider}``): unset means that provider is refused.
    webhook_ses_topic_arns: str = ""
    webhook_mailgun_signing_key: SecretStr | None = None
    webhook_sendgrid_public_key: str = ""
    #: ``user:password`` that Postmark's webhook sends as basic auth.
    webhook_postmark_credentials: SecretStr | None = None
    #: Name servers for ``tidings doctor`` and ``dkim list`` (``host`` or ``host:port``,
    #: comma-separated); empty: the system's resolver.
    dns_nameservers: str = ""
    #: Send through a real SMTP server even though BASE_URL is not https or is a loopback or
    #: private address (links in such mail do not work for readers; RFC 8058 needs https).
    allow_insecure_links: bool = False
    #: SMTP connections a worker starts with; it opens more while they raise its sending
    #: rate (a relay far away), up to ``smtp_max_connections`` (providers limit them).
    smtp_pool_size: int = Field(default=4, ge=1, le=100)
    smtp_max_connections: int = Field(default=50, ge=1, le=500)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: Editions rendered per distinct choice of sections at most; rarer choices get the whole.
    max_section_variants: int = Field(default=32, ge=0, le=1000)
    worker_batch_size: int = Field(default=200, ge=1, le=10_000)
    lease_seconds: int = Field(default=60, ge=5, le=3600)
    write_behind_seconds: float = Field(default=0.02, gt=0, le=10)
    retry_first_seconds: int = Field(default=300, ge=1)
    retry_max_seconds: int = Field(default=4000, ge=1)
    give_up_seconds: int = Field(default=5 * 24 * 3600, ge=60)
    at_most_once: bool = False
    catcher_port: int = Field(default=2525, ge=1, le=65535)
    schedule_grace_hours: float = Field(default=12.0, ge=0, le=168)
    poll_interval_minutes: float = Field(default=15.0, gt=0, le=1440)
    #: How long-running commands log: ``text`` (human-readable lines) or ``json`` (one JSON
    #: object per line: time, level, logger, message, and the edition, delivery, newsletter
    #: and SMTP reply where they apply).
    log_format: Literal["text", "json"] = "text"

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme in ("postgres", "postgresql"):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        if scheme in ("postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
            return value
        raise ValueError("must be a postgresql:// or sqlite:/// URL")

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str) -> str:
        if value:
            parse_smtp_url(value)
        return value

    @field_validator("templates_dir")
    @classmethod
    def _check_templates_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        for item in _split_networks(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        """The parsed TIDINGS_TRUSTED_PROXIES (empty: no forwarded header is believed)."""
        return tuple(
            ipaddress.ip_network(item, strict=False)
            for item in _split_networks(self.trusted_proxies)
        )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tidings.db').resolve()}"

    @property
    def smtp(self) -> SmtpTarget | None:
        """The parsed SMTP target, or None for the built-in catcher."""
        return parse_smtp_url(self.smtp_url) if self.smtp_url else None

    @property
    def secret(self) -> str:
        """The secret key; :func:`load_settings` guarantees it is set."""
        if self.secret_key is None:
            raise ConfigError(f"{ENV_PREFIX}SECRET_KEY: not set and not loaded from the data dir")
        return self.secret_key.get_secret_value()


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else "settings"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{ENV_PREFIX}{field.upper()}: {message}"


def _stored_secret(data_dir: Path) -> str:
    """Read the generated secret key, creating it once (mode 0600) if it does not exist."""
    path = data_dir / SECRET_KEY_FILE
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text(encoding="ascii").strip()
        if len(key) < 32:
            raise ConfigError(f"{path}: the stored secret key is too short; restore it") from None
        return key
    except OSError as exc:
        raise ConfigError(f"{ENV_PREFIX}DATA_DIR: cannot write {path}: {exc.strerror}") from exc
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def load_settings() -> Settings:
    """Build the settings from the environment; one clear :class:`ConfigError` if a value is bad."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    if settings.secret_key is not None:
        if len(settings.secret_key.get_secret_value()) < 32:
            raise ConfigError(f"{ENV_PREFIX}SECRET_KEY: must be at least 32 characters")
        return settings
    return settings.model_copy(update={"secret_key": SecretStr(_stored_secret(settings.data_dir))})
