"""The sandboxed Liquid renderer: precedence, escaping, limits, clear errors."""

from __future__ import annotations

import pytest

from tidings.delivery.render import (
    ContactData,
    TemplateRenderFailed,
    TemplateSyntaxInvalid,
    check_syntax,
    render,
    render_message,
    render_subject,
    template_variables,
)

ALICE = ContactData(
    name="Alice",
    email="alice@example.com",
    phone=None,
    metadata={"company": "Acme", "name": "Alice from metadata"},
)


def test_precedence_request_over_metadata_over_builtins() -> None:
    variables = template_variables(ALICE, {"company": "Request Co"}, "https://x/u/t")
    assert variables["name"] == "Alice from metadata"
    assert variables["company"] == "Request Co"
    assert variables["email"] == "alice@example.com"
    assert variables["phone"] == ""
    assert variables["unsubscribe_url"] == "https://x/u/t"


def test_unsubscribe_url_cannot_be_overridden() -> None:
    variables = template_variables(ALICE, {"unsubscribe_url": "https://evil"}, "https://x/u/t")
    assert variables["unsubscribe_url"] == "https://x/u/t"


def test_syntax_error_names_field_and_line() -> None:
    with pytest.raises(TemplateSyntaxInvalid) as info:
        check_syntax("Hello\nthere {{ name }", "html")
    assert info.value.status_code == 422
    assert info.value.details["line"] == 2
    assert "html: line 2" in info.value.message


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in (1..100000000) %}x{% endfor %}",
        "{% for i in (1..5000) %}{% for j in (1..5000) %}x{% endfor %}{% endfor %}",
        "{% assign s = 'xxxxxxxxxx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}",
        "{% for i in (1..9000) %}" + "y" * 100 + "{% endfor %}",
    ],
)
def test_hostile_templates_hit_a_limit(source: str) -> None:
    with pytest.raises(TemplateRenderFailed):
        check_syntax(source, "text")


@pytest.mark.parametrize("source", ['{% include "secrets" %}', '{% render "/etc/passwd" %}'])
def test_no_file_access(source: str) -> None:
    with pytest.raises(TemplateRenderFailed):
        render(source, {})


def test_html_is_escaped_text_is_not() -> None:
    variables = {"name": "<b>x</b>"}
    rendered = render_message(
        subject="Hi {{ name }}",
        text="Hi {{ name }}",
        html="<p>Hi {{ name }}</p>",
        variables=variables,
    )
    assert rendered.html == "<p>Hi &lt;b&gt;x&lt;/b&gt;</p>"
    assert rendered.text == "Hi <b>x</b>"


def test_subject_cannot_carry_a_header_break() -> None:
    assert render_subject("Hi {{ name }}", {"name": "x\r\nBcc: victim@example.com"}) == (
        "Hi x Bcc: victim@example.com"
    )


def test_unsubscribe_token_round_trip_and_tamper() -> None:
    from tidings.delivery.tokens import read_unsubscribe_token, unsubscribe_token

    token = unsubscribe_token("org_1", "alice@example.com")
    target = read_unsubscribe_token(token)
    assert target is not None and target.address == "alice@example.com"
    assert read_unsubscribe_token(token[:-2] + ("A" if token[-1] != "A" else "B") * 2) is None
    assert read_unsubscribe_token("garbage") is None


@pytest.mark.parametrize(
    "address",
    [
        "alice@example.com",
        "+14155550100",
        "zoë.ünïcode@exämple.com",
        "a" * 300 + "@example.com",  # long and repetitive: the compressed form is shorter
    ],
)
def test_unsubscribe_token_is_exactly_what_itsdangerous_writes(address: str) -> None:
    """The worker's own token writer must stay byte for byte the serializer's, which reads it."""
    from tidings.delivery.tokens import _serializer, unsubscribe_token

    token = unsubscribe_token("org_1", address)
    assert token == _serializer().dumps(["org_1", address])
    assert token.startswith(".") == (len(address) > 100)
