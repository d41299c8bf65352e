"""HTTP for CSV imports: the internal route and its public twin share one code path.

Both read the body the same way (``read_upload``, then ``Upload.csv``) and call
``service.import_csv``; they differ only in who may call them: an owner's dashboard session or the
internal token on ``/api/internal``, an API key with ``write:audiences`` and ``write:contacts`` on
``/v1`` and ``/api/v1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from tidings.auth import Principal
from tidings.deps import DbSession, has_body, internal_caller, media_type_of, require_scopes
from tidings.errors import (
    UnsupportedMediaType,
    ValidationFailed,
    error_responses,
    unsupported_encoding,
)
from tidings.imports import service
from tidings.imports.csv import InvalidCsv
from tidings.imports.schemas import CsvImportJson, ImportResponse

router = APIRouter(tags=["imports"])
internal_router = APIRouter(tags=["internal"])

CSV_MEDIA_TYPE = "text/csv"
JSON_MEDIA_TYPE = "application/json"
CSV_TYPES = (CSV_MEDIA_TYPE, JSON_MEDIA_TYPE)  # the two ways to send a file

_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            CSV_MEDIA_TYPE: {
                "schema": {"type": "string"},
                "example": "email,name,company\nalice@example.com,Alice,Acme\n",
            },
            JSON_MEDIA_TYPE: {"schema": CsvImportJson.model_json_schema()},
        },
    }
}
_RESPONSES = error_responses(400, 401, 403, 404, 409, 413, 415)


def _csv_from_json(body: bytes) -> bytes:
    try:
        payload = CsvImportJson.model_validate_json(body)
    except ValidationError as exc:
        raise ValidationFailed(
            'the JSON body must be an object {"csv": "<the CSV text>"}',
            details=[
                {"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()
            ],
        ) from None
    try:
        return payload.csv.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidCsv("the CSV text contains unpaired surrogates; send valid Unicode") from None


@dataclass(frozen=True)
class Upload:
    """The request's body as it came: read by ``read_upload``, judged by ``csv``."""

    media_type: str
    body: bytes
    refusal: UnsupportedMediaType | None = None  # a compressed body (``unsupported_encoding``)

    def csv(self) -> bytes:
        """The CSV bytes from either content type; anything else is a 415. The routes call it
        after authentication, so a caller without access gets its 401 or 403 first."""
        if self.refusal is not None:
            raise self.refusal
        if self.media_type not in CSV_TYPES:
            raise UnsupportedMediaType(
                "send the file as 'Content-Type: text/csv', "
                'or as \'Content-Type: application/json\' with {"csv": "<the CSV text>"}'
            )
        return self.body if self.media_type == CSV_MEDIA_TYPE else _csv_from_json(self.body)


async def read_upload(request: Request) -> Upload:
    """The body, read before the request's turn at the database (``deps.get_session``): the
    routes declare it before their session. Read after, a client that sent part of a file and
    stalled held that turn, and on SQLite every other write waited behind it. A body in another
    content type is not read at all (``Upload.csv`` refuses it)."""
    media_type = media_type_of(request.headers.get("content-type", ""))
    refusal = unsupported_encoding(request) if has_body(request) else None
    if refusal is not None or media_type not in CSV_TYPES:
        return Upload(media_type, b"", refusal)
    return Upload(media_type, await request.body())


@router.post(
    "/audiences/{audience_id}/import",
    response_model=ImportResponse,
    responses=_RESPONSES,
    openapi_extra=_REQUEST_BODY,
    summary="Import contacts from a CSV file into an audience",
)
def import_into_audience(
    audience_id: str,
    upload: Annotated[Upload, Depends(read_upload)],  # first: read before the database turn
    session: DbSession,
    principal: Annotated[Principal, Depends(require_scopes("write:audiences", "write:contacts"))],
) -> ImportResponse:
    """Header: ``email`` and/or ``phone``, optional ``name``; other columns become contact
    metadata (template variables). At most 10,000 rows. Bad rows are reported and left out."""
    data = upload.csv()
    return ImportResponse.from_result(service.import_csv(session, principal, audience_id, data))


@internal_router.post(
    "/audiences/{audience_id}/import-csv",
    response_model=ImportResponse,
    responses=_RESPONSES,
    openapi_extra=_REQUEST_BODY,
    summary="Import contacts from a CSV file (dashboard owners, internal token)",
)
def import_csv_internal(
    audience_id: str,
    upload: Annotated[Upload, Depends(read_upload)],  # first: read before the database turn
    session: DbSession,
    caller: Annotated[Principal | None, Depends(internal_caller)],
) -> ImportResponse:
    """Seed 002's internal import; the internal token acts in the audience's own organization."""
    data = upload.csv()
    actor = caller if caller is not None else service.internal_actor(session, audience_id)
    return ImportResponse.from_result(service.import_csv(session, actor, audience_id, data))
