"""The drawing of the exception tree in errors.py names every TidingsError of the package."""

import importlib
import pkgutil

import tidings
from tidings import errors


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_every_tidings_error_is_in_the_drawing() -> None:
    for module in pkgutil.walk_packages(tidings.__path__, "tidings."):
        if module.name != "tidings.__main__":
            importlib.import_module(module.name)
    drawing = errors.__doc__ or ""
    missing = sorted(
        cls.__name__
        for cls in _all_subclasses(errors.TidingsError)
        if cls.__module__.startswith("tidings.") and f" {cls.__name__}" not in drawing
    )
    assert missing == []


def test_the_check_sees_a_new_class() -> None:
    class Unlisted(errors.InvalidInput):
        pass

    assert Unlisted in _all_subclasses(errors.TidingsError)
    assert " Unlisted" not in (errors.__doc__ or "")
