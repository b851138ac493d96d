"""Reading subscriber rows from CSV: header handling, validation, spreadsheet-formula guard."""

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TextIO

from tidings.audience.addresses import clean_locale, clean_name, clean_timezone, normalise_email
from tidings.errors import InvalidInput

KNOWN_COLUMNS = ("email", "name", "locale", "timezone")
#: What an export writes before the attribute columns; an import ignores the extra ones
#: (status and consent are the database's record, not something a file can overwrite).
EXPORT_COLUMNS = (
    *KNOWN_COLUMNS,
    "status",
    "consent_at",
    "consent_method",
    "confirmed_at",
    "unsubscribed_at",
)
# Spreadsheets run cells that start with these as formulas; exports guard them with a quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ATTRIBUTE_VALUE_LIMIT = 1000


@dataclass(frozen=True)
class SubscriberRow:
    """One valid CSV row, cleaned; ``attributes`` is a compact JSON object."""

    line: int
    email: str
    name: str | None
    locale: str | None
    timezone: str | None
    attributes: str


@dataclass(frozen=True)
class RowError:
    """An invalid row: its line number in the file and why it was refused."""

    line: int
    reason: str


def write_row_errors(errors: Iterable[RowError], out: TextIO) -> None:
    """The invalid rows of an import as CSV: line, reason."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "reason"])
    writer.writerows([error.line, guard_formula(error.reason)] for error in errors)


def write_import_report(report: "ImportLike", out: TextIO) -> None:
    """An import's outcome as a two-column CSV: each count, then each invalid row."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["what", "value"])
    for label, count in report.summary():
        writer.writerow([label, count])
    writer.writerows(
        [f"invalid row, line {error.line}", guard_formula(error.reason)] for error in report.invalid
    )


class ImportLike(Protocol):
    """What :func:`write_import_report` needs of an import report."""

    invalid: list[RowError]

    def summary(self) -> list[tuple[str, int]]: ...


def guard_formula(value: str) -> str:
    """Prefix a quote to cells a spreadsheet would evaluate."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def unguard_formula(value: str) -> str:
    """Undo :func:`guard_formula`, so an export imports back unchanged."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def _row(line: int, fields: dict[str, str]) -> SubscriberRow:
    attributes = {
        key: value[:ATTRIBUTE_VALUE_LIMIT]
        for key, value in fields.items()
        if key not in EXPORT_COLUMNS and value
    }
    return SubscriberRow(
        line=line,
        email=normalise_email(fields.get("email", "")),
        name=clean_name(fields.get("name")),
        locale=clean_locale(fields.get("locale")),
        timezone=clean_timezone(fields.get("timezone")),
        attributes=json.dumps(
            attributes, ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ),
    )


def read_rows(stream: TextIO) -> Iterator[SubscriberRow | RowError]:
    """Yield each data row of a CSV with a header row, valid or not, in file order."""
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(
            "the file is empty: expected a header row with an 'email' column"
        ) from None
    except csv.Error as exc:
        raise InvalidInput(f"line 1: {exc}") from None
    columns = [name.strip().lstrip("\ufeff").lower() for name in header]
    if "email" not in columns:
        raise InvalidInput("the header row has no 'email' column")
    if len(set(columns)) != len(columns):
        raise InvalidInput("the header row names a column twice")
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RowError(reader.line_num, f"unreadable CSV: {exc}")
            continue
        line = reader.line_num
        if not any(value.strip() for value in values):
            continue
        if len(values) > len(columns):
            yield RowError(line, f"{len(values)} fields but the header has {len(columns)}")
            continue
        fields = {
            column: unguard_formula(value.strip())
            for column, value in zip(columns, values, strict=False)
        }
        try:
            yield _row(line, fields)
        except InvalidInput as exc:
            yield RowError(line, str(exc))
