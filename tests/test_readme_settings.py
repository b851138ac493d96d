"""The README's settings table and config.py's fields name the same settings: a new field
needs its row, and a removed one (TIDINGS_UNSUBSCRIBE_MAILTO, say) loses it."""

import re
from pathlib import Path

from tidings.config import ENV_PREFIX, Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def _table_names() -> set[str]:
    """Every TIDINGS_* name in the first cell of a settings-table row."""
    names: set[str] = set()
    for line in README.read_text().splitlines():
        if line.startswith(f"| `{ENV_PREFIX}"):
            names |= set(re.findall(rf"{ENV_PREFIX}([A-Z0-9_]+)", line.split("|")[1]))
    return names


def test_every_setting_has_a_row_and_every_row_a_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    rows = _table_names()
    assert fields - rows == set(), "add these settings to the README's table"
    assert rows - fields == set(), "these README rows name no setting"
