"""A non-editable install works: the wheel carries templates/ and migrations/."""

import os
import site
import sqlite3
import subprocess
import sys
import venv
from pathlib import Path
from zipfile import ZipFile

import pytest

ROOT = Path(__file__).resolve().parent.parent


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


def test_wheel_contains_templates_migrations_and_sample(wheel: Path) -> None:
    names = set(ZipFile(wheel).namelist())
    assert "tidings/migrations/env.py" in names
    assert any(n.startswith("tidings/migrations/versions/0001") for n in names)
    assert "tidings/templates/README.md" in names
    assert "tidings/sample/feed.xml" in names and "tidings/sample/subscribers.csv" in names


def test_installed_wheel_runs_db_upgrade(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    # Dependencies come from this test environment's site-packages (a plain path entry, so
    # the editable install's .pth of this checkout is not picked up).
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update({"TIDINGS_DATA_DIR": str(workdir / "data"), "PYTHONPATH": ""})
    where = subprocess.run(
        [str(python), "-c", "import tidings.paths as p; print(p.migrations_dir())"],
        cwd=workdir,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert where.startswith(purelib), where

    result = subprocess.run(
        [str(target / "bin" / "tidings"), "db", "upgrade"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "upgraded from empty" in result.stdout
    with sqlite3.connect(workdir / "data" / "tidings.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"newsletters", "subscribers", "deliveries", "alembic_version"} <= tables
