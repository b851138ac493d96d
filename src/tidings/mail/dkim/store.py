"""The DKIM keys in the database: make one, list them, remove one, and the signer of a From
domain (its newest key of each algorithm, unsealed once).

The private key is sealed before it reaches a row (:mod:`~tidings.mail.dkim.seal`) and is
never part of what these functions return but the :class:`Signer`.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.db.dialect import PRESERVE_ROWCOUNT, row_count, upsert_insert
from tidings.db.engine import Database
from tidings.db.models import DkimAlgorithm, DkimKey
from tidings.db.types import utcnow
from tidings.errors import ConfigError, Conflict, NotFound
from tidings.mail.dkim.keys import (
    DnsRecord,
    default_selector,
    dns_record,
    generate,
    load_private,
    valid_domain,
    valid_selector,
)
from tidings.mail.dkim.seal import seal, unseal
from tidings.mail.dkim.signer import Signer, SigningKey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyView:
    """A stored key as anyone may see it: no private part."""

    id: int
    domain: str
    selector: str
    algorithm: DkimAlgorithm
    public_key: str
    created_at: datetime

    @property
    def record(self) -> DnsRecord:
        return dns_record(self.domain, self.selector, self.algorithm, self.public_key)


def _view(row: DkimKey) -> KeyView:
    return KeyView(row.id, row.domain, row.selector, row.algorithm, row.public_key, row.created_at)


def add_key(
    db: Database,
    settings: Settings,
    domain: str,
    selector: str | None = None,
    algorithm: DkimAlgorithm = DkimAlgorithm.rsa,
) -> KeyView:
    """Make and keep a new key for ``domain``; :class:`Conflict` if the selector is taken.
    It signs from now on (the newest of its algorithm): publish its record at once."""
    now = utcnow()
    domain = valid_domain(domain)
    selector = valid_selector(selector or default_selector(now, algorithm))
    pair = generate(algorithm)
    with db.session() as session:
        added = session.execute(
            upsert_insert(session)(DkimKey)
            .values(
                domain=domain,
                selector=selector,
                algorithm=algorithm,
                private_key_sealed=seal(settings.secret, pair.private_pem),
                public_key=pair.public_key,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["domain", "selector"]),
            execution_options=PRESERVE_ROWCOUNT,
        )
        if not row_count(added):
            raise Conflict(
                f"{domain} already has a key under selector {selector}: choose another selector"
            )
        session.commit()
        return _view(_named(session, domain, selector))


def _named(session: Session, domain: str, selector: str) -> DkimKey:
    return session.scalars(
        select(DkimKey).where(DkimKey.domain == domain, DkimKey.selector == selector)
    ).one()


def list_keys(db: Database) -> list[KeyView]:
    """Every key, by domain, then newest first."""
    with db.session() as session:
        rows = session.scalars(
            select(DkimKey).order_by(DkimKey.domain, DkimKey.created_at.desc(), DkimKey.id.desc())
        )
        return [_view(row) for row in rows]


def remove_key(db: Database, key_id: int) -> KeyView:
    """Delete a key by id (mail from its domain is no longer signed with it)."""
    with db.session() as session:
        row = session.get(DkimKey, key_id)
        if row is None:
            raise NotFound(f"no DKIM key {key_id}")
        view = _view(row)
        session.execute(delete(DkimKey).where(DkimKey.id == key_id))
        session.commit()
        return view


def remove_named_key(db: Database, domain: str, selector: str) -> KeyView:
    """Delete the key of ``domain`` under ``selector``."""
    domain, selector = valid_domain(domain), valid_selector(selector)
    with db.session() as session:
        found = session.scalar(
            select(DkimKey.id).where(DkimKey.domain == domain, DkimKey.selector == selector)
        )
    if found is None:
        raise NotFound(f"{domain} has no DKIM key under selector {selector}")
    return remove_key(db, found)


def key_is_readable(settings: Settings, db: Database, key_id: int) -> bool:
    """Whether this secret key opens the stored key (False after TIDINGS_SECRET_KEY changed)."""
    with db.session() as session:
        sealed = session.scalar(select(DkimKey.private_key_sealed).where(DkimKey.id == key_id))
    if sealed is None:
        raise NotFound(f"no DKIM key {key_id}")
    try:
        unseal(settings.secret, sealed)
    except ConfigError:
        return False
    return True


def signer_for(session: Session, settings: Settings, from_address: str) -> Signer:
    """The signer of mail from ``from_address``: the newest key of each algorithm of its
    domain, unsealed; a signer without keys (it leaves mail unchanged) when there are none.

    A key that does not unseal (the secret key changed) is left out and logged, so mail still
    goes, signed by the other keys or not at all; ``tidings dkim list`` shows it unreadable."""
    domain = from_address.rsplit("@", 1)[-1].strip().lower()
    rows = session.scalars(
        select(DkimKey)
        .where(DkimKey.domain == domain)
        .order_by(DkimKey.created_at.desc(), DkimKey.id.desc())
    )
    keys: dict[DkimAlgorithm, SigningKey] = {}
    for row in rows:
        if row.algorithm in keys:
            continue
        try:
            private = load_private(unseal(settings.secret, row.private_key_sealed))
        except ConfigError as exc:
            log.error("DKIM key %s of %s left out: %s", row.selector, domain, exc)
            continue
        keys[row.algorithm] = SigningKey(domain, row.selector, row.algorithm, private)
    return Signer([keys[a] for a in DkimAlgorithm if a in keys])


def load_signer(db: Database, settings: Settings, from_address: str) -> Signer:
    """:func:`signer_for` in a session of its own."""
    with db.session() as session:
        return signer_for(session, settings, from_address)
