"""One behaviour for the whole API: malformed JSON is the body's fault with the parser's
reason; newsletters carry their allowed origins; the interactive docs are tested in
tests/web/test_api_docs_browser.py (browser tests live under tests/web: Playwright's loop stays
in the process once started)."""

from collections.abc import Iterator

import httpx
import pytest

from tests.api.test_api import Api, _error
from tests.api.test_api import api as api
from tidings.db.models import UserRole


@pytest.fixture
def admin(api: Api) -> Iterator[httpx.Client]:
    with api.client(UserRole.admin) as client:
        yield client


def test_malformed_json_names_the_body_and_the_parse_error(admin: httpx.Client) -> None:
    sent = admin.post(
        "/newsletters/daily/sources",
        content=b'{"url": 9,,}',
        headers={"Content-Type": "application/json"},
    )
    error = _error(sent, 422, "invalid_request")
    assert error["details"] == [
        {
            "field": "body",
            "problem": "the body is not valid JSON: Expecting property name enclosed in "
            "double quotes at character 10",
        }
    ]
    assert str(error["message"]).startswith("body: the body is not valid JSON")
    # A well-formed body with a wrong field still names the field.
    typed = _error(
        admin.post("/newsletters/daily/sources", json={"url": 9}), 422, "invalid_request"
    )
    assert typed["details"][0]["field"] == "url"  # type: ignore[index]


def test_allowed_origins_are_set_read_and_cleared(admin: httpx.Client) -> None:
    assert admin.get("/newsletters/daily").json()["allowed_origins"] == []
    changed = admin.patch(
        "/newsletters/daily",
        json={"allowed_origins": ["https://Messenger.example.ge/", "https://m.example.ge:8443"]},
    )
    assert changed.status_code == 200, changed.text
    expected = ["https://messenger.example.ge", "https://m.example.ge:8443"]
    assert changed.json()["allowed_origins"] == expected
    listed = admin.get("/newsletters").json()["items"]
    assert [n["allowed_origins"] for n in listed if n["slug"] == "daily"] == [expected]
    refused = _error(
        admin.patch("/newsletters/daily", json={"allowed_origins": ["https://a.ge/path"]}),
        422,
        "invalid_input",
    )
    assert "'https://a.ge/path'" in str(refused["message"])
    _error(
        admin.patch("/newsletters/daily", json={"allowed_origins": None}), 422, "invalid_request"
    )
    assert admin.get("/newsletters/daily").json()["allowed_origins"] == expected
    cleared = admin.patch("/newsletters/daily", json={"allowed_origins": []})
    assert cleared.json()["allowed_origins"] == []
    created = admin.post(
        "/newsletters",
        json={
            "slug": "evening",
            "name": "Evening",
            "sender": "Evening <evening@messenger.example.ge>",
            "allowed_origins": ["https://messenger.example.ge"],
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["allowed_origins"] == ["https://messenger.example.ge"]


def test_the_api_never_gives_cli_advice(api: Api) -> None:
    document = httpx.get(f"{api.base}/api/v1/openapi.json").text
    assert "tidings tokens" not in document and "--" not in document.replace("---", "")
    answer = httpx.get(f"{api.base}/api/v1/newsletters")
    assert "tidings " not in answer.text


def test_an_unknown_template_set_is_refused(admin: httpx.Client) -> None:
    refused = _error(
        admin.patch("/newsletters/daily", json={"template_set": "fancy"}), 422, "invalid_input"
    )
    assert "'fancy'" in str(refused["message"])
    assert admin.get("/newsletters/daily").json()["template_set"] == "digest"
