"""The CSV reader and the row planner on their own: no database, no HTTP."""

from __future__ import annotations

import pytest

from tidings.imports.csv import (
    InvalidCsv,
    TooManyRows,
    decode,
    parse_csv,
    read_header,
)
from tidings.imports.plan import PlannedContact, plan_rows


def test_decode_strips_the_bom_and_refuses_other_encodings() -> None:
    assert decode("\ufeffemail\n".encode()) == "email\n"
    with pytest.raises(InvalidCsv, match="UTF-8"):
        decode("email\nzoë@example.com\n".encode("latin-1"))
    with pytest.raises(InvalidCsv, match="NUL"):
        decode("email\n".encode("utf-16"))
    with pytest.raises(InvalidCsv, match="empty"):
        decode(b"  \r\n")


@pytest.mark.parametrize(
    "data",
    [
        b"email,name\rcr1@example.com,A\r",  # old Mac: CR alone everywhere
        b"email,name\r\na@example.com,A\rb@example.com,B\r\n",  # mixed, one CR alone
        b'email,note\n"a@example.com","x\r"\rb@example.com,y\n',  # after a quoted CR
        b'email,name,note\na2@example.com,5" screen,x\rb2@example.com,z,y\r',  # an inch mark
    ],
)
def test_lines_ending_with_cr_alone_are_refused(data: bytes) -> None:
    """DESIGN §5: CRLF or LF; anything else is a clear 400."""
    with pytest.raises(InvalidCsv, match="CR alone"):
        parse_csv(data)


def test_crlf_lf_and_a_cr_inside_a_quoted_cell_are_read() -> None:
    crlf = parse_csv(b"email,name\r\na@example.com,A\r\nb@example.com,B")
    lf = parse_csv(b"email,name\na@example.com,A\nb@example.com,B\n")
    expected = ["a@example.com", "b@example.com"]
    assert [r.email for r in crlf.rows] == [r.email for r in lf.rows] == expected
    quoted = parse_csv(b'email,note\r\na@example.com,"say ""hi""\rthere"\r\n')
    assert quoted.rows[0].metadata == {"note": 'say "hi"\rthere'}
    # A quote inside an unquoted cell is text; the CR in the next row's quoted cell is its own.
    inch = parse_csv(b'email,name,note\na1@example.com,ab"c,x\nb1@example.com,"l1\rl2",y\n')
    assert [r.name for r in inch.rows] == ['ab"c', "l1\rl2"]
    assert [r.metadata for r in inch.rows] == [{"note": "x"}, {"note": "y"}]


def test_header_positions_and_metadata_keys() -> None:
    header = read_header([" Name ", "EMAIL", "Company", "phone"])
    assert (header.email, header.phone, header.name) == (1, 3, 0)
    assert header.metadata == ((2, "Company"),)


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (["email", "Email "], "twice"),
        (["name", "company"], "'email' or 'phone'"),
        (["name", ""], "'email' or 'phone'"),
        # The contacts API's metadata limits: 100 keys of at most 100 characters.
        (["email", *(f"c{i}" for i in range(101))], "101 metadata columns"),
        (["email", "name", "x" * 101], "101 characters long"),
    ],
)
def test_bad_headers(cells: list[str], message: str) -> None:
    with pytest.raises(InvalidCsv, match=message):
        read_header(cells)


def test_an_unnamed_column_is_left_out_unless_a_row_fills_it() -> None:
    """A spreadsheet's trailing comma (``email,name,``) names no column: nothing to store."""
    parsed = parse_csv(b"email,name,\na@example.com,A,\nb@example.com,B\nc@example.com,C,oops\n")
    assert [(r.email, r.name, r.metadata) for r in parsed.rows] == [
        ("a@example.com", "A", {}),
        ("b@example.com", "B", {}),
    ]
    assert [(e.row, e.field) for e in parsed.errors] == [(4, None)]
    assert "column 3 has a value but no name" in parsed.errors[0].message


@pytest.mark.parametrize(
    "data",
    [
        b'email,note\na@example.com,"never closed\nb@example.com,x\n',
        b'email,note\na@example.com,"closed too early"x\n',
    ],
)
def test_a_malformed_quote_refuses_the_file(data: bytes) -> None:
    """Read leniently, an unclosed quote swallows every later row into one cell, silently."""
    with pytest.raises(InvalidCsv, match="row 2"):
        parse_csv(data)


