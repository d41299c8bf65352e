"""Prefixed random identifiers (``aud_…``, ``con_…``) as DESIGN.md §2 lists them."""

from __future__ import annotations

import secrets

PREFIXES = frozenset({"org", "usr", "key", "aud", "con", "tpl", "cmp", "msg", "sup", "evt"})


def new_id(prefix: str) -> str:
    """An 80-bit random id; random (not sequential) so ids reveal nothing about volume or order."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{secrets.token_hex(10)}"
