"""A real IMAP server for tests: pymap's in-memory backend in a subprocess on 127.0.0.1.

The test talks to it as a mail provider would be talked to: APPEND puts mail in a folder, and
deleting and recreating a folder gives it a new UIDVALIDITY, as a server does when it renumbers.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import datetime

from imapclient import IMAPClient

STARTUP_SECONDS = 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ImapServer:
    """One pymap process with one user, ``support`` / ``pw``, whose INBOX starts empty."""

    host = "127.0.0.1"
    username = "support"
    password = "pw"

    def __init__(self) -> None:
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ImapServer:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from pymap.main import main; main()",
                "--no-tls",  # plaintext LOGIN, as the mailbox's imap_use_ssl=False says
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--no-service",
                "admin",
                "dict",
                "--demo-user",
                self.username,
                "--demo-password",
                self.password,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = self._process.stdout.read().decode(errors="replace")  # type: ignore[union-attr]
                raise RuntimeError(f"pymap exited at startup:\n{output}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pymap did not listen on port {self.port} within {STARTUP_SECONDS}s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()

    def client(self) -> IMAPClient:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(self.username, self.password)
        return client

    def append(
        self, folder: str, *payloads: bytes, received_at: datetime | None = None
    ) -> list[int]:
        """Deliver mail into ``folder`` (arrived now, or at ``received_at``); return its UIDs."""
        client = self.client()
        try:
            folders = {name for _flags, _sep, name in client.list_folders()}
            if folder not in folders:
                client.create_folder(folder)
            for payload in payloads:
                client.append(folder, payload, msg_time=received_at)
            client.select_folder(folder, readonly=True)
            return sorted(client.search("ALL"))[-len(payloads) :] if payloads else []
        finally:
            client.logout()

    def recreate_folder(self, folder: str, payloads: Iterable[bytes]) -> int:
        """Delete ``folder`` and fill a new one of the same name; return its new UIDVALIDITY."""
        client = self.client()
        try:
            client.delete_folder(folder)
            client.create_folder(folder)
            for payload in payloads:
                client.append(folder, payload)
            return int(client.select_folder(folder, readonly=True)[b"UIDVALIDITY"])
        finally:
            client.logout()

    def folder_state(self, folder: str) -> tuple[int, dict[int, tuple[bytes, ...]]]:
        """The folder's UIDVALIDITY and each message's flags, as any mail client would see them."""
        client = self.client()
        try:
            uidvalidity = int(client.select_folder(folder, readonly=True)[b"UIDVALIDITY"])
            uids = client.search("ALL")
            flags = client.get_flags(uids) if uids else {}
            return uidvalidity, {uid: tuple(value) for uid, value in flags.items()}
        finally:
            client.logout()
