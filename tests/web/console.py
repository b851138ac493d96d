"""Signed-in HTTP clients for console tests: real users, real sign-in, real cookies."""

import httpx

from tests.web.forms import form_to
from tidings.access.accounts import change_password, create_user
from tidings.db.engine import Database
from tidings.db.models import UserRole

PASSWORD = "correct-horse-battery-staple"


def make_user(db: Database, role: UserRole, email: str | None = None) -> str:
    """A user with a chosen password (the one-time one already changed)."""
    account, one_time = create_user(db, email or f"{role.value}@messenger.example.ge", role)
    change_password(db, account.id, one_time, PASSWORD)
    return account.email


def sign_in(base: str, email: str, password: str = PASSWORD) -> httpx.Client:
    # A bound, not a pause: a loaded CI machine once took over httpx's default 5 s to answer.
    client = httpx.Client(base_url=base, timeout=30.0)
    page = client.get("/admin/login")
    form = form_to(page.text, "/admin/login")
    answer = client.post("/admin/login", data={**form.hidden, "email": email, "password": password})
    assert answer.status_code == 303, answer.text
    return client


def csrf(client: httpx.Client) -> str:
    """The form token of this client's session (from any console form)."""
    page = client.get("/admin")
    return form_to(page.text, "/admin/logout").hidden["csrf_token"]
