"""Encryption of stored channel secrets (mailbox passwords) with rotating Fernet keys."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from channels_in.base import AdapterError


def _fernet() -> MultiFernet:
    keys = list(settings.HELPDESK_FERNET_KEYS)
    if not keys:
        if not settings.DEBUG:
            raise ImproperlyConfigured(
                "HELPDESK_FERNET_KEYS must be set to store mailbox passwords"
            )
        # Development only: a key derived from the (development) secret key.
        digest = hashlib.sha256(f"fernet:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt_secret(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt_secret(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        # Retrying cannot help: the key that encrypted it is gone. An admin must re-enter it.
        raise AdapterError(
            "The stored password cannot be decrypted (was HELPDESK_FERNET_KEYS rotated?); "
            "enter it again",
            permanent=True,
        ) from exc
