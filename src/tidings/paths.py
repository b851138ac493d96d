"""Where the shipped templates, migrations and sample data live.

In a wheel, ``templates/`` and ``migrations/`` are packed inside the ``tidings`` package; in a
source checkout (editable install) they sit at the repository's top level.
"""

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DIR = _PACKAGE_DIR.parent.parent


def _shipped(name: str) -> Path:
    inside = _PACKAGE_DIR / name
    if inside.is_dir():
        return inside
    return _CHECKOUT_DIR / name


def templates_dir() -> Path:
    """The built-in templates folder."""
    return _shipped("templates")


def migrations_dir() -> Path:
    """The Alembic environment folder."""
    return _shipped("migrations")


def sample_dir() -> Path:
    """The sample publication (feed and subscriber CSV) shipped with the package."""
    return _PACKAGE_DIR / "sample"
