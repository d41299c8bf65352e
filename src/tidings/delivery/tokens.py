"""Signed unsubscribe tokens for ``/u/{token}``.

The token carries the organization and the address and is HMAC-signed with the installation's
secret, so it cannot be guessed or altered to unsubscribe another address. It does not expire: an
unsubscribe link in an old email must keep working (RFC 8058 and the law in most places).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from itsdangerous import BadSignature, URLSafeSerializer

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


def unsubscribe_token(org_id: str, address: str) -> str:
    return str(_serializer().dumps([org_id, address]))


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
    return UnsubscribeTarget(org_id=org_id, address=address)