def test_row_numbers_follow_the_spreadsheet() -> None:
    data = b'\n\nemail,note\n"a@example.com","two\nlines"\n\nbad\n'
    parsed = parse_csv(data)
    assert [row.row for row in parsed.rows] == [4]
    assert [(e.row, e.field) for e in parsed.errors] == [(6, "email")]
    assert (parsed.received, parsed.invalid) == (2, 1)


def test_short_rows_are_padded_and_long_rows_refused() -> None:
    parsed = parse_csv(b"email,name,city\na@example.com\nb@example.com,B,X,extra\n")
    assert [(r.email, r.name, r.metadata) for r in parsed.rows] == [("a@example.com", None, {})]
    assert [(e.row, e.field) for e in parsed.errors] == [(3, None)]
    assert "quote cells that contain commas" in parsed.errors[0].message


def test_empty_cells_past_the_last_column_are_nothing() -> None:
    """A spreadsheet's trailing comma on a row (``a@example.com,Ann,``) holds no value."""
    parsed = parse_csv(b"email,name\na@example.com,Ann,\nb@example.com,Bo, ,\n")
    assert [(r.email, r.name) for r in parsed.rows] == [
        ("a@example.com", "Ann"),
        ("b@example.com", "Bo"),
    ]
    assert parsed.errors == []


def test_a_header_at_the_metadata_limits_is_read() -> None:
    header = read_header(["email", "name", *(f"c{i}" for i in range(99)), "y" * 100])
    assert len(header.metadata) == 100


def test_row_with_bad_email_and_bad_phone_reports_both() -> None:
    parsed = parse_csv(b"email,phone\nnope,123\n")
    assert [(e.row, e.field) for e in parsed.errors] == [(2, "email"), (2, "phone")]
    assert parsed.invalid == 1


def test_long_names_are_row_errors() -> None:
    parsed = parse_csv(("email,name\na@example.com," + "x" * 201 + "\n").encode())
    assert [(e.row, e.field) for e in parsed.errors] == [(2, "name")]


def test_names_are_composed_as_the_contacts_api_stores_them() -> None:
    parsed = parse_csv("email,name\na@example.com, Jose\u0301 \n".encode())
    assert [row.name for row in parsed.rows] == ["José"]


def test_limit_counts_data_rows_only() -> None:
    ok = b"email\n" + b"".join(b"u%d@example.com\n" % i for i in range(10_000))
    assert parse_csv(ok).received == 10_000
    with pytest.raises(TooManyRows, match="10,000 rows"):
        parse_csv(ok + b"one-more@example.com\n")


def test_planner_never_gives_one_address_to_two_contacts() -> None:
    a = PlannedContact("con_a", "a@example.com", "+14155550100", None, existing=True)
    rows = parse_csv(
        b"email,phone,name\n"
        b",+14155550100,Phone match\n"  # updates a by phone
        b"new@example.com,+14155550100,Email change\n"  # new email for a (unowned)
        b"a@example.com,,Back\n"  # the old email still belongs to a
    ).rows
    contacts, conflicts = plan_rows(rows, [a])
    assert conflicts == []
    assert [(c.id, c.email, c.name) for c in contacts] == [("con_a", "a@example.com", "Back")]


def test_a_row_that_would_take_a_contact_past_100_metadata_keys_is_left_out() -> None:
    """The header's 60 columns are within the limit, but merged into a contact that has 60
    other keys they make 120: a contact the contacts API would refuse to take back."""
    held = {f"old{i}": "x" for i in range(60)}
    a = PlannedContact("con_a", "a@example.com", None, None, dict(held), existing=True)
    columns = [f"new{i}" for i in range(60)]
    rows = parse_csv(
        ("email," + ",".join(columns) + "\n" + "a@example.com" + ",y" * 60 + "\n").encode()
    ).rows
    contacts, conflicts = plan_rows(rows, [a])
    assert contacts == [] and [(e.row, e.field) for e in conflicts] == [(2, None)]
    assert "120 metadata keys" in conflicts[0].message
    assert a.metadata == held and not a.changed


def test_unreadable_csv_names_the_row() -> None:
    huge = b'email,note\na@example.com,"' + b"x" * 200_000 + b'"\n'
    with pytest.raises(InvalidCsv, match="row 2"):
        parse_csv(huge)


def test_a_file_of_blank_rows_has_no_header() -> None:
    with pytest.raises(InvalidCsv, match="no header"):
        parse_csv(b",,\n ,\n")
