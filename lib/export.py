"""The one CSV writer behind every export (customers, subscriptions, failed invoices, bulk portal links, audit log).

Every file is safe to open in a spreadsheet: a text cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return is prefixed with a single quote (OWASP's CSV-injection rule), so a customer named
`=HYPERLINK(...)` is shown as text, never run as a formula. Cells carry raw machine values (`raw`): numbers
as they are (a Decimal amount keeps its currency's decimals, a negative balance stays a number), dates in
ISO 8601 (UTC, `2026-11-30T09:15:00Z`), booleans as true/false, missing values (None, NaN) empty. The header
row may use the page's column labels (`headers`) while rows stay keyed by field. Rows are streamed into a
spooled file (memory stays flat) that knows how many rows it holds (`CsvFile.rows`), for the audit entry
every export leaves.

This module imports nothing from the rest of lib/ (lib/queries, lib/portal and lib/audit all use it).
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
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


def raw(value: Any) -> Any:
    """A value as a machine reads it: True/False → 'true'/'false', a datetime → ISO 8601 in UTC with a Z (a
    naive one is taken as UTC, as the cache stores it), a date → 'YYYY-MM-DD', NaN → None (an empty cell);
    anything else unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value
        return utc.replace(tzinfo=None).isoformat() + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def cell(value: Any) -> Any:
    """A cell as written: its raw value, neutralised."""
    return neutralise(raw(value))


class CsvFile(tempfile.SpooledTemporaryFile):
    """A rewound CSV file (bytes) plus the number of data rows written (`rows`, the header not counted)."""

    rows: int = 0


class CsvWriter:
    """Write rows (mappings keyed by column, or sequences in column order) under one header, as raw values,
    neutralised. `headers` maps a column to the label its header cell shows (default: the column itself)."""

    def __init__(self, columns: Sequence[str], headers: Mapping[str, str] | None = None) -> None:
        self.columns = list(columns)
        self.file = CsvFile(max_size=SPOOL_BYTES, mode="w+b")
        self._text = io.TextIOWrapper(self.file, encoding="utf-8", newline="", write_through=True)
        self._csv = csv.writer(self._text)
        self._csv.writerow([neutralise((headers or {}).get(c, c)) for c in self.columns])

    def write(self, rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> None:
        for row in rows:
            cells = [row.get(c) for c in self.columns] if isinstance(row, Mapping) else list(row)
            self._csv.writerow([cell(c) for c in cells])
            self.file.rows += 1

    def close(self) -> CsvFile:
        """Finish the file and hand it back rewound, ready to read or to give to `st.download_button`."""
        self._text.flush()
        self._text.detach()
        self.file.seek(0)
        return self.file


def csv_file(columns: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]],
             headers: Mapping[str, str] | None = None) -> CsvFile:
    """Rows already in memory (a bulk-links run) as a CSV file."""
    writer = CsvWriter(columns, headers)
    writer.write(rows)
    return writer.close()


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]],
             headers: Mapping[str, str] | None = None) -> str:
    """The same CSV as text (for a result kept in session state)."""
    with csv_file(columns, rows, headers) as out:
        return out.read().decode("utf-8")


def stream_csv(
    session: Session, stmt: Select, columns: Sequence[str], *, transform: Callable[[dict], dict] | None = None,
    batch: int = 2_000, headers: Mapping[str, str] | None = None,
) -> CsvFile:
    """Run `stmt` once and write every row to a spooled CSV file batch by batch (memory stays flat).

    The file spills to disk past 8 MB and is rewound; `rows` says how many rows it holds.
    """
    writer = CsvWriter(columns, headers)
    result = session.execute(stmt.execution_options(yield_per=batch)).mappings()
    for part in result.partitions():
        writer.write([transform(dict(r)) if transform else dict(r) for r in part])
    return writer.close()


def count_rows(data: bytes) -> int:
    """Data rows in a CSV made here (quoted newlines inside cells are not rows)."""
    return max(0, sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8")))) - 1)
