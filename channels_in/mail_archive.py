"""Walking a mail archive a merchant brings along: .eml files, mbox files, Maildirs, folders.

``scan`` checks every path and lists the mail sources under it (so a progress bar knows the total
before anything is imported); ``ArchiveSource.messages`` then yields each message's raw bytes.
An mbox file is recognised by its content (the first line starts with ``From ``), not its name;
any other file is taken as one message, and the pipeline decides whether it is mail at all.

An mbox is read as a stream, one message at a time, so an archive of any size takes the memory of
its largest message: counting its messages is one pass over the bytes for ``From `` lines, and
reading splits the lines the way ``mailbox.mbox`` does (the same bytes, so a message without a
Message-ID gets the same digest, and counts as a duplicate, whichever version imported it first).
``mailbox.mbox`` itself keeps a table of every message's offsets, which grows with the file.
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from channels_in.mail.framing import header_block
from channels_in.mail.headers import parse_date

MBOX_MARKER = b"From "
MAILDIR_PARTS = ("cur", "new")
# mailbox.mbox drops the blank line before a "From " line; it compares lines with os.linesep.
LINESEP = os.linesep.encode()
COUNT_CHUNK_BYTES = 1 << 20


class UnreadableArchive(Exception):
    """A path of the archive cannot be read (missing, no permission, not a file or folder)."""


@dataclass(frozen=True)
class ArchivedMessage:
    origin: str  # where the message came from: a file, or "mbox#3", or "maildir:key"
    payload: bytes


@dataclass(frozen=True)
class ArchiveSource:
    """One file or mailbox of the archive and how many messages it holds."""

    path: Path
    kind: str  # "file", "mbox" or "maildir"
    count: int

    def messages(self) -> Iterator[ArchivedMessage]:
        """The raw bytes of every message, in file order (mbox) or key order (Maildir)."""
        if self.kind == "file":
            yield ArchivedMessage(str(self.path), self.path.read_bytes())
        elif self.kind == "mbox":
            for number, payload in enumerate(read_mbox(self.path), start=1):
                yield ArchivedMessage(f"{self.path}#{number}", payload)
        else:
            box = mailbox.Maildir(self.path, factory=None, create=False)
            for key in sorted(box.keys()):
                yield ArchivedMessage(f"{self.path}:{key}", box.get_bytes(key))


def read_mbox(path: Path) -> Iterator[bytes]:
    """Each message of an mbox file, without its ``From `` line, holding one message at a time.

    The bytes are those ``mailbox.mbox.get_bytes`` returns: a message runs from its ``From ``
    line to the next one, less the blank line that separates them.
    """
    with path.open("rb") as handle:
        lines: list[bytes] | None = None  # None until the first "From " line
        for line in handle:
            if line.startswith(MBOX_MARKER):
                if lines is not None:
                    yield _mbox_message(lines)
                lines = []
            elif lines is not None:
                lines.append(line)
        if lines is not None:
            yield _mbox_message(lines)


def _mbox_message(lines: list[bytes]) -> bytes:
    if lines and lines[-1] == LINESEP:
        lines.pop()
    payload = b"".join(lines)
    return payload if LINESEP == b"\n" else payload.replace(LINESEP, b"\n")


def count_mbox(path: Path) -> int:
    """How many messages an mbox holds: its lines that start with ``From ``, read in chunks."""
    count = 0
    carry = b"\n"  # the file's start counts as a line start
    with path.open("rb") as handle:
        while chunk := handle.read(COUNT_CHUNK_BYTES):
            # The tail of the previous chunk lets a separator split across chunks be found once.
            window = carry + chunk
            count += window.count(b"\n" + MBOX_MARKER)
            carry = window[-len(MBOX_MARKER) :]
    return count


def sent_at(payload: bytes) -> datetime | None:
    """The mail's Date header as an aware datetime (UTC when it names no zone), read as the
    parser reads it for the message's ``sent_at``; None when it has none that parses."""
    headers = header_block(payload)
    if headers is None:
        return None
    return parse_date(str(headers.get("date") or ""))


def is_mbox(path: Path) -> bool:
    """Whether a file is an mbox: its first line is an mbox ``From `` separator line."""
    with path.open("rb") as handle:
        return handle.read(len(MBOX_MARKER)) == MBOX_MARKER


def is_maildir(path: Path) -> bool:
    return all((path / part).is_dir() for part in MAILDIR_PARTS)


def scan(paths: Iterable[str | os.PathLike[str]]) -> list[ArchiveSource]:
    """Every mail source under ``paths``; raise UnreadableArchive naming the first bad path.

    Folders are walked recursively in name order; hidden files and folders (``.DS_Store``,
    ``.git``) are skipped, except Maildir++ sub-folders, which belong to their Maildir.
    """
    sources: list[ArchiveSource] = []
    seen: set[str] = set()
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise UnreadableArchive(f"{path}: no such file or folder")
        sources.extend(_scan_path(path, seen))
    return sources


def _scan_path(path: Path, seen: set[str]) -> Iterator[ArchiveSource]:
    real = os.path.realpath(path)
    if real in seen:  # the same file named twice, or a symlink loop
        return
    seen.add(real)
    try:
        if path.is_dir():
            if is_maildir(path):
                yield from _scan_maildir(path)
                return
            entries = sorted(path.iterdir(), key=lambda entry: entry.name)
            for entry in entries:
                if not entry.name.startswith("."):
                    yield from _scan_path(entry, seen)
        elif path.is_file():
            if is_mbox(path):
                yield ArchiveSource(path, "mbox", count_mbox(path))
            else:
                if not os.access(path, os.R_OK):
                    raise PermissionError(13, "Permission denied")
                yield ArchiveSource(path, "file", 1)
        else:
            raise UnreadableArchive(f"{path}: neither a file nor a folder")
    except OSError as exc:
        raise UnreadableArchive(f"{path}: {exc.strerror or exc}") from exc


def _scan_maildir(path: Path) -> Iterator[ArchiveSource]:
    box = mailbox.Maildir(path, factory=None, create=False)
    yield ArchiveSource(path, "maildir", len(box.keys()))
    for folder in sorted(box.list_folders()):  # Maildir++: .Sent, .Archive, ...
        yield from _scan_maildir(path / f".{folder}")
