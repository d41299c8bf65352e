"""The suppression service under a race: the unique constraint decides, and nobody sees a 500."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.factories import make_org
from tidings.auth import Principal
from tidings.models import Suppression
from tidings.suppressions import service


def test_concurrent_add_returns_the_row_that_won(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = make_org(db)
    actor = Principal(org_id=org.id, actor_type="cli", actor_id=None)
    first, created = service.add_suppression(db, actor, "a@example.com", "bounce")
    assert created
    real_find = service.find_suppression
    calls: list[str] = []

    def find_missing_once(*args: Any) -> Suppression | None:
        # The second request's look-up ran before the first request's insert was visible.
        calls.append("find")
        return None if len(calls) == 1 else real_find(*args)

    monkeypatch.setattr(service, "find_suppression", find_missing_once)
    row, created = service.add_suppression(db, actor, "a@example.com", "manual")
    assert (row.id, created) == (first.id, False)
    db.commit()
    assert db.scalar(select(func.count()).select_from(Suppression)) == 1
