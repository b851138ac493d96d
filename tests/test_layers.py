"""The package's rooms import downwards only: each room may use its own modules and the rooms
on a lower floor, never a room on its own floor or above (so no two rooms import each other).

The floors are written out here, once; a new room must be given a floor to pass.
"""

import ast
from pathlib import Path

import pytest

import tidings

PACKAGE = Path(tidings.__file__).parent

#: Lowest floor first. A room is a sub-package or a loose module of ``tidings``.
FLOORS: list[set[str]] = [
    {"__init__", "errors", "paths", "text", "crontab", "metrics"},
    {"config"},
    {"db"},
    {"mail"},
    {"catalog"},
    {"feedback"},
    {"deliver"},
    {"ingest", "audience"},
    {"compose", "inbound"},
    {"reports", "access", "doctor"},
    {"schedule"},
    {"sample"},
    {"web"},
    {"cli"},
    {"__main__"},
]
FLOOR_OF = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def _room(module: str) -> str:
    """``tidings.deliver.worker`` -> ``deliver``; ``tidings`` itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _from_package(name: str) -> str:
    """``from tidings import X``: a room when X is one, else a name of the package itself."""
    is_room = (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()
    return f"tidings.{name}" if is_room else "tidings"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of ``tidings`` in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "tidings":  # from tidings import deliver -> a room
                names = [_from_package(alias.name) for alias in node.names]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "tidings"]


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_room_has_a_floor() -> None:
    rooms = {_room(_module_name(path)) for path in _sources()}
    assert rooms - FLOOR_OF.keys() == set(), "give each new room a floor in FLOORS"


def test_imports_point_down_only() -> None:
    upward = []
    for path in _sources():
        room = _room(_module_name(path))
        for line, imported in _imports(path):
            target = _room(imported)
            if target != room and FLOOR_OF[target] >= FLOOR_OF[room]:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} {room} -> {imported}")
    assert upward == []


@pytest.mark.parametrize(
    ("room", "imported", "allowed"),
    [
        ("deliver", "tidings.compose.service", False),
        ("mail", "tidings.deliver.worker", False),
        ("audience", "tidings.ingest.drafts", False),
        ("compose", "tidings.deliver.ledger", True),
        ("web", "tidings.text", True),
    ],
)
def test_the_rule_itself(room: str, imported: str, allowed: bool) -> None:
    """The floor rule refuses what it must (so the test above can fail)."""
    target = _room(imported)
    assert (target == room or FLOOR_OF[target] < FLOOR_OF[room]) is allowed
