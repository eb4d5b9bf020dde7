"""Reading a merchant's CSV and XLSX files row by row, with memory that stays flat however long
the file is.

CSV files come in UTF-8 (with or without the BOM Excel writes) or in the encodings Chinese
spreadsheets save (GBK, GB18030), found with charset-normalizer; the delimiter (comma,
semicolon, tab) is found from the first lines. XLSX files are read with openpyxl's read-only
mode (the first sheet, streamed), after a look at the archive's directory refuses one that
would unpack to far more than its size (a zip bomb).

Every row comes with its line number as the merchant sees it in a spreadsheet: the header is
line 1, and an empty row still takes its number.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import IO, Any

from django.utils.translation import gettext as _

from helpdesk.errors import BadInput

# How much of a CSV file is read to find its encoding and delimiter.
SNIFF_BYTES = 1024 * 1024
DELIMITERS = (",", ";", "\t")
# Besides UTF-8 and UTF-16: what Excel saves "CSV" in on Chinese and Western Windows.
LEGACY_ENCODINGS = ("gb18030", "big5", "cp1252")
DETECTION_BYTES = 64 * 1024
# An XLSX file is a zip archive: what it may unpack to, as a multiple of the upload limit.
# A sheet is streamed, but openpyxl keeps the shared-strings table in memory.
XLSX_EXPANSION = 20
XLSX_SHARED_STRINGS_EXPANSION = 4
# Cell values longer than this are cut: no column of ours holds more.
MAX_CELL_CHARS = 5000

Cell = str | int | float | bool | datetime | date | time | None


@dataclass(frozen=True)
class FileFacts:
    """How an uploaded file is read: its format and, for CSV, encoding and delimiter."""

    format: str  # "csv" | "xlsx"
    encoding: str = ""
    delimiter: str = ""


@dataclass(frozen=True)
class Row:
    line: int
    cells: tuple[Cell, ...]

    def is_empty(self) -> bool:
        return all(
            cell is None or (isinstance(cell, str) and not cell.strip()) for cell in self.cells
        )


def is_xlsx(head: bytes, name: str) -> bool:
    """Whether the file is an XLSX workbook (a zip archive), by its first bytes."""
    return head.startswith(b"PK\x03\x04") or (name.lower().endswith(".xlsx") and not head)


def examine(upload: IO[bytes], *, name: str, max_bytes: int) -> FileFacts:
    """The facts needed to read ``upload`` (a seekable binary file); BadInput for a file that
    is neither a readable CSV nor an XLSX workbook."""
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)
    if not head.strip():
        raise BadInput(_("The file is empty."), field="file")
    if head.startswith(b"PK\x03\x04"):
        _check_archive(upload, max_bytes=max_bytes)
        return FileFacts(format="xlsx")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise BadInput(
            _("Old Excel files (.xls) cannot be read: save the sheet as .xlsx or CSV."),
            field="file",
        )
    encoding = _encoding_of(head)
    text = head.decode(encoding, errors="ignore")
    return FileFacts(format="csv", encoding=encoding, delimiter=_delimiter_of(text))


def _encoding_of(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Excel's "Unicode text" (tab-separated)
    if head.count(b"\x00") > len(head) // 100:  # text has none, or a stray one
        raise BadInput(_("The file is neither CSV nor an Excel workbook."), field="file")
    try:
        # The sample may end inside a character: the incremental decoder waits for the rest.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    # Judged on the lines that are not plain ASCII (a GBK file's Chinese may be its header
    # alone), among the encodings the helpdesk's merchants' spreadsheets save in.
    sample = b"\n".join(line for line in head.split(b"\n") if max(line, default=0) > 127)
    sample = sample[:DETECTION_BYTES]
    found = from_bytes(sample, cp_isolation=list(LEGACY_ENCODINGS))
    readings = [match.encoding.lower().replace("-", "_") for match in found]
    if "gb18030" in readings:
        return "gb18030"  # Simplified Chinese first: short GBK text also reads as Big5
    if not readings:
        raise BadInput(
            _("The file's text encoding could not be recognised: save it as CSV in UTF-8."),
            field="file",
        )
    return readings[0]


def _delimiter_of(text: str) -> str:
    """The delimiter that splits the first lines into the same, largest number of columns."""
    lines = text.splitlines()[:20]
    if len(lines) > 1 and len(text) >= SNIFF_BYTES - 4:
        lines = lines[:-1]  # the sample may cut the last line short
    best, best_columns = ",", 1
    for delimiter in DELIMITERS:
        try:
            widths = [len(row) for row in csv.reader(lines, delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not widths:
            continue
        columns = widths[0]
        consistent = sum(1 for width in widths if width == columns) >= len(widths) * 0.8
        if consistent and columns > best_columns:
            best, best_columns = delimiter, columns
    return best


def _check_archive(upload: IO[bytes], *, max_bytes: int) -> None:
    try:
        with zipfile.ZipFile(upload) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise BadInput(_("The file is not a readable XLSX workbook."), field="file") from None
    finally:
        upload.seek(0)
    names = {member.filename for member in members}
    if "xl/workbook.xml" not in names:
        raise BadInput(_("The file is not a readable XLSX workbook."), field="file")
    unpacked = sum(member.file_size for member in members)
    shared = sum(m.file_size for m in members if m.filename == "xl/sharedStrings.xml")
    if unpacked > max_bytes * XLSX_EXPANSION or shared > max_bytes * XLSX_SHARED_STRINGS_EXPANSION:
        raise BadInput(
            _("The workbook unpacks to far more than its size: save the sheet as CSV."),
            field="file",
        )


@contextmanager
def opened_rows(source: IO[bytes], facts: FileFacts) -> Iterator[Iterator[Row]]:
    """The rows of ``source`` (header first), read as ``facts`` say; closed when the block ends.

    A CSV row is a tuple of strings; an XLSX row holds the cells' values (numbers, dates)."""
    if facts.format == "xlsx":
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(source, read_only=True, data_only=True)
        except Exception:  # openpyxl raises many kinds for a damaged archive
            raise BadInput(_("The file is not a readable XLSX workbook."), field="file") from None
        try:
            yield _xlsx_rows(workbook)
        finally:
            workbook.close()
        return
    text = io.TextIOWrapper(source, encoding=facts.encoding or "utf-8", newline="")
    try:
        yield _csv_rows(text, facts.delimiter or ",")
    finally:
        text.detach()


