"""The app's OpenAPI documents (the web app's, which tests walk as its route table, and the
mounted API's) give every operation its own id, and building them warns about nothing."""

import warnings
from typing import Any

import pytest
from starlette.routing import Mount

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.mail.edition import TEST_UNSUBSCRIBE_PATH
from tidings.web.app import create_app

# One database is enough: the route table does not depend on storage.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _operation_ids(schema: dict[str, Any]) -> list[str]:
    return [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]


def test_every_operation_has_its_own_id_and_no_warning(settings: Settings, db: Database) -> None:
    app = create_app(settings, db)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schemas = [app.openapi()]
        schemas += [r.app.openapi() for r in app.routes if isinstance(r, Mount)]  # type: ignore[attr-defined]
    assert [str(w.message) for w in caught] == []
    for schema in schemas:
        ids = _operation_ids(schema)
        assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    # The test mail's unsubscribe page answers its link (GET) and its one-click POST.
    assert set(schemas[0]["paths"][TEST_UNSUBSCRIBE_PATH]) == {"get", "post"}
