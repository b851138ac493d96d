"""docker-compose.yml against the Compose specification's JSON schema, plus the topology."""

import json
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any
from zipfile import ZipFile

import jsonschema
import yaml
from typer.testing import CliRunner

from tidings.cli import app

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


def _dockerfile_lines() -> list[str]:
    """The image's inline Dockerfile (shared by every Tidings service), one instruction a line."""
    inline = _compose()["services"]["worker"]["build"]["dockerfile_inline"]
    assert isinstance(inline, str)
    return inline.replace("\\\n", " ").splitlines()


def _build_wheel(source: Path, out: Path) -> set[str]:
    """Build the wheel from ``source`` as pip would, and list the files in it."""
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("tidings-*.whl")
    return set(ZipFile(built).namelist())


def test_image_installs_tidings_plainly_with_what_it_copies(tmp_path: Path) -> None:
    # No Docker engine runs here: lay out the image's /app from its COPY lines, then check
    # that pip's target is that folder with no extras and that it builds the full wheel.
    context = tmp_path / "app"
    context.mkdir()
    installs = []
    for line in _dockerfile_lines():
        words = shlex.split(line.strip())
        if words[:1] == ["COPY"]:
            *sources, destination = words[1:]
            for source in sources:
                target = context / destination
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(ROOT / source, target)
        elif words[:3] == ["RUN", "pip", "install"]:
            installs.append([w for w in words[3:] if not w.startswith("-")])
    assert installs == [["."]], "the image must install the package itself, without extras"
    shipped = _build_wheel(context, tmp_path / "image-dist")
    assert shipped == _build_wheel(ROOT, tmp_path / "tree-dist")
    assert "tidings/migrations/env.py" in shipped and "tidings/sample/feed.xml" in shipped
    assert "tidings/ops/grafana_dashboard.json" in shipped


def test_every_service_command_is_a_tidings_command() -> None:
    services = _compose()["services"]
    for name in ("migrate", "web", "scheduler", "worker"):
        command = services[name]["command"]
        result = CliRunner().invoke(app, [*command[1:], "--help"])
        assert result.exit_code == 0, (name, result.output)
