"""Ids that name a person (subscriptions in signed links, users in session cookies) are never
handed out twice, on both databases; migration 0010 makes an existing SQLite database so
without losing a row."""

from pathlib import Path

import pytest
from sqlalchemy import delete, select, text

from tidings.db.engine import Database, open_database
from tidings.db.migrate import downgrade, upgrade
from tidings.db.models import ApiToken, Newsletter, Subscriber, Subscription, User, UserRole

TABLES = ("subscribers", "subscriptions", "users", "api_tokens", "deliveries", "idempotency_keys")


def test_the_id_of_the_newest_deleted_row_is_not_given_out_again(db: Database) -> None:
    with db.session() as session:
        daily = Newsletter(
            slug="daily",
            name="Daily",
            from_name="D",
            from_address="d@example.org",
            schedule_cron="0 7 * * *",
            timezone="UTC",
        )
        session.add(daily)
        session.flush()
        rows: dict[type, list[int]] = {}
        for round_ in range(2):
            person = Subscriber(email=f"p{round_}@example.org", attributes={})
            user = User(email=f"u{round_}@example.org", password_hash="x", role=UserRole.editor)
            token = ApiToken(name="t", role=UserRole.viewer, token_hash=f"{round_:064d}")
            session.add_all([person, user, token])
            session.flush()
            sub = Subscription(subscriber_id=person.id, newsletter_id=daily.id, status="active")
            session.add(sub)
            session.flush()
            for row in (person, user, token, sub):
                rows.setdefault(type(row), []).append(row.id)
            if round_ == 0:  # the newest of each goes, as an erasure or a removal would
                for model in (Subscription, Subscriber, User, ApiToken):
                    session.execute(delete(model).where(model.id == rows[model][0]))
                session.flush()
        session.commit()
    for model, (first, second) in rows.items():
        assert second > first, model.__name__


def _seed_at(url: str, revision: str = "0008") -> None:
    """Rows written with plain SQL (the models are at head): the highest subscriber and
    subscription are deleted afterwards, as an erasure leaves them."""
    statements = [
        "INSERT INTO newsletters (id, slug, name, from_name, from_address, schedule_cron,"
        " timezone, min_articles, max_articles, template_set, created_at, updated_at)"
        " VALUES (1, 'd', 'D', 'D', 'd@x.org', '0 7 * * *', 'UTC', 1, 5, 'digest', :t, :t)",
        "INSERT INTO editions (id, newsletter_id, kind, cadence, status, created_at)"
        " VALUES (1, 1, 'oneoff', 'daily', 'sent', :t)",
        "INSERT INTO users (id, email, password_hash, role, must_change_password, created_at)"
        " VALUES (3, 'u@x.org', 'h', 'admin', 0, :t)",
        "INSERT INTO api_tokens (id, name, role, token_hash, created_at)"
        " VALUES (4, 't', 'admin', 'abc', :t)",
        "INSERT INTO idempotency_keys (id, token_id, key, request_hash, created_at)"
        " VALUES (1, 4, 'k', 'h', :t)",
    ]
    per_person = [
        "INSERT INTO subscribers (id, email, attributes, created_at, updated_at)"
        " VALUES (:i, 'p' || :i || '@x.org', '{}', :t, :t)",
        "INSERT INTO subscriptions (id, subscriber_id, newsletter_id, status, cadence,"
        " created_at, updated_at) VALUES (:i + 10, :i, 1, 'active', 'daily', :t, :t)",
        "INSERT INTO deliveries (id, edition_id, subscriber_id, state, attempts,"
        " next_attempt_at, message_id, created_at) VALUES (:i, 1, :i, 'sent', 1, :t, 'm', :t)",
    ]
    database = open_database(url)
    upgrade(database.engine, revision)
    at = "2026-01-01 00:00:00"
    with database.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), {"t": at})
        for i in (1, 2, 5, 9):
            for statement in per_person:
                connection.execute(text(statement), {"t": at, "i": i})
        connection.execute(text("DELETE FROM subscribers WHERE id = 9"))
    database.dispose()


def _counts(database: Database) -> dict[str, int]:
    with database.engine.connect() as connection:
        counts = {
            table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608
            for table in TABLES
        }
        counts["anonymous deliveries"] = connection.execute(
            text("SELECT count(*) FROM deliveries WHERE subscriber_id IS NULL")
        ).scalar_one()
        counts["foreign_keys"] = connection.execute(text("PRAGMA foreign_keys")).scalar_one()
    return counts


def test_migration_0010_keeps_every_row_and_never_reuses_an_id(tmp_path: Path) -> None:
    """From 0008 (so the run before 0010 has written, and a transaction is open) to head:
    without foreign keys turned off for the copy, dropping the old ``subscribers`` would
    cascade to every subscription."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _seed_at(url)
    database = open_database(url)
    before = _counts(database)
    assert before == {
        "subscribers": 3,
        "subscriptions": 3,
        "users": 1,
        "api_tokens": 1,
        "deliveries": 4,
        "idempotency_keys": 1,
        "anonymous deliveries": 1,
        "foreign_keys": 1,
    }
    upgrade(database.engine)
    assert _counts(database) == before
    with database.engine.connect() as connection:
        sequence = dict(connection.execute(text("SELECT name, seq FROM sqlite_sequence")).all())
        ddl = connection.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'subscriptions'")
        ).scalar_one()
    assert sequence == {"subscribers": 5, "subscriptions": 15, "users": 3, "api_tokens": 4}
    assert "AUTOINCREMENT" in ddl and "REFERENCES subscribers" in ddl
    with database.session() as session:  # the next person gets a new id (6, not 5 again)
        session.execute(delete(Subscriber).where(Subscriber.id == 5))
        person = Subscriber(email="new@x.org", attributes={})
        session.add(person)
        session.commit()
        assert person.id == 6
        assert session.scalars(select(Subscription.id)).all() == [11, 12]
    downgrade(database.engine, "0009")
    upgrade(database.engine)
    assert _counts(database)["subscriptions"] == 2 and _counts(database)["foreign_keys"] == 1
    database.dispose()


@pytest.mark.parametrize("table", ["subscribers", "subscriptions", "users", "api_tokens"])
def test_a_new_sqlite_database_has_autoincrement(tmp_path: Path, table: str) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'new.db'}")
    upgrade(database.engine)
    with database.engine.connect() as connection:
        ddl = connection.execute(
            text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": table}
        ).scalar_one()
    database.dispose()
    assert "AUTOINCREMENT" in ddl


@pytest.mark.parametrize("revision", ["0007", "0008"])
def test_upgrading_a_filled_sqlite_database_keeps_every_row(tmp_path: Path, revision: str) -> None:
    """Every migration that rebuilds a table (0008 rebuilds ``editions``) runs with foreign
    keys off: with them on, dropping the old table cascaded to every delivery."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _seed_at(url, revision)
    database = open_database(url)
    before = _counts(database)
    upgrade(database.engine)
    assert _counts(database) == before
    downgrade(database.engine, revision)
    assert _counts(database) == before
    database.dispose()
