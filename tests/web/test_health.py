"""/healthz and /readyz over real HTTP: alive without a database; ready only with the
database reachable, the schema at head and, when deliveries are due, a fresh worker beat."""

from datetime import UTC, datetime, timedelta

import httpx

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import free_port
from tests.webserver import serve, web_server
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings
from tidings.db.engine import Database, open_database
from tidings.db.migrate import downgrade, head_revision, upgrade
from tidings.deliver.heartbeats import Heartbeat, beat, stale_after
from tidings.web.app import create_app


def _checks(response: httpx.Response) -> dict[str, bool]:
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["ready"] == (response.status_code == 200)
    return {name: check["ok"] for name, check in body["checks"].items()}


def _beat(db: Database, at: datetime) -> None:
    beat(db, Heartbeat("w1", "host-a", 99, at - timedelta(minutes=5), at, 3.0, 4))


def test_alive_is_ok_without_asking_anything(settings: Settings, db: Database) -> None:
    with web_server(settings, db) as base:
        response = httpx.get(f"{base}/healthz")
    assert (response.status_code, response.text) == (200, "ok")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"].startswith("text/plain")


def test_ready_needs_a_live_worker_only_while_deliveries_are_due(
    settings: Settings, db: Database
) -> None:
    with web_server(settings, db) as base:
        idle = httpx.get(f"{base}/readyz")
        assert idle.status_code == 200, idle.text
        assert _checks(idle) == {"database": True, "migrations": True, "worker": True}
        assert idle.json()["checks"]["worker"]["detail"] == "nothing is due"

        newsletter(db)
        articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
        subscribers(db, "daily", 3)
        send_one_off(db, settings, "daily", OneOff(article_ids=[]))
        nobody = httpx.get(f"{base}/readyz")
        assert nobody.status_code == 503
        assert _checks(nobody) == {"database": True, "migrations": True, "worker": False}
        assert "no worker is alive" in nobody.json()["checks"]["worker"]["detail"]

        _beat(db, datetime.now(UTC) - stale_after() - timedelta(seconds=2))  # died a while ago
        assert httpx.get(f"{base}/readyz").status_code == 503
        _beat(db, datetime.now(UTC))
        beating = httpx.get(f"{base}/readyz")
        assert beating.status_code == 200, beating.text
        assert beating.json()["checks"]["worker"]["detail"] == "1 alive, deliveries are due"


def test_not_ready_while_the_schema_is_behind(settings: Settings, db: Database) -> None:
    with web_server(settings, db) as base:
        downgrade(db.engine, "0013")
        try:
            behind = httpx.get(f"{base}/readyz")
        finally:
            upgrade(db.engine)
        assert behind.status_code == 503
        checks = _checks(behind)
        assert checks["database"] is True and checks["migrations"] is False
        wanted = f"at 0013, head is {head_revision(db.engine)}"
        assert behind.json()["checks"]["migrations"]["detail"] == wanted
        assert httpx.get(f"{base}/readyz").status_code == 200


def test_not_ready_without_the_database_but_still_alive(settings: Settings, db: Database) -> None:
    nowhere = open_database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    try:
        with serve(create_app(settings, nowhere)) as base:
            down = httpx.get(f"{base}/readyz")
            alive = httpx.get(f"{base}/healthz")
    finally:
        nowhere.dispose()
    assert down.status_code == 503
    assert _checks(down) == {"database": False, "migrations": False, "worker": False}
    assert down.json()["checks"]["database"]["detail"].startswith("unreachable")
    assert (alive.status_code, alive.text) == (200, "ok")
