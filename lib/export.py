"""The one CSV writer behind every export (customers, subscriptions, failed invoices, bulk portal links, audit log).

Every file is safe to open in a spreadsheet: a text cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return is prefixed with a single quote (OWASP's CSV-injection rule), so a customer named
`=HYPERLINK(...)` is shown as text, never run as a formula. Numbers (int, float, Decimal) are written as they
are, so a negative balance stays a number. Rows are streamed into a spooled file (memory stays flat) that
knows how many rows it holds (`CsvFile.rows`), for the audit entry every export leaves.

This module imports nothing from the rest of lib/ (lib/queries, lib/portal and lib/audit all use it).
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Select
from sqlmodel import Session

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SPOOL_BYTES = 8 * 1024 * 1024


def neutralise(value: Any) -> Any:
    """A cell as written: text that a spreadsheet would run as a formula gets a leading `'`; anything that is
    not text (numbers, None, dates) is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class CsvFile(tempfile.SpooledTemporaryFile):
    """A rewound CSV file (bytes) plus the number of data rows written (`rows`, the header not counted)."""

    rows: int = 0


class CsvWriter:
    """Write rows (mappings keyed by column, or sequences in column order) under one header, neutralised."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = list(columns)
        self.file = CsvFile(max_size=SPOOL_BYTES, mode="w+b")
        self._text = io.TextIOWrapper(self.file, encoding="utf-8", newline="", write_through=True)
        self._csv = csv.writer(self._text)
        self._csv.writerow([neutralise(c) for c in self.columns])

    def write(self, rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> None:
        for row in rows:
            cells = [row.get(c) for c in self.columns] if isinstance(row, Mapping) else list(row)
            self._csv.writerow([neutralise(c) for c in cells])
            self.file.rows += 1

    def close(self) -> CsvFile:
        """Finish the file and hand it back rewound, ready to read or to give to `st.download_button`."""
        self._text.flush()
        self._text.detach()
        self.file.seek(0)
        return self.file


def csv_file(columns: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> CsvFile:
    """Rows already in memory (a bulk-links run) as a CSV file."""
    writer = CsvWriter(columns)
    writer.write(rows)
    return writer.close()


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> str:
    """The same CSV as text (for a result kept in session state)."""
    with csv_file(columns, rows) as out:
        return out.read().decode("utf-8")


def stream_csv(
    session: Session, stmt: Select, columns: list[str], *, transform: Callable[[dict], dict] | None = None,
    batch: int = 2_000,
) -> CsvFile:
    """Run `stmt` once and write every row to a spooled CSV file batch by batch (memory stays flat).

    The file spills to disk past 8 MB and is rewound; `rows` says how many rows it holds.
    """
    writer = CsvWriter(columns)
    result = session.execute(stmt.execution_options(yield_per=batch)).mappings()
    for part in result.partitions():
        writer.write([transform(dict(r)) if transform else dict(r) for r in part])
    return writer.close()


def count_rows(data: bytes) -> int:
    """Data rows in a CSV made here (quoted newlines inside cells are not rows)."""
    return max(0, sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8")))) - 1)
