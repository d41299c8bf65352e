"""Request size limits on every body: an oversized body is a 413 with the error envelope, refused
before it is read whole — at once when ``Content-Length`` says so, and after at most one chunk
past the limit when the body streams without a length (chunked transfer encoding). A route that
never reads its body answers as usual, having read nothing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import socket
from typing import Any

from tests.factories import ApiClient, auth, make_key, make_org
from tidings.config import get_settings
from tidings.middleware import body_limit_for

CHUNK = 64 * 1024
EXTRA_PATHS = [
    ("POST", "/login"),
    ("POST", "/logout"),
    ("POST", "/u/some-token"),
    ("POST", "/overview/audiences"),
    ("POST", "/overview/audiences/aud_x/import"),
    ("POST", "/overview/audiences/aud_x/send"),
    ("POST", "/overview/audiences/aud_x/preview"),
    ("POST", "/overview/audiences/aud_x/rename"),
]


def _body_operations(app: Any) -> list[tuple[str, str]]:
    found = []
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            if method in ("post", "patch", "put", "delete"):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "x_1", path)))
    api_mirror = [(m, "/api" + p) for m, p in found if p.startswith("/v1/")]
    return found + api_mirror + EXTRA_PATHS


def _stream(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[str, Any], int]:
    """Calls the ASGI app with an endless body and no Content-Length; returns the status, the JSON
    answer and how many bytes the app pulled before answering."""
    pulled = 0
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += CHUNK
        assert pulled < 200 * 1024 * 1024, "the app kept reading an endless body"
        return {"type": "http.request", "body": b"a" * CHUNK, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    # A thread of its own: the browser tests leave an event loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    is_json = body.startswith(b"{")
    return start["status"], json.loads(body) if is_json else {"html": body[:80]}, pulled


def test_every_body_is_limited_when_it_streams_without_a_length(
    client: ApiClient, db: Any, app: Any
) -> None:
    key = make_key(db, make_org(db))
    headers = [
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"idempotency-key", b"stream-1"),
    ]
    failures = []
    for method, path in _body_operations(app):
        limit = body_limit_for(path)
        status, body, pulled = _stream(app, method, path, headers)
        if pulled > limit + CHUNK:
            failures.append(f"{method} {path}: read {pulled} bytes for a {limit}-byte limit")
        elif pulled > limit and (status != 413 or body["error"]["code"] != "payload_too_large"):
            failures.append(f"{method} {path}: read past the limit, then answered {status} {body}")
        elif status >= 500:
            failures.append(f"{method} {path}: {status}")
    assert not failures, "\n".join(failures)


def test_a_declared_oversized_length_is_refused_unread(
    client: ApiClient, db: Any, app: Any
) -> None:
    headers = auth(make_key(db, make_org(db)))
    for method, path in _body_operations(app):
        size = body_limit_for(path) + 1
        response = client.request(
            method,
            path,
            headers={**headers, "Content-Type": "application/json"},
            content=b"a" * size,
        )
        assert response.status_code == 413, (method, path, response.status_code)
        assert response.json()["error"]["code"] == "payload_too_large"
        assert response.content.startswith(b'{"error":{"code":')  # compact, as every envelope


def test_a_live_server_refuses_an_endless_chunked_upload(live_server: str, db: Any) -> None:
    """Over a real socket: the server answers 413 while the client is still sending."""
    key = make_key(db, make_org(db))
    host, port = live_server.removeprefix("http://").split(":")
    limit = get_settings().max_body_bytes
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/audiences HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            + f"Authorization: Bearer {key}\r\n".encode()
            + b"Content-Type: application/json\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (CHUNK, b"a" * CHUNK)
        sent = 0
        try:
            while sent < 20 * limit:
                sock.sendall(chunk)
                sent += CHUNK
        except OSError:
            pass  # the server closed the connection: it stopped reading
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 20 * limit or b"payload_too_large" in answer


def test_only_the_import_routes_take_an_import_sized_body(client: ApiClient) -> None:
    """A path that merely ends in ``/import`` (an id in a route) has the ordinary limit: it took
    16 MB, parsed as JSON before the caller was checked (~390 MB of server memory a request)."""
    settings = get_settings()
    for path in (
        "/v1/audiences/aud_x/import",
        "/api/v1/audiences/aud_x/import",
        "/api/internal/audiences/aud_x/import-csv",
        "/overview/audiences/aud_x/import",
    ):
        assert body_limit_for(path) == settings.max_import_bytes, path
    for path in (
        "/v1/contacts/import",
        "/api/v1/templates/import",
        "/v1/audiences/import",
        "/v1/audiences/aud_x/contacts/import",
        "/v1/audiences/aud_x/import/x",
    ):
        assert body_limit_for(path) == settings.max_body_bytes, path
    size = settings.max_body_bytes + 1
    response = client.patch(
        "/v1/contacts/import", headers={"Content-Type": "application/json"}, content=b"a" * size
    )
    assert response.status_code == 413, response.text
