"""Tidings installs and runs as released: the wheel, with its declared dependencies only, in a
fresh virtual environment that shares nothing with the test environment."""

import ast
import json
import os
import re
import site
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from zipfile import ZipFile

import psycopg
import pytest

from tests.conftest import ADMIN_URL
from tests.smtpserver import free_port, smtp_server

ROOT = Path(__file__).resolve().parent.parent
# Python code that ships in the wheel and runs in production (migrations run under alembic).
SHIPPED_CODE = (ROOT / "src" / "tidings", ROOT / "migrations")


def _normalise(name: str) -> str:
    """A distribution name in its PEP 503 form, so 'MarkupSafe' matches 'markupsafe'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_requirements() -> set[str]:
    """The distributions pyproject.toml declares for run time (no extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        _normalise(re.match(r"[A-Za-z0-9._-]+", requirement).group())  # type: ignore[union-attr]
        for requirement in project["dependencies"]
    }


def _third_party_imports() -> dict[str, set[str]]:
    """Each top-level module that shipped code imports (not stdlib, not tidings), with where."""
    found: dict[str, set[str]] = {}
    for folder in SHIPPED_CODE:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top != "tidings" and top not in sys.stdlib_module_names:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_runtime_dependency() -> None:
    providers = metadata.packages_distributions()
    declared = _runtime_requirements()
    imports = _third_party_imports()
    assert {"sqlalchemy", "fastapi", "aiosmtpd"} <= set(imports)  # the walk sees real imports
    undeclared = {
        f"{module} ({', '.join(providers.get(module, ['not installed']))}) in {sorted(where)}"
        for module, where in imports.items()
        if not any(_normalise(dist) in declared for dist in providers.get(module, []))
    }
    assert not undeclared, "imported at run time but not in [project].dependencies"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("tidings-*.whl")
    return built


@pytest.mark.slow
def test_wheel_contains_templates_migrations_and_sample(wheel: Path) -> None:
    names = set(ZipFile(wheel).namelist())
    assert "tidings/migrations/env.py" in names
    assert any(n.startswith("tidings/migrations/versions/0001") for n in names)
    assert "tidings/templates/README.md" in names
    assert "tidings/sample/feed.xml" in names and "tidings/sample/subscribers.csv" in names


@dataclass(frozen=True)
class FreshInstall:
    """A virtual environment holding the wheel and what it declares, and nothing else."""

    bin: Path
    purelib: Path

    def env(self, workdir: Path, **extra: str) -> dict[str, str]:
        """A clean environment: nothing of the test process's PYTHONPATH, venv or TIDINGS_*."""
        env = {
            "PATH": f"{self.bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(workdir),
            "LANG": "C.UTF-8",
            "COLUMNS": "200",
            "TIDINGS_DATA_DIR": str(workdir / "data"),
            "TIDINGS_ALLOW_INSECURE_LINKS": "true",  # a loopback SMTP server, http links
        }
        env.update(extra)
        return env

    def run(self, workdir: Path, env: dict[str, str], *args: str) -> str:
        """Run the installed ``tidings`` from ``workdir``; return its output, fail on an error."""
        result = subprocess.run(
            [str(self.bin / "tidings"), *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"tidings {' '.join(args)}:\n{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def fresh(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshInstall]:
    """pip installs the wheel with its dependencies from the index this machine's pip uses.

    The venv gets no pip of its own: this environment's pip installs into it (``--python``),
    which takes half the time of bootstrapping one, and leaves only Tidings and its dependencies.
    """
    target = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(target)],
        check=True,
        capture_output=True,
    )
    python = target / "bin" / "python"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))
    }  # the pip cache and the machine's index settings stay
    started = time.monotonic()
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    print(f"pip install of the wheel took {time.monotonic() - started:.1f} s")
    purelib = subprocess.run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    yield FreshInstall(target / "bin", Path(purelib))


