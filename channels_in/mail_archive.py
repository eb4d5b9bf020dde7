"""Walking a mail archive a merchant brings along: .eml files, mbox files, Maildirs, folders.

``scan`` checks every path and lists the mail sources under it (so a progress bar knows the total
before anything is imported); ``ArchiveSource.messages`` then yields each message's raw bytes.
An mbox file is recognised by its content (the first line starts with ``From ``), not its name;
any other file is taken as one message, and the pipeline decides whether it is mail at all.
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MBOX_MARKER = b"From "
MAILDIR_PARTS = ("cur", "new")


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
            box = mailbox.mbox(self.path, factory=None, create=False)
            try:
                for number, key in enumerate(box.keys(), start=1):
                    yield ArchivedMessage(f"{self.path}#{number}", box.get_bytes(key))
            finally:
                box.close()
        else:
            box = mailbox.Maildir(self.path, factory=None, create=False)
            for key in sorted(box.keys()):
                yield ArchivedMessage(f"{self.path}:{key}", box.get_bytes(key))


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
                box = mailbox.mbox(path, factory=None, create=False)
                try:
                    count = len(box.keys())
                finally:
                    box.close()
                yield ArchiveSource(path, "mbox", count)
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
