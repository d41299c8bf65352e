"""Subject variants: the SHA-256 rule, independent of the process."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from tidings.campaigns.variants import variant_index, variant_letter


def test_variant_is_first_8_bytes_of_sha256_big_endian_mod_n() -> None:
    contact_id = "con_0123456789abcdef0123"
    expected = int(hashlib.sha256(contact_id.encode()).hexdigest()[:16], 16) % 3
    assert variant_index(contact_id, 3) == expected
    assert variant_letter(contact_id, 3) == "ABC"[expected]


def test_variant_is_the_same_in_another_process() -> None:
    ids = [f"con_{i:020x}" for i in range(50)]
    here = "".join(variant_letter(i, 5) for i in ids)
    code = (
        "from tidings.campaigns.variants import variant_letter;"
        f"print(''.join(variant_letter(i, 5) for i in {ids!r}))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert here == there
    assert set(here) == set("ABCDE")