@pytest.mark.slow
def test_fresh_environment_shares_nothing_with_the_test_environment(
    fresh: FreshInstall, tmp_path: Path
) -> None:
    probe = (
        "import json, sys, tidings, aiosmtpd; "
        "print(json.dumps({'path': sys.path, 'tidings': tidings.__file__}))"
    )
    shown = subprocess.run(
        [str(fresh.bin / "python"), "-c", probe],
        cwd=tmp_path,
        env=fresh.env(tmp_path),
        check=True,
        capture_output=True,
        text=True,
    )
    seen = json.loads(shown.stdout)
    ours = [Path(p) for p in [*site.getsitepackages(), str(ROOT)]]
    if sys.prefix != sys.base_prefix:  # the test environment is a venv: none of it at all
        ours.append(Path(sys.prefix))
    for entry in filter(None, seen["path"]):
        assert not any(Path(entry).is_relative_to(p) for p in ours), entry
    assert str(fresh.purelib) in seen["path"]
    assert Path(seen["tidings"]).is_relative_to(fresh.purelib)


@pytest.mark.slow
def test_installed_wheel_upgrades_and_sends_one_edition(
    fresh: FreshInstall, tmp_path: Path
) -> None:
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    with smtp_server() as (handler, port):
        env = fresh.env(workdir, TIDINGS_SMTP_URL=f"smtp://127.0.0.1:{port}")
        assert "digest" in fresh.run(workdir, env, "--help")
        assert "upgraded from empty" in fresh.run(workdir, env, "db", "upgrade")
        assert (workdir / "data" / "tidings.db").is_file()
        fresh.run(
            workdir,
            env,
            *("newsletter", "create", "morning", "--name", "The Morning"),
            *("--from", "The Morning <news@morning.example.org>"),
        )
        fresh.run(
            workdir,
            env,
            *("articles", "add", "--newsletter", "morning"),
            *("--url", "https://morning.example.org/bridge", "--title", "The bridge reopens"),
        )
        fresh.run(
            workdir,
            env,
            *("subscribers", "add", "reader@morning.example.org"),
            *("--newsletter", "morning", "--confirmed"),
        )
        fresh.run(workdir, env, "digest", "send", "morning", "--no-wait")
        assert handler.recipients() == []  # queued: only a worker sends
        fresh.run(workdir, env, "worker", "--drain")
        assert handler.recipients() == ["reader@morning.example.org"]
        message = handler.caught[0].message
        assert message["To"] == "reader@morning.example.org"
        assert message["From"] == "The Morning <news@morning.example.org>"
        text = message.get_body(("plain",))
        assert text is not None and "The bridge reopens" in text.get_content()


@pytest.mark.slow
def test_installed_wheel_runs_the_demo_into_the_built_in_catcher(
    fresh: FreshInstall, tmp_path: Path
) -> None:
    env = fresh.env(tmp_path, TIDINGS_CATCHER_PORT=str(free_port()))
    shown = fresh.run(tmp_path, env, "demo", "--no-serve")
    assert "edition 1: sent 8 message(s)" in shown
    assert len(list((tmp_path / "data" / "mailbox").glob("*.eml"))) == 8


@pytest.fixture
def empty_postgres(postgres_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (the session's one may be migrated already)."""
    name = f"tidings_install_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_installed_wheel_upgrades_postgresql_as_the_compose_image_does(
    fresh: FreshInstall, empty_postgres: str, tmp_path: Path
) -> None:
    # docker-compose.yml's migrate service: a plain postgresql:// URL, the declared driver.
    env = fresh.env(tmp_path, TIDINGS_DATABASE_URL=empty_postgres)
    assert "upgraded from empty" in fresh.run(tmp_path, env, "db", "upgrade")
    with psycopg.connect(empty_postgres) as connection:
        tables = {row[0] for row in connection.execute("SELECT tablename FROM pg_tables")}
    assert {"newsletters", "subscribers", "deliveries", "alembic_version"} <= tables
