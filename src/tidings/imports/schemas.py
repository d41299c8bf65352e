"""The import's request (JSON variant) and response, camelCase like every seed-000 object."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tidings.imports.service import ImportResult


class CsvImportJson(BaseModel):
    """``application/json`` body: the same CSV text as the ``text/csv`` variant, in a string."""

    csv: str = Field(
        description="The CSV file's text: a header row, then one row per contact.",
        # Documented only: an empty text gets the same "the CSV is empty" as an empty text/csv.
        json_schema_extra={"minLength": 1},
    )


class RowErrorOut(BaseModel):
    row: int = Field(description="Row number as a spreadsheet shows it: the header is row 1.")
    field: str | None = Field(description="email, phone or name; null when the whole row is bad.")
    message: str


class ImportResponse(BaseModel):
    received: int = Field(description="Non-blank data rows in the file.")
    created: int = Field(description="New contacts.")
    updated: int = Field(
        description="Good rows that matched a contact (by email, then phone): one that existed, "
        "or one an earlier row of the file created. received = created + updated + invalid."
    )
    added: int = Field(description="Contacts newly added to the audience.")
    invalid: int = Field(description="Rows left out; see errors.")
    errors: list[RowErrorOut] = Field(description="The first 100 row errors.")
    contactCount: int = Field(description="The audience's member count after the import.")

    @classmethod
    def from_result(cls, result: ImportResult) -> ImportResponse:
        return cls(
            received=result.received,
            created=result.created,
            updated=result.updated,
            added=result.added,
            invalid=result.invalid,
            errors=[
                RowErrorOut(row=e.row, field=e.field, message=e.message) for e in result.errors
            ],
            contactCount=result.contact_count,
        )
