"""A/B subject variants: which contact sees which subject.

The choice is a pure function of the contact id (first 8 bytes of SHA-256, big-endian, mod N), not
``hash()`` (salted per process) nor a random draw, so a retried or repeated send puts every contact
on the same variant in any process on any machine.
"""

from __future__ import annotations

import hashlib
import string

MIN_VARIANTS = 2
MAX_VARIANTS = 5
LETTERS = string.ascii_uppercase[:MAX_VARIANTS]


def variant_index(contact_id: str, n: int) -> int:
    digest = hashlib.sha256(contact_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n


def variant_letter(contact_id: str, n: int) -> str:
    return LETTERS[variant_index(contact_id, n)]


def letters(n: int) -> list[str]:
    return list(LETTERS[:n])
