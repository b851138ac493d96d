"""The suppression list by hand: list and search it by pages, add one address, remove an
entry; on SQLite and PostgreSQL."""

import pytest

from tests.audience.people import audience
from tidings.audience.search import PAGE_SIZE
from tidings.audience.suppressions import suppress, suppressions, unsuppress
from tidings.db.engine import Database
from tidings.db.models import SuppressionReason
from tidings.errors import InvalidInput, NotFound


def test_adding_an_address_normalises_it_once(db: Database) -> None:
    audience(db)
    assert suppress(db, "  Ana@EXAMPLE.GE ", "asked by phone") is True
    assert suppress(db, "ana@example.ge", "again") is False
    assert suppress(db, "bob@example.ge", None) is False  # on the list already (a bounce)
    rows, _ = suppressions(db, "ana")
    assert [(r.email, r.reason, r.detail) for r in rows] == [
        ("ana@example.ge", SuppressionReason.manual, "asked by phone")
    ]
    with pytest.raises(InvalidInput):
        suppress(db, "not an address", None)


def test_the_list_is_searched_and_paged_by_id(db: Database) -> None:
    audience(db)
    for n in range(PAGE_SIZE + 3):
        suppress(db, f"gone{n:03}@example.org", None)
    first, after = suppressions(db, "example.org")
    assert len(first) == PAGE_SIZE and after == first[-1].id
    second, end = suppressions(db, "EXAMPLE.ORG", after)
    assert len(second) == 3 and end is None
    ids = [r.id for r in first + second]
    assert ids == sorted(ids) and len(set(ids)) == PAGE_SIZE + 3
    everyone, _ = suppressions(db)
    assert everyone[0].email == "bob@example.ge"
    assert suppressions(db, "_") == ([], None)  # no LIKE wildcard


def test_removing_an_entry(db: Database) -> None:
    audience(db)
    (bob,), _ = suppressions(db, "bob")
    assert unsuppress(db, bob.id) is True
    assert suppressions(db, "bob") == ([], None)
    with pytest.raises(NotFound):
        unsuppress(db, bob.id)
