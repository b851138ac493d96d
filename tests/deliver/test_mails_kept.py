"""How many mail makers a worker keeps: a bounded number, yet always one edition's variants
and its plain mail (else a claim mixing them would rebuild each in turn)."""

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.deliver.worker_db import MAILS_KEPT, WorkerDatabase


def test_a_worker_keeps_at_least_one_editions_variants_and_its_mail(
    db: Database, settings: Settings
) -> None:
    assert MAILS_KEPT == 32  # ~109 KiB each: a few MB, not the ~28 MB 256 came to
    assert WorkerDatabase(db, settings).mails_kept == settings.max_section_variants + 1
    many = settings.model_copy(update={"max_section_variants": 200})
    assert WorkerDatabase(db, many).mails_kept == 201
    none = settings.model_copy(update={"max_section_variants": 0})
    assert WorkerDatabase(db, none).mails_kept == MAILS_KEPT
