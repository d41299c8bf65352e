"""Signed unsubscribe tokens for ``/u/{token}``.

The token carries the organization and the address and is HMAC-signed with the installation's
secret, so it cannot be guessed or altered to unsubscribe another address. It does not expire: an
unsubscribe link in an old email must keep working (RFC 8058 and the law in most places).

Tokens are itsdangerous ``URLSafeSerializer`` tokens and are read back with it. The worker writes one
per message, so ``unsubscribe_token`` makes the same bytes itself from a MAC keyed once: the
serializer derives its key and builds a signer on every call, which cost twice as much
(``tests/delivery/test_render.py`` holds the two equal).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass
from functools import lru_cache

from itsdangerous import BadSignature, URLSafeSerializer
from itsdangerous.encoding import base64_encode

from tidings.config import get_settings

_SALT = "tidings.unsubscribe.v1"


@dataclass(frozen=True)
class UnsubscribeTarget:
    org_id: str
    address: str


def _serializer() -> URLSafeSerializer:
    return _serializer_for(get_settings().secret_key)


@lru_cache(maxsize=4)
def _serializer_for(secret_key: str) -> URLSafeSerializer:
    """One per secret: the worker signs a link for every message it sends."""
    return URLSafeSerializer(secret_key, salt=_SALT)


@lru_cache(maxsize=4)
def _mac_for(secret_key: str) -> hmac.HMAC:
    """itsdangerous's HMAC-SHA1 with its derived key (``django-concat`` of salt and secret)."""
    signer = _serializer_for(secret_key).make_signer()
    return hmac.new(signer.derive_key(), digestmod=hashlib.sha1)


_compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def unsubscribe_token(org_id: str, address: str) -> str:
    """``URLSafeSerializer.dumps([org_id, address])``, byte for byte: compact JSON, zlib-compressed
    when that is shorter (marked by a leading "."), URL-safe base64, then "." and the signature."""
    payload = _compact_json([org_id, address]).encode()
    compressed = zlib.compress(payload)
    if len(compressed) < len(payload) - 1:
        body = b"." + base64_encode(compressed)
    else:
        body = base64_encode(payload)
    mac = _mac_for(get_settings().secret_key).copy()
    mac.update(body)
    return (body + b"." + base64_encode(mac.digest())).decode("ascii")


def unsubscribe_url(org_id: str, address: str) -> str:
    return f"{get_settings().public_url.rstrip('/')}/u/{unsubscribe_token(org_id, address)}"


def read_unsubscribe_token(token: str) -> UnsubscribeTarget | None:
    """The target of a valid token, or None for anything forged, altered or malformed."""
    try:
        org_id, address = _serializer().loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(org_id, str) or not isinstance(address, str):
        return None
    if not (_storable(org_id) and _storable(address)):
        return None
    return UnsubscribeTarget(org_id=org_id, address=address)


def _storable(text: str) -> bool:
    """Text a page and the database can hold: a JSON escape such as ``\\ud800`` in a token
    signed with a known secret (the development placeholder) decodes to a lone surrogate,
    which failed with a 500 while the page was written."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text
