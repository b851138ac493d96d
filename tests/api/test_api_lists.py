"""One behaviour for every list in the API, found from the OpenAPI document itself (a list
added later is held to it without anyone remembering this test): ``limit`` and ``cursor`` are
taken and honoured, and a list item carries the fields of the single resource."""

import httpx

from tests.api.test_api import Api
from tests.api.test_api import api as api
from tests.builders import subscribers
from tidings.audience.suppressions import suppress
from tidings.db.models import UserRole


def _paged_gets(document: dict[str, object]) -> list[str]:
    """The GET paths whose answer is a Page (items and next_cursor)."""
    paths = document["paths"]
    assert isinstance(paths, dict)
    found = []
    for path, operations in paths.items():
        get = operations.get("get")
        if not get:
            continue
        schema = get["responses"]["200"]["content"]["application/json"]["schema"]
        if schema.get("$ref", "").split("/")[-1].startswith("Page_"):
            found.append(path)
    return found


def test_every_list_takes_and_honours_limit_and_cursor(api: Api) -> None:
    subscribers(api.db, "daily", 4)  # 4 in all: the fixture made reader0 to reader2
    suppress(api.db, "reader0@example.ge", "test")
    suppress(api.db, "reader1@example.ge", "test")
    document = httpx.get(f"{api.base}/api/v1/openapi.json").json()
    paged = _paged_gets(document)
    assert {"/newsletters", "/subscribers", "/suppressions", "/editions"} <= set(paged)
    with api.client(UserRole.admin) as admin:
        for path in paged:
            if "{" in path:
                continue  # needs an edition of its own; tests/api/test_feedback.py pages it
            names = {p["name"] for p in document["paths"][path]["get"].get("parameters", [])}
            assert {"limit", "cursor"} <= names, path
            everything = admin.get(path, params={"limit": 200}).json()["items"]
            first = admin.get(path, params={"limit": 1}).json()
            assert len(first["items"]) == min(1, len(everything)), path
            if len(everything) > 1:
                assert first["next_cursor"], path
                rest = admin.get(path, params={"limit": 200, "cursor": first["next_cursor"]})
                assert first["items"] + rest.json()["items"] == everything, path
            too_many = admin.get(path, params={"limit": 201})
            assert too_many.status_code == 422, path
        listed = admin.get("/subscribers", params={"limit": 200}).json()["items"]
        assert len(listed) == 4
        for item in listed:
            single = admin.get(f"/subscribers/{item['id']}").json()
            assert item == single, (item, single)
