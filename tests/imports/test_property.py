"""Whatever the body, the import answers a clean 4xx or a 200, never a 5xx."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tests.factories import ApiClient
from tests.imports.helpers import all_contacts, post_csv, setup_import

_PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Cells that look like what people upload, and the characters that break naive CSV readers.
_cell = st.one_of(
    st.sampled_from(["", " ", "a@example.com", "A@Example.COM", "+14155550100", "x@y", "+1"]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12),
    st.text(alphabet='",\r\n\ufeff@+ ', max_size=6),
)
_header = st.lists(
    st.sampled_from(["email", "Email", " PHONE ", "name", "company", "", "email"]),
    min_size=1,
    max_size=5,
)
_csv_text = st.builds(
    lambda header, rows, eol: eol.join(",".join(cells) for cells in [header, *rows]),
    _header,
    st.lists(st.lists(_cell, max_size=6), max_size=8),
    st.sampled_from(["\n", "\r\n", "\r"]),
)


def _assert_clean(status: int, body: dict[str, object]) -> None:
    assert status in (200, 400, 413), (status, body)
    if status != 200:
        assert set(body) == {"error"}
    else:  # counted by row: each received row created, updated or was left out
        assert body["received"] == body["created"] + body["updated"] + body["invalid"], body


@_PROPERTY
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(client: ApiClient, db: Session, data: bytes) -> None:
    setup = setup_import(db)
    response = post_csv(client, setup, data)
    _assert_clean(response.status_code, response.json())


@_PROPERTY
@given(text=_csv_text, bom=st.booleans(), as_json=st.booleans())
def test_csv_like_text(client: ApiClient, db: Session, text: str, bom: bool, as_json: bool) -> None:
    setup = setup_import(db)
    if as_json:
        response = post_csv(
            client, setup, json.dumps({"csv": text}), content_type="application/json"
        )
    else:
        response = post_csv(client, setup, (("\ufeff" if bom else "") + text).encode())
    _assert_clean(response.status_code, response.json())


# Hostile shapes: NULs anywhere, very long cells, very many columns, quotes that never close.
_hostile_cell = st.one_of(
    _cell,
    st.builds(
        lambda c, n: c * n, st.sampled_from(["a", "\x00", '"', "é", "\r"]), st.integers(1, 70_000)
    ),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    extra_columns=st.integers(0, 2_000),
    cell=_hostile_cell,
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
)
def test_hostile_shapes(
    client: ApiClient, db: Session, extra_columns: int, cell: str, eol: str, bom: bool
) -> None:
    setup = setup_import(db)
    header = ["email", "name", *(f"c{i}" for i in range(extra_columns))]
    row = ["ok@example.com", cell, *([cell] * extra_columns)]
    text = ("\ufeff" if bom else "") + eol.join([",".join(header), ",".join(row)]) + eol
    response = post_csv(client, setup, text.encode())
    _assert_clean(response.status_code, response.json())


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    locals_=st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), max_size=15),
    names=st.lists(st.text(alphabet='ab ,"\r\n\u00e9', max_size=8), max_size=15),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
)
def test_well_formed_files_import_exactly(
    client: ApiClient, db: Session, locals_: list[str], names: list[str], eol: str, bom: bool
) -> None:
    """A correct file (quoted as RFC 4180 says) imports every distinct address exactly once; the
    same file with lines ending in CR alone is a 400 that writes nothing (DESIGN §5: CRLF or LF).
    CRs inside quoted names are the names' own text either way."""
    setup = setup_import(db)
    rows = [
        (f"{local}@example.com", names[i] if i < len(names) else "")
        for i, local in enumerate(locals_)
    ]

    def quoted(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    lines = ["email,name", *(f"{email},{quoted(name)}" for email, name in rows)]
    text = ("\ufeff" if bom else "") + eol.join(lines) + eol
    response = post_csv(client, setup, text.encode())
    if eol == "\r":
        assert response.status_code == 400, response.text
        assert "CR alone" in response.json()["error"]["message"]
        assert all_contacts(db, setup.org) == []
        return
    assert response.status_code == 200, response.text
    body = response.json()
    distinct = {email for email, _ in rows}
    assert body["received"] == len(rows) and body["invalid"] == 0
    assert body["created"] == len(distinct) and body["contactCount"] == len(distinct)
    assert body["updated"] == len(rows) - len(distinct)  # repeats update the earlier row's
    assert {c.email for c in all_contacts(db, setup.org)} == distinct
