"""Spreadsheets through openpyxl (Google Sheets arrive from Takeout as XLSX).

Each sheet's first non-empty row is its header; every later row reads as
``Header: value; …`` so a passage keeps the meaning of its cells. Rows are grouped
``ROWS_PER_BLOCK`` at a time under the heading ``Sheet > rows 2-11``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.worksheet import Worksheet

from ..documents import ParsedDocument
from ..errors import ParseError
from ._common import TextBuilder

SUFFIXES = (".xlsx", ".xlsm")
ROWS_PER_BLOCK = 10


def parse(path: Path) -> ParsedDocument:
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ParseError(f"corrupt XLSX: {exc}") from exc
    builder = TextBuilder()
    try:
        for sheet in workbook.worksheets:
            _add_sheet(builder, sheet)
    finally:
        workbook.close()
    return ParsedDocument(builder.text, builder.blocks, path.stem)


def _add_sheet(builder: TextBuilder, sheet: Worksheet) -> None:
    header: list[str] | None = None
    pending: list[str] = []
    first_row = 0
    for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
        cells = ["" if v is None else str(v).strip() for v in row]
        if not any(cells):
            continue
        if header is None:
            header = [c or f"column {i + 1}" for i, c in enumerate(cells)]
            continue
        line = "; ".join(
            f"{header[i] if i < len(header) else f'column {i + 1}'}: {c}"
            for i, c in enumerate(cells)
            if c
        )
        if not pending:
            first_row = number
        pending.append(line)
        if len(pending) == ROWS_PER_BLOCK:
            builder.add(
                "\n".join(pending), (sheet.title, f"rows {first_row}-{number}"), kind="table"
            )
            pending = []
        last = number
    if pending:
        builder.add("\n".join(pending), (sheet.title, f"rows {first_row}-{last}"), kind="table")
