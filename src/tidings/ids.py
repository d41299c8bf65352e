"""Prefixed random identifiers (``aud_…``, ``con_…``) as DESIGN.md §2 lists them."""

from __future__ import annotations

import os
import secrets

PREFIXES = frozenset({"org", "usr", "key", "aud", "con", "tpl", "cmp", "msg", "sup", "evt"})


def new_id(prefix: str) -> str:
    """An 80-bit random id; random (not sequential) so ids reveal nothing about volume or order."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{secrets.token_hex(10)}"


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` ids like ``new_id``'s, from one read of the system's random source: the fan-out and
    the import make 10,000 at a time, where one ``urandom`` call per id was a tenth of the send."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    hex_digits = os.urandom(10 * n).hex()
    return [f"{prefix}_{hex_digits[i : i + 20]}" for i in range(0, 20 * n, 20)]
