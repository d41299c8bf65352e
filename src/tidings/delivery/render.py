"""Rendering user templates: Liquid (python-liquid), sandboxed and bounded.

Templates are written by users and so untrusted. The environments here have no loader (``include``
and ``render`` find nothing: no file access, no recursion), and cap loop iterations, the size of
assigned values and the size of the output, so a hostile template ends with a clear error instead of
eating the worker. HTML bodies are autoescaped: contact data from a CSV cannot inject markup.

Templates, preview, the send call (to check subject variants) and the worker all render through
this module, with the variable precedence of DESIGN.md §4.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

from liquid import BoundTemplate, Environment
from liquid.exceptions import (
    FilterArgumentError,
    FilterError,
    FilterItemTypeError,
    FilterValueError,
    LiquidError,
    LiquidTypeError,
    ResourceLimitError,
    TemplateNotFoundError,
    UndefinedError,
)

from tidings.errors import Unprocessable

MAX_OUTPUT_CHARS = 512_000
MAX_SUBJECT_CHARS = 998  # RFC 5322's line limit; a subject longer than that is a template bug


class TemplateSyntaxInvalid(Unprocessable):
    code = "template_syntax_error"


class TemplateRenderFailed(Unprocessable):
    code = "template_render_error"


# What one filter may take or build. The environment's own limits count loop turns, assigned
# values and output, not what a filter makes in between: eight chained ``replace`` multiplied a
# value tenfold each (1.2 GB for one message), and ``reverse`` of a range literal built a list of
# twenty million.
MAX_VALUE_CHARS = MAX_OUTPUT_CHARS
MAX_VALUE_ITEMS = 100_000


class ValueTooLarge(ResourceLimitError):
    """A filter's argument or result beyond ``MAX_VALUE_CHARS`` / ``MAX_VALUE_ITEMS``."""

    def __init__(self, filter_name: str, what: str) -> None:
        super().__init__(f"{filter_name}: {what}", token=None)


_TOO_LONG = f"a text longer than {MAX_VALUE_CHARS:,} characters"
_TOO_MANY = f"more than {MAX_VALUE_ITEMS:,} items"


def _check_size(filter_name: str, value: object) -> None:
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise ValueTooLarge(filter_name, _TOO_LONG)
    elif isinstance(value, list | tuple | range | dict) and len(value) > MAX_VALUE_ITEMS:
        raise ValueTooLarge(filter_name, _TOO_MANY)


def _projected_size(filter_name: str, args: tuple[Any, ...]) -> int:
    """The length of what ``replace`` or ``join`` would build, found before building it: one
    such call can make a gigabyte from two values under the limit."""
    if filter_name == "replace" and len(args) >= 2:
        text, old = str(args[0]), str(args[1])
        new = str(args[2]) if len(args) > 2 else ""
        found = text.count(old) if old else len(text) + 1
        return len(text) + found * (len(new) - len(old))
    if filter_name == "join" and args and isinstance(args[0], list | tuple):
        separator = len(str(args[1])) if len(args) > 1 else 1
        total = 0
        for item in args[0]:
            total += len(str(item)) + separator
            if total > MAX_VALUE_CHARS:
                break
        return total
    return 0


def _bounded(filter_name: str, filter_: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(filter_)  # keeps the attributes python-liquid reads (``with_context``...)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in args:
            _check_size(filter_name, value)
        if _projected_size(filter_name, args) > MAX_VALUE_CHARS:
            raise ValueTooLarge(filter_name, _TOO_LONG)
        result = filter_(*args, **kwargs)
        _check_size(filter_name, result)
        return result

    return bounded


class _Sandbox(Environment):
    loop_iteration_limit = 10_000
    local_namespace_limit = 200_000
    output_stream_limit = MAX_OUTPUT_CHARS
    context_depth_limit = 10

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        for filter_name, filter_ in list(self.filters.items()):
            self.filters[filter_name] = _bounded(filter_name, filter_)


_TEXT = _Sandbox(autoescape=False)
_HTML = _Sandbox(autoescape=True)


@dataclass(frozen=True)
class ContactData:
    """What rendering needs of a contact, read as it is at render time."""

    name: str | None
    email: str | None
    phone: str | None
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class RenderedMessage:
    subject: str | None
    text: str | None
    html: str | None


def _line_of(exc: LiquidError, source: str) -> int:
    token = getattr(exc, "token", None)
    index = getattr(token, "start_index", -1) if token is not None else -1
    if index is None or index < 0:
        index = len(source)
    return source.count("\n", 0, index) + 1


def _problem(exc: Exception) -> str:
    if isinstance(exc, TemplateNotFoundError):
        # No loader: the message was only the name sought ("x").
        return (
            "include and render are not supported: a template cannot load another; "
            "put that template's content here"
        )
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, LiquidError):
        return first
    return f"a filter failed on this data ({type(exc).__name__}: {first})"


