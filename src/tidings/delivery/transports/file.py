"""``file://DIR``: every message becomes one file in DIR (the default; development and tests).

Email is written as an RFC 5322 ``.eml``, SMS as one ``.json`` document, each named after the message
id. A write goes to a temporary file that is then renamed over the final name, so a reader (or a
crash) never sees half a message, and a retry of the same message replaces its file instead of
adding a second one.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tidings.delivery.transports.base import (
    Deferred,
    Delivered,
    Email,
    Outcome,
    Outgoing,
    Sms,
    TransportConfigError,
)
from tidings.delivery.transports.mime import build_email


def directory_of(url: str) -> Path:
    """``file:///abs/dir`` or ``file://./relative/dir`` (relative to the working directory)."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise TransportConfigError(f"not a file:// URL: {url!r}")
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise TransportConfigError(f"file:// URL without a directory: {url!r}")
    return Path(path)


def write_atomically(directory: str, name: str, data: bytes) -> None:
    """``directory/name`` holds ``data`` whole or not at all: written to a temporary file, then
    renamed over the final name.

    The temporary name is the final one plus this process and thread, so two writers of one
    message (a stalled worker and the one that re-claimed it) never share a temporary file; it is
    made with plain ``os`` calls because ``tempfile.mkstemp``'s random names and ``os.fdopen``'s
    buffered file were a fifth of the file transport's time. Like ``mkstemp``'s, the file is new
    (``O_EXCL``: never a leftover or a planted link) and ``0600``: a message holds a recipient's
    personal data."""
    final = os.path.join(directory, name)
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{threading.get_ident()}.part")
    descriptor = _create_new(temporary)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
        finally:
            os.close(descriptor)
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _create_new(path: str) -> int:
    """A new file at ``path``. One already there is a temporary file left by a writer that died
    with this process id and thread id (or something planted): it is removed, not written
    through."""
    try:
        return os.open(path, _NEW_FILE, 0o600)
    except FileExistsError:
        os.unlink(path)
        return os.open(path, _NEW_FILE, 0o600)


class FileMessenger:
    def __init__(self, url: str, domain: str) -> None:
        self.directory = str(directory_of(url))  # a str: joined with os.path for every message
        self.domain = domain
        self._ready = False

    def push(self, message: Outgoing) -> Outcome:
        try:
            if not self._ready:
                os.makedirs(self.directory, exist_ok=True)
                self._ready = True
            if isinstance(message, Email):
                name, data = f"{message.message_id}.eml", build_email(message, self.domain)
            else:
                name, data = f"{message.message_id}.json", _sms_document(message)
            write_atomically(self.directory, name, data)
        except OSError as exc:
            # A full disk or a missing mount may well be fixed by the next attempt.
            return Deferred(f"cannot write to {self.directory}: {exc}")
        return Delivered(provider_id=name)

    def close(self) -> None:
        pass


def _sms_document(sms: Sms) -> bytes:
    document = {"id": sms.message_id, "from": sms.sender, "to": sms.to, "body": sms.body}
    return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