def _csv_rows(text: IO[str], delimiter: str) -> Iterator[Row]:
    reader = csv.reader(text, delimiter=delimiter)
    line = 0
    try:
        for record in reader:
            line += 1
            yield Row(line, tuple(_clean(cell) for cell in record))
    except UnicodeDecodeError:
        raise BadInput(
            _("Line %(line)s is not in the file's text encoding: save the file as UTF-8 CSV.")
            % {"line": line + 1},
            field="file",
        ) from None
    except csv.Error as exc:
        raise BadInput(
            _("Line %(line)s cannot be read as CSV: %(reason)s")
            % {"line": line + 1, "reason": exc},
            field="file",
        ) from None


def _xlsx_rows(workbook: Any) -> Iterator[Row]:
    if not workbook.worksheets:
        return
    # Read-only mode fills the rows a sheet does not store with empty cells, from row 1 on.
    for line, cells in enumerate(workbook.worksheets[0].iter_rows(), start=1):
        yield Row(line, tuple(_xlsx_value(cell.value) for cell in cells))


def _xlsx_value(value: Any) -> Cell:
    if value is None or isinstance(value, bool | int | float | datetime | date | time):
        return value
    return _clean(str(value))


def _clean(text: str) -> str:
    # PostgreSQL stores no NUL character in text; nothing a merchant means is lost with it.
    return text[:MAX_CELL_CHARS].replace("\x00", "")