# What python-liquid's filters let through from Python on odd values, as a contact's CSV cell can
# hold: ``round``/``ceil``/``floor`` of "NaN" or "1e999" (ValueError, OverflowError), ``date`` of
# a huge number, ``sum``/``times`` of an invalid decimal (decimal.InvalidOperation).
FILTER_FAULTS = (ArithmeticError, ValueError, TypeError, LookupError)


# Render errors that a template's variables cause or cure: a filter given a missing or wrong value.
DATA_DEPENDENT = (
    FilterError,
    FilterArgumentError,
    FilterValueError,
    FilterItemTypeError,
    LiquidTypeError,
    UndefinedError,
)


@lru_cache(maxsize=512)
def _compile(source: str, html: bool) -> BoundTemplate:
    """Compiled once per (source, kind) and reused: a 10,000-message batch shares one template."""
    return (_HTML if html else _TEXT).from_string(source)


def check_syntax(source: str | None, field: str, *, html: bool = False) -> None:
    """Parses ``source`` and renders it once with no variables, so syntax errors, unknown filters
    and templates that blow a limit on their own are refused when saved (422, naming field, line
    and problem). What fails only for want of the variables (``{{ 100 | divided_by: tier }}``
    with no ``tier``) is valid Liquid and saves: the send's data decides, at preview and delivery."""
    if not source:
        return
    try:
        template = _compile(source, html)
    except LiquidError as exc:
        line = _line_of(exc, source)
        raise TemplateSyntaxInvalid(
            f"{field}: line {line}: {_problem(exc)}",
            details={"field": field, "line": line, "problem": _problem(exc)},
        ) from None
    try:
        template.render()
    except (*DATA_DEPENDENT, *FILTER_FAULTS):
        pass
    except LiquidError as exc:
        raise TemplateRenderFailed(
            f"{field}: {_problem(exc)}", details={"field": field, "problem": _problem(exc)}
        ) from None


def render(
    source: str | None, variables: Mapping[str, Any], *, html: bool = False, field: str = "template"
) -> str | None:
    if source is None:
        return None
    try:
        return _compile(source, html).render(**variables)
    except (LiquidError, *FILTER_FAULTS) as exc:
        raise TemplateRenderFailed(
            f"{field}: {_problem(exc)}", details={"field": field, "problem": _problem(exc)}
        ) from None


def render_subject(source: str | None, variables: Mapping[str, Any]) -> str | None:
    """A subject is one header line: CR/LF from any variable become spaces, never a new header."""
    subject = render(source, variables, field="subject")
    if subject is None:
        return None
    return " ".join(subject.replace("\r", " ").replace("\n", " ").split())[:MAX_SUBJECT_CHARS]


def template_variables(
    contact: ContactData, request_variables: Mapping[str, Any], unsubscribe_url: str | None = None
) -> dict[str, Any]:
    """``name``, ``email``, ``phone``, then contact metadata, then the send request's ``variables``
    (later wins); ``unsubscribe_url`` last, so no data can point the link elsewhere."""
    variables: dict[str, Any] = {
        "name": contact.name or "",
        "email": contact.email or "",
        "phone": contact.phone or "",
    }
    variables.update(contact.metadata)
    variables.update(request_variables)
    if unsubscribe_url is not None:
        variables["unsubscribe_url"] = unsubscribe_url
    return variables


def render_message(
    *, subject: str | None, text: str | None, html: str | None, variables: Mapping[str, Any]
) -> RenderedMessage:
    return RenderedMessage(
        subject=render_subject(subject, variables),
        text=render(text, variables, field="text"),
        html=render(html, variables, html=True, field="html"),
    )
