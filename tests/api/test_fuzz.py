"""Schemathesis fuzzes the API from its own OpenAPI document over real HTTP: no answer is a
500, and every answer matches the document (status, content type, body schema)."""

from datetime import UTC, datetime, timedelta

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.builders import articles, newsletter, subscribers
from tests.webserver import web_server
from tidings.access.apitokens import create_token
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import UserRole

EXAMPLES_PER_OPERATION = 15
#: No 500, and every answer as documented. Not "positive data acceptance": addresses, cron
#: lines and time zones are checked by the services in ways a JSON schema cannot say, so a
#: schema-valid body may rightly get a 422.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_api_answers_match_its_document(db: Database, settings: Settings) -> None:
    newsletter(db)
    articles(db, "daily", 3, datetime.now(UTC) - timedelta(hours=2))
    subscribers(db, "daily", 3)
    token = create_token(db, "fuzz", UserRole.admin, None)[1]
    headers = {"Authorization": f"Bearer {token}"}
    with web_server(settings, db) as base:
        schema = schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 20
        for operation in operations:

            @given(case=operation.as_strategy())
            @hypothesis_settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def fuzz(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=CHECKS)

            fuzz()
