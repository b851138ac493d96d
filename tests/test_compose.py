"""docker-compose.yml against the Compose specification's JSON schema, plus the topology."""

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _schema() -> dict[str, Any]:
    # The schema vendored by check-jsonschema (a dev dependency): no download at test time.
    files = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(files.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def test_compose_file_matches_the_compose_specification() -> None:
    schema = _schema()
    validator_class = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_class(schema).iter_errors(_compose()), key=str)
    assert errors == []


def test_schema_rejects_a_broken_file() -> None:
    broken = _compose()
    broken["services"]["worker"]["deploy"] = {"replicas": "many"}
    broken["services"]["web"]["ports"] = {"8000": 8000}
    schema = _schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert len(list(validator.iter_errors(broken))) >= 2


def test_topology_has_database_catcher_and_scaled_tidings_services() -> None:
    services = _compose()["services"]
    assert {"postgres", "mailpit", "migrate", "web", "scheduler", "worker"} <= set(services)
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name in ("migrate", "web", "scheduler", "worker"):
        service = services[name]
        assert service["command"][0] == "tidings"
        env = service["environment"]
        assert env["TIDINGS_DATABASE_URL"].startswith("postgresql://")
        assert env["TIDINGS_SMTP_URL"] == "smtp://mailpit:1025"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"]
