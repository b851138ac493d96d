"""Reading subscriber rows from CSV: header handling, validation, spreadsheet-formula guard."""

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, TextIO

from tidings.errors import InvalidInput
from tidings.mail.addresses import (
    DEFAULT_LIMITS,
    NAME_LIMIT,
    AttributeLimits,
    attributes_json,
    clean_locale,
    clean_name,
    clean_timezone,
    normalise_email,
)

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
    """An invalid row: its line number in the file (or, for records, its position in the
    list, from 0) and why it was refused."""

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


def guard_cells(values: Iterable[str]) -> list[str]:
    """A CSV row (header or data) with every cell guarded by :func:`guard_formula`."""
    return [guard_formula(value) for value in values]


def column_name(raw: str) -> str:
    """A column (or record key) as the importer knows it: unguarded, without a byte-order
    mark or surrounding spaces, lower-cased."""
    return unguard_formula(raw.strip().lstrip("\ufeff").strip()).lower()


def _row(line: int, fields: Mapping[str, str], limits: AttributeLimits) -> SubscriberRow:
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
        attributes=attributes_json(attributes, limits),
    )


def _header(row: Sequence[str]) -> list[str]:
    columns = [column_name(name) for name in row]
    if "email" not in columns:
        raise InvalidInput("the header row has no 'email' column")
    if len(set(columns)) != len(columns):
        raise InvalidInput("the header row names a column twice")
    return columns


def read_records(
    records: Iterable[Mapping[str, str]], limits: AttributeLimits = DEFAULT_LIMITS
) -> Iterator[SubscriberRow | RowError]:
    """Yield each record (the API's objects) as a row, valid or not; each row's ``line`` is
    the record's position in the list, so a refusal names the record whatever it holds."""
    for position, record in enumerate(records):
        fields: dict[str, str] = {}
        for key, value in record.items():
            name = column_name(key)
            if name in fields:
                yield RowError(position, f"the key {name!r} appears twice")
                break
            fields[name] = value.strip()
        else:
            try:
                yield _row(position, fields, limits)
            except InvalidInput as exc:
                yield RowError(position, str(exc))


def _clean_name(raw: str) -> str | None:
    """:func:`clean_name` of a stripped cell, without its Unicode work for the common plain
    case (printable ASCII, no double space), where it gives the same."""
    if raw.isascii() and raw.isprintable() and "  " not in raw:
        return raw[:NAME_LIMIT] or None
    return clean_name(raw)


#: Locale tags and zone names repeat across a file: each distinct one is checked once
#: (a refusal is not remembered, so it raises with its reason every time).
_clean_locale = lru_cache(maxsize=1024)(clean_locale)
_clean_timezone = lru_cache(maxsize=1024)(clean_timezone)


class _RowReader:
    """Turns a CSV data row into a :class:`SubscriberRow`: the same as :func:`_row` over the
    row's fields, with the header's column positions worked out once, not per row."""

    def __init__(self, columns: Sequence[str], limits: AttributeLimits) -> None:
        self.width = len(columns)
        self.limits = limits
        position = {name: index for index, name in enumerate(columns)}
        self.email = position["email"]
        self.name = position.get("name")
        self.locale = position.get("locale")
        self.timezone = position.get("timezone")
        self.attributes = [
            (index, name) for index, name in enumerate(columns) if name not in EXPORT_COLUMNS
        ]

    def __call__(self, line: int, values: Sequence[str]) -> SubscriberRow:
        cells = [_cell(value) for value in values]
        cells += [""] * (self.width - len(cells))
        attributes = {
            name: cells[index][:ATTRIBUTE_VALUE_LIMIT]
            for index, name in self.attributes
            if cells[index]
        }
        return SubscriberRow(
            line=line,
            email=normalise_email(cells[self.email]),
            name=None if self.name is None else _clean_name(cells[self.name]),
            locale=None if self.locale is None else _clean_locale(cells[self.locale]),
            timezone=None if self.timezone is None else _clean_timezone(cells[self.timezone]),
            attributes=attributes_json(attributes, self.limits),
        )


def _cell(value: str) -> str:
    """A cell stripped, and unguarded if it starts with the guard's quote."""
    value = value.strip()
    return unguard_formula(value) if value[:1] == "'" else value


def read_rows(
    stream: TextIO, limits: AttributeLimits = DEFAULT_LIMITS
) -> Iterator[SubscriberRow | RowError]:
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
    columns = _header(header)
    row_of = _RowReader(columns, limits)
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
        try:
            yield row_of(line, values)
        except InvalidInput as exc:
            yield RowError(line, str(exc))
