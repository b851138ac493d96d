"""The worker's database side: claim and prepare a batch, write results, renew leases, keep
the ledger up.

Each call is short blocking work (one transaction, or the upkeep's few), retried on
contention; the worker runs it in a thread so its event loop keeps sending. The worker, not
this class, decides what may run side by side (see :class:`~tidings.deliver.worker.Worker`).
"""

from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DeliveryState, Edition, EditionVariant, Newsletter
from tidings.deliver import ledger, limits
from tidings.deliver.dbclock import DbClock, db_time
from tidings.deliver.ledger import Claim, Outcome, Recipient, Recorded, Renewal
from tidings.deliver.retry import retry_transient
from tidings.deliver.upkeep import has_due_work, run_upkeep
from tidings.feedback.effects import BounceScore
from tidings.mail.dkim.signer import Signer
from tidings.mail.dkim.store import signer_for
from tidings.mail.edition import EditionMail, edition_mail

GONE_REPLY = "not sent: no longer subscribed or suppressed"
#: How many mail makers (one per edition, and per section variant) a worker keeps at least,
#: the least recently used dropped first: each holds its edition's rendered parts (about
#: 109 KiB for a 41 KB edition), so 256 came to ~28 MB a worker; 32 is ~3.5 MB. A worker
#: keeps one more than ``max_section_variants`` (default 32) if that is larger, so one
#: edition's variants and its plain mail always fit (else a claim mixing them would rebuild
#: each in turn); a dropped one is built again if its edition is still sending.
MAILS_KEPT = 32


@dataclass(frozen=True)
class Job:
    """One claimed delivery, ready to send: its lease, the edition's mail, the reader."""

    claim: Claim
    mail: EditionMail
    recipient: Recipient


@dataclass(frozen=True)
class Prepared:
    """One claim, ready to send: its token, the jobs, and results known without sending."""

    token: str
    jobs: list[Job]
    gone: list[Outcome]


class WorkerDatabase:
    """What one worker asks of the database, each call retried on contention."""

    def __init__(self, db: Database, settings: Settings, clock: DbClock | None = None) -> None:
        self.db = db
        self.settings = settings
        #: The database's time as this worker sees it, learnt at each claim and renewal.
        self.clock = DbClock() if clock is None else clock
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.score = BounceScore.from_settings(settings)
        # Each edition's rendered mail, built once per (edition, variant) while kept.
        self._mails: OrderedDict[tuple[int, int | None], EditionMail] = OrderedDict()
        # The From domain's DKIM keys of each edition, unsealed once per edition while kept.
        self._signers: OrderedDict[int, Signer | None] = OrderedDict()
        self.mails_kept = max(MAILS_KEPT, settings.max_section_variants + 1)

    def claim(self, token: str, limit: int) -> Prepared:
        """Lease up to ``limit`` due deliveries under ``token`` and prepare them: a reader
        who left or was suppressed meanwhile gets a failed result instead of a job."""
        return retry_transient(self._claim_and_prepare, token, limit)

    def write(self, outcomes: Sequence[Outcome], judged: Collection[int]) -> Recorded:
        """Write results, each fenced by its lease (see :func:`ledger.record_outcomes`)."""
        return retry_transient(self._write, outcomes, judged)

    def renew(self, tokens: Collection[str]) -> Renewal:
        """Extend the leases of these claims; which deliveries are still held."""
        return retry_transient(self._renew, tokens)

    def upkeep(self) -> bool:
        """Reclaim expired leases, close finished editions, let slowed sending rates climb
        back after quiet minutes; True if work is due."""
        run_upkeep(self.db, self.settings.at_most_once, self.score)
        retry_transient(self._climb)
        return has_due_work(self.db)

    def _climb(self) -> None:
        with self.db.session() as session:
            limits.climb(session)
            session.commit()

    def _claim_and_prepare(self, token: str, limit: int) -> Prepared:
        with self.db.session() as session:
            now = self.clock.observe(db_time(session))  # the lease's clock, every host's
            claims = ledger.claim_due(session, token, limit, self.lease, now)
            session.commit()
            jobs: list[Job] = []
            gone: list[Outcome] = []
            by_edition: dict[int, list[Claim]] = {}
            for claim in claims:
                by_edition.setdefault(claim.edition_id, []).append(claim)
            for edition_id, group in by_edition.items():
                edition = session.get_one(Edition, edition_id)
                ids = [c.subscriber_id for c in group if c.subscriber_id is not None]
                found = ledger.recipients(session, edition.newsletter_id, ids)
                for claim in group:
                    recipient = found.get(claim.subscriber_id) if claim.subscriber_id else None
                    if recipient is None:
                        gone.append(claim.outcome(DeliveryState.failed, None, GONE_REPLY, now))
                    else:
                        mail = self._mail_for(session, edition_id, claim.variant_id)
                        jobs.append(Job(claim, mail, recipient))
            return Prepared(token, jobs, gone)

    def _mail_for(self, session: Session, edition_id: int, variant_id: int | None) -> EditionMail:
        """The mail maker of the edition, or of its variant for one choice of sections."""
        key = (edition_id, variant_id)
        mail = self._mails.get(key)
        if mail is None:
            edition = session.get_one(Edition, edition_id)
            newsletter = session.get_one(Newsletter, edition.newsletter_id)
            if edition_id not in self._signers:
                self._signers[edition_id] = signer_for(
                    session, self.settings, newsletter.from_address
                )
                _keep_newest(self._signers, self.mails_kept)
            signer = self._signers[edition_id]
            variant = session.get(EditionVariant, variant_id) if variant_id else None
            parts = (variant.html_body, variant.text_body) if variant else None
            mail = edition_mail(self.settings, edition, newsletter, signer, parts=parts)
            self._mails[key] = mail
            _keep_newest(self._mails, self.mails_kept)
        self._mails.move_to_end(key)
        return mail

    def _write(self, outcomes: Sequence[Outcome], judged: Collection[int]) -> Recorded:
        with self.db.session() as session:
            recorded = ledger.record_outcomes(session, outcomes, judged, self.score)
            session.commit()
            return recorded

    def _renew(self, tokens: Collection[str]) -> Renewal:
        with self.db.session() as session:
            now = self.clock.observe(db_time(session)) if tokens else None
            renewal = ledger.renew_leases(session, tokens, self.lease, now)
            session.commit()
            return renewal


def _keep_newest(kept: OrderedDict[Any, Any], most: int) -> None:
    """Drop the least recently used entries beyond ``most``."""
    while len(kept) > most:
        kept.popitem(last=False)
