"""Uploaded CSV files waiting for the admin's go-ahead, and their import reports.

Keys are random and checked against a strict pattern, so a key can never name a path
outside the uploads folder. Uploads hold personal data: an imported file is deleted at
once, and anything older than :data:`KEEP` (a preview never imported, an old report) is
deleted whenever a new file arrives.
"""

import csv
import re
import time
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from tidings.errors import InvalidInput, NotFound

_KEY = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
PREVIEW_ROWS = 5
KEEP = 24 * 3600
CHUNK = 64 * 1024


class Uploads:
    def __init__(self, data_dir: Path) -> None:
        self._folder = data_dir / "uploads"
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def purge_stale(self) -> int:
        """Delete files older than :data:`KEEP`; how many."""
        cutoff = time.time() - KEEP
        stale = [p for p in self._folder.iterdir() if p.stat().st_mtime < cutoff]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def save(self, key: str, source: BinaryIO, limit: int) -> None:
        """Store an uploaded file under ``key``, in chunks; a file over ``limit`` bytes is
        deleted and refused (the request cap bounds it already: this keeps the rule here too)."""
        path = self.path(key)
        written = 0
        with path.open("wb") as out:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > limit:
                    break
                out.write(chunk)
        if written > limit:
            path.unlink(missing_ok=True)
            raise InvalidInput(f"the file is larger than {limit:,} bytes")

    def discard(self, key: str) -> None:
        """Delete an upload once imported (its report stays until it is stale)."""
        self.path(key).unlink(missing_ok=True)

    def _checked(self, key: str) -> str:
        if not _KEY.match(key):
            raise NotFound("no such upload")
        return key

    def path(self, key: str) -> Path:
        return self._folder / f"{self._checked(key)}.csv"

    def report_path(self, key: str) -> Path:
        return self._folder / f"{self._checked(key)}.report.csv"

    def existing(self, key: str) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise NotFound("the upload is gone: please upload the file again")
        return path

    def existing_report(self, key: str) -> Path:
        path = self.report_path(key)
        if not path.is_file():
            raise NotFound("no report for this import")
        return path

    def preview(self, key: str) -> list[list[str]]:
        """The header and first rows, as the importer will read them."""
        try:
            with self.existing(key).open(encoding="utf-8-sig", newline="") as stream:
                return [row for row in islice(csv.reader(stream), PREVIEW_ROWS + 1)]
        except UnicodeDecodeError:
            raise InvalidInput("the file is not UTF-8 text") from None
        except csv.Error as exc:
            raise InvalidInput(f"the file is not CSV: {exc}") from None
