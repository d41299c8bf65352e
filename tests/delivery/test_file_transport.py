"""The file transport's one write: whole or nothing, private, never through a planted link."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from tidings.delivery.transports.file import write_atomically


def _temporary(directory: Path, name: str) -> Path:
    return directory / f".{name}.{os.getpid()}.{threading.get_ident()}.part"


def test_writes_the_bytes_privately_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    write_atomically(str(tmp_path), "msg_1.eml", b"first")
    write_atomically(str(tmp_path), "msg_1.eml", b"second")  # a retry replaces the message

    final = tmp_path / "msg_1.eml"
    assert final.read_bytes() == b"second"
    assert stat.S_IMODE(final.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["msg_1.eml"]


def test_a_link_planted_at_the_temporary_name_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    _temporary(tmp_path, "msg_2.eml").symlink_to(victim)

    write_atomically(str(tmp_path), "msg_2.eml", b"message")

    assert victim.read_bytes() == b"keep me"
    final = tmp_path / "msg_2.eml"
    assert not final.is_symlink() and final.read_bytes() == b"message"


def test_a_leftover_temporary_file_does_not_lend_its_mode(tmp_path: Path) -> None:
    leftover = _temporary(tmp_path, "msg_3.eml")
    leftover.write_bytes(b"half a message from a writer that died")
    leftover.chmod(0o666)

    write_atomically(str(tmp_path), "msg_3.eml", b"message")

    final = tmp_path / "msg_3.eml"
    assert final.read_bytes() == b"message"
    assert stat.S_IMODE(final.stat().st_mode) == 0o600
