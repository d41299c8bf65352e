"""Reading an uploaded CSV into validated contact rows, without touching the database.

Whole-file problems (not UTF-8, NUL bytes, a bad header, too many rows) refuse the upload; problems
in one row are reported with the row number a spreadsheet shows (header = row 1) and the row is
left out, so one typo never blocks the other 9,999 rows.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from tidings.contacts.limits import MAX_METADATA_KEY_LENGTH, MAX_METADATA_KEYS
from tidings.contacts.normalize import (
    InvalidAddress,
    InvalidName,
    normalize_email,
    normalize_name,
    normalize_phone,
)
from tidings.errors import BadRequest, PayloadTooLarge

MAX_ROWS = 10_000
ADDRESS_COLUMNS = ("email", "phone")


# The generic codes (bad_request, payload_too_large) on purpose: clients branch on the status and
# the envelope's code family; the message says what is wrong with this file.
class InvalidCsv(BadRequest):
    pass


class TooManyRows(PayloadTooLarge):
    message = f"max {MAX_ROWS:,} rows per upload; split larger files"


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str | None  # None when the whole row is at fault (e.g. too many cells)
    message: str


@dataclass(slots=True)
class ContactRow:
    """One good data row: normalised addresses, and only the cells that were not empty."""

    row: int
    email: str | None
    phone: str | None
    name: str | None
    metadata: dict[str, str]


@dataclass(slots=True)
class ParsedCsv:
    rows: list[ContactRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    received: int = 0  # non-blank data rows, good or bad
    invalid: int = 0  # rows left out


@dataclass(frozen=True, slots=True)
class Header:
    """Where each known column sits; every other column is a metadata key, named as written."""

    width: int
    email: int | None
    phone: int | None
    name: int | None
    metadata: tuple[tuple[int, str], ...]
    unnamed: tuple[int, ...] = ()  # columns without a name: each row must leave them empty


def decode(data: bytes) -> str:
    """UTF-8 text with or without a BOM. Anything else is refused whole: guessing an encoding
    would silently store mangled names."""
    if b"\x00" in data:
        raise InvalidCsv(
            "the CSV contains NUL bytes (is it UTF-16 or a binary file?); save it as UTF-8 text"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidCsv(
            f"the CSV is not valid UTF-8 (bad byte at offset {exc.start}); "
            "save it as 'CSV UTF-8' and upload it again"
        ) from None
    if not text.strip():
        raise InvalidCsv("the CSV is empty; send a header row (email and/or phone) and data rows")
    if "\r" in text and _ends_a_line_with_cr_alone(text):
        raise InvalidCsv(
            "lines must end with CRLF or LF; this file ends them with CR alone (an old Mac "
            "format): save it as 'CSV UTF-8' and upload it again"
        )
    return text


_BARE_CR = re.compile(r"\r(?!\n)")
# A field as the csv module reads it: quoted only when it starts with a quote (an inch mark in
# ``5" screen`` is text), its quotes doubled inside; then whatever the reader keeps up to the
# next separator.
_FIELD = re.compile(r'(?:"(?:[^"]|"")*")?[^,\r\n]*')


def _ends_a_line_with_cr_alone(text: str) -> bool:
    """A CR without its LF that ends a record (DESIGN §5: CRLF or LF, anything else is a 400).
    Inside a quoted field it is the cell's own text and stays. Walks the file field by field,
    as the reader does, and only when it holds a bare CR at all (an old Mac file, or a cell's
    own): counting quotes instead was fooled by a quote inside an unquoted cell."""
    if _BARE_CR.search(text) is None:
        return False
    position, end = 0, len(text)
    while position < end:
        position = _FIELD.match(text, position).end()  # type: ignore[union-attr]
        if position >= end:
            return False
        separator = text[position]
        if separator == "\r" and not text.startswith("\r\n", position):
            return True
        position += 2 if text.startswith("\r\n", position) else 1
    return False


def read_header(cells: list[str]) -> Header:
    """Column names are matched case-insensitively after trimming, so `` EMAIL `` is ``email``.

    A column without a name (a spreadsheet's trailing ``,`` after the last one) holds nothing to
    store: it is left out, and only a row that puts a value in it is refused."""
    seen: dict[str, int] = {}
    for position, raw in enumerate(cells, start=1):
        key = raw.strip().lower()
        if not key:
            continue
        if key in seen:
            raise InvalidCsv(
                f"the header names {raw.strip()!r} twice (columns {seen[key]} and {position}); "
                "column names must be unique"
            )
        seen[key] = position
    if not any(column in seen for column in ADDRESS_COLUMNS):
        raise InvalidCsv(
            "the header needs an 'email' or 'phone' column (or both); "
            f"found: {', '.join(c.strip() for c in cells[:10])}{', ...' if len(cells) > 10 else ''}"
        )
    known = {column: seen[column] - 1 for column in (*ADDRESS_COLUMNS, "name") if column in seen}
    metadata = tuple(
        (index, raw.strip())
        for index, raw in enumerate(cells)
        if raw.strip() and raw.strip().lower() not in ("email", "phone", "name")
    )
    _check_metadata_columns([key for _, key in metadata])
    return Header(
        width=len(cells),
        email=known.get("email"),
        phone=known.get("phone"),
        name=known.get("name"),
        metadata=metadata,
        unnamed=tuple(index for index, raw in enumerate(cells) if not raw.strip()),
    )


def _check_metadata_columns(keys: list[str]) -> None:
    """The contacts API's limits on metadata (``contacts.schemas``): a contact imported with
    more, or longer, keys could not be sent back through ``PATCH /v1/contacts/:id``."""
    if len(keys) > MAX_METADATA_KEYS:
        raise InvalidCsv(
            f"the header has {len(keys)} metadata columns (besides email, phone and name); "
            f"at most {MAX_METADATA_KEYS} are allowed"
        )
    long = next((key for key in keys if len(key) > MAX_METADATA_KEY_LENGTH), None)
    if long is not None:
        raise InvalidCsv(
            f"the column name {long[:40]!r}... is {len(long)} characters long; "
            f"at most {MAX_METADATA_KEY_LENGTH} are allowed"
        )


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Records numbered as a spreadsheet numbers them: a quoted field spanning lines is one row,
    a blank line is a row of its own (then skipped by the caller).

    Strict: a quoted cell that is never closed would otherwise swallow every line after it into
    one cell, silently, and ``"ab"c`` would become ``abc``."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    number = 0
    try:
        for cells in reader:
            number += 1
            yield number, cells
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise InvalidCsv(
                f"row {number + 1} opens a quoted cell that is never closed, so the rest of the "
                'file would be one cell; close the quote, or double a quote inside a cell ("")'
            ) from None
        raise InvalidCsv(f"row {number + 1} cannot be read as CSV: {exc}") from None


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index].strip() if index is not None and index < len(cells) else ""


def _address(raw: str, column: str, row: int, errors: list[RowError]) -> str | None:
    if not raw:
        return None
    try:
        return normalize_email(raw) if column == "email" else normalize_phone(raw)
    except InvalidAddress as exc:
        errors.append(RowError(row, column, str(exc)))
        return None


def validate_row(number: int, cells: list[str], header: Header) -> ContactRow | list[RowError]:
    """A good row, or every problem found in it (a row can have a bad email and a bad phone)."""
    # Empty cells past the header's last column (a spreadsheet's trailing ",") hold nothing.
    if any(cell.strip() for cell in cells[header.width :]):
        return [
            RowError(
                number,
                None,
                f"row has a value past the header's {header.width} columns; "
                "quote cells that contain commas",
            )
        ]
    filled = [index + 1 for index in header.unnamed if _cell(cells, index)]
    if filled:
        return [
            RowError(
                number,
                None,
                f"column {filled[0]} has a value but no name in the header; "
                "name the column or leave it empty",
            )
        ]
    raw_email, raw_phone = _cell(cells, header.email), _cell(cells, header.phone)
    if not raw_email and not raw_phone:
        column = "email" if header.email is not None else "phone"
        return [RowError(number, column, "row has no email or phone; each row needs one")]
    errors: list[RowError] = []
    email = _address(raw_email, "email", number, errors)
    phone = _address(raw_phone, "phone", number, errors)
    try:
        name = normalize_name(_cell(cells, header.name))
    except InvalidName as exc:
        errors.append(RowError(number, "name", str(exc)))
    if errors:
        return errors
    metadata = {key: value for index, key in header.metadata if (value := _cell(cells, index))}
    return ContactRow(number, email, phone, name, metadata)


def parse_csv(data: bytes) -> ParsedCsv:
    """The whole upload, validated. Refuses more than ``MAX_ROWS`` data rows as soon as it sees
    one more, before anything is written."""
    header: Header | None = None
    parsed = ParsedCsv()
    for number, cells in _records(decode(data)):
        if all(not cell.strip() for cell in cells):
            continue  # blank lines (or rows of empty cells) are skipped silently
        if header is None:
            header = read_header(cells)
            continue
        parsed.received += 1
        if parsed.received > MAX_ROWS:
            raise TooManyRows()
        result = validate_row(number, cells, header)
        if isinstance(result, ContactRow):
            parsed.rows.append(result)
        else:
            parsed.invalid += 1
            parsed.errors.extend(result)
    if header is None:
        raise InvalidCsv("the CSV has no header row; the first row must name the columns")
    return parsed
