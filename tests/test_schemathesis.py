"""Fuzzing the API with its own OpenAPI document (schemathesis, in-process ASGI): for every
operation, generated requests — valid and invalid — never get a 5xx, and every answer matches the
document (status code declared, content type, body schema).

Bounded for ``make test``: ``MAX_EXAMPLES`` per operation with a valid all-scopes key, against a
small organization whose ids the generator may hit by chance. ``TIDINGS_FUZZ_EXAMPLES`` raises it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from tests.campaigns.factories import make_template
from tests.factories import make_audience, make_contact, make_key, make_org

MAX_EXAMPLES = int(os.environ.get("TIDINGS_FUZZ_EXAMPLES", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def seeded(db: Session) -> dict[str, str]:
    """A key and real ids, so that part of the generated requests reach past the lookups."""
    org = make_org(db)
    alice = make_contact(db, org, email="alice@example.com", name="Alice")
    return {
        "key": make_key(db, org),
        "audience_id": make_audience(db, org, "Fuzzed", members=[alice]).id,
        "contact_id": alice.id,
        "template_id": make_template(db, org).id,
    }


def _operation_labels() -> list[str]:
    os.environ.setdefault("TIDINGS_ENVIRONMENT", "test")
    from tidings.app import create_app

    paths = create_app().openapi()["paths"]
    return [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]


@pytest.mark.parametrize("label", _operation_labels())
def test_api_honours_its_schema(app: Any, seeded: dict[str, str], label: str) -> None:
    operation = schemathesis.openapi.from_asgi("/openapi.json", app).find_operation_by_label(label)
    assert operation is not None
    headers = {"Authorization": f"Bearer {seeded['key']}"}
    real_ids = {k: v for k, v in seeded.items() if "{" + k + "}" in label}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real_ids),
    )

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    fuzz()
