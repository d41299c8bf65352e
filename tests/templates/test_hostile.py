"""Hostile Liquid through HTTP: loops, nested loops, output blow-up, string doubling and attempts
at recursion through ``render``/``include`` end with a clear 422 within bounded time and memory,
at save and at preview. Variables carrying CR/LF never reach a header line."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.campaigns.factories import make_template
from tests.factories import ApiClient, auth, make_key, make_org

SECONDS = 3.0
PEAK_BYTES = 64 * 1024 * 1024

HOSTILE = {
    "huge loop": "{% for i in (1..100000000) %}x{% endfor %}",
    "nested loops": "{% for a in (1..100000) %}{% for b in (1..100000) %}{% for c in (1..100000) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "output blow-up": "{% for a in (1..9000) %}" + "x" * 200 + "{% endfor %}",
    "string doubling": '{% assign s = "ab" %}{% for i in (1..64) %}{% assign s = s | append: s %}'
    "{% endfor %}{{ s }}",
    "capture doubling": '{% assign s = "ab" %}{% for i in (1..64) %}{% capture s %}{{ s }}{{ s }}'
    "{% endcapture %}{% endfor %}{{ s | size }}",
    "render itself": "{% render 'self' %}",
    "include itself": "{% include 'self' %}",
    "deep nesting": "{% if true %}" * 2000 + "x" + "{% endif %}" * 2000,
    "cycle/tablerow": "{% tablerow i in (1..100000000) %}{{ i }}{% endtablerow %}",
    # Each step ten times the last, under every limit but the filters' own: 1.2 GB at eight.
    "replace chain": '{{ "aaaaaaaaaa"' + ' | replace: "a", "aaaaaaaaaa"' * 10 + " | size }}",
    "range materialised": "{{ (1..20000000) | reverse | size }}",
    "long join": '{{ (1..90000) | join: "xxxxxxxxxx" | size }}',
}


def _bounded(call: Any) -> Any:
    """The call ends within ``SECONDS`` of this process's CPU (the app runs in it), not of the
    wall clock, which other jobs on a busy machine stretched past the bound (3.5 s)."""
    tracemalloc.start()
    started = time.process_time()
    try:
        response = call()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    elapsed = time.process_time() - started
    assert elapsed < SECONDS, f"took {elapsed:.1f}s of CPU"
    assert peak < PEAK_BYTES, f"peak {peak / 1e6:.0f} MB"
    return response


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_template_is_refused_at_save(client: ApiClient, db: Session, name: str) -> None:
    headers = auth(make_key(db, make_org(db)))
    body = {"name": name, "channel": "sms", "text": HOSTILE[name]}
    response = _bounded(lambda: client.post("/v1/templates", headers=headers, json=body))
    assert response.status_code in (400, 422), (name, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["code"].startswith(("template_", "invalid_", "validation")), error
    assert error["message"]


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in (1..n) %}{{ big }}{% endfor %}",
        "{{ big | append: big | append: big | append: big | append: big }}",
        "{% for w in (1..n) %}{% for c in big | split: '' %}{{ c }}{% endfor %}{% endfor %}",
        "{{ v" + ' | replace: "a", v' * 8 + " | size }}",
        "{{ big | replace: 'x', big | size }}",
    ],
)
def test_hostile_variables_end_cleanly_at_preview(
    client: ApiClient, db: Session, source: str
) -> None:
    """A template harmless on its own (so it saves) that variables turn hostile at render time."""
    org = make_org(db)
    headers = auth(make_key(db, org))
    template = make_template(db, org, slug="innocent", channel="sms", text=source)
    variables = {"n": 100_000_000, "big": "x" * 200_000, "v": "aaaaaaaaaa"}
    response = _bounded(
        lambda: client.post(
            f"/v1/templates/{template.id}/preview", headers=headers, json={"variables": variables}
        )
    )
    assert response.status_code == 422, response.text[:300]
    assert response.json()["error"]["code"] == "template_render_error"


def test_crlf_in_variables_never_reaches_the_subject_line(client: ApiClient, db: Session) -> None:
    org = make_org(db)
    headers = auth(make_key(db, org))
    template = make_template(db, org, subject="Hi {{ name }} {{ extra }}")
    injected = {"name": "Eve\r\nBcc: victim@example.com", "extra": "\rX-Evil: 1\n\n"}
    response = client.post(
        f"/v1/templates/{template.id}/preview", headers=headers, json={"variables": injected}
    )
    assert response.status_code == 200, response.text
    subject = response.json()["subject"]
    assert "\r" not in subject and "\n" not in subject
    assert subject.startswith("Hi Eve Bcc: victim@example.com")


@pytest.mark.parametrize("sender", ["a@example.com\r\nBcc: x@example.com", "A\nB <a@example.com>"])
def test_crlf_in_the_sender_is_refused(client: ApiClient, db: Session, sender: str) -> None:
    from tests.factories import make_audience, make_contact

    org = make_org(db)
    headers = auth(make_key(db, org))
    template = make_template(db, org)
    audience = make_audience(db, org, members=[make_contact(db, org, email="a@example.com")])
    response = client.post(
        f"/v1/audiences/{audience.id}/send",
        headers=headers,
        json={"from": sender, "template": template.slug},
    )
    assert response.status_code in (400, 422), response.text
