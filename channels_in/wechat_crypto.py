"""WeChat's push signatures and "safe mode" (AES) message encryption, the server side of
Tencent's WXBizMsgCrypt, written with ``cryptography``.

- ``signature``: SHA-1 of the sorted strings (token, timestamp, nonce, and the ``Encrypt``
  value in safe mode), hex.
- The cipher: AES-256-CBC with the key ``base64(EncodingAESKey + "=")`` (32 bytes) and its
  first 16 bytes as IV; PKCS#7 padding to 32-byte blocks; the plaintext is 16 random bytes, the
  message's length (4 bytes, network order), the message and the AppID it is for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_BYTES = 32  # WeChat pads to 32 bytes, not AES's 16
AES_KEY_CHARS = 43


class CipherError(Exception):
    """A safe-mode payload that does not decrypt to a message for this AppID."""


def signature(*parts: str) -> str:
    """WeChat's signature of ``parts``: SHA-1 of the sorted strings joined, in hex."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 (WeChat's)


def signature_matches(presented: str, *parts: str) -> bool:
    """Whether ``presented`` is the signature of ``parts``, compared in constant time."""
    return hmac.compare_digest(presented.strip().lower().encode(), signature(*parts).encode())


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte key of a 43-character EncodingAESKey; ValueError when it is not one."""
    if len(encoding_aes_key) != AES_KEY_CHARS or not encoding_aes_key.isalnum():
        raise ValueError("an EncodingAESKey is 43 letters and digits")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise ValueError("an EncodingAESKey is 43 letters and digits") from exc
    return key


class MessageCipher:
    """Encrypts and decrypts the ``Encrypt`` value of safe-mode pushes for one AppID."""

    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        self.key = aes_key(encoding_aes_key)
        self.app_id = app_id

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, message: bytes, *, random16: bytes | None = None) -> str:
        """The base64 ``Encrypt`` value carrying ``message`` to this AppID."""
        random16 = os.urandom(16) if random16 is None else random16
        plain = random16 + struct.pack(">I", len(message)) + message + self.app_id.encode()
        pad = BLOCK_BYTES - len(plain) % BLOCK_BYTES
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside an ``Encrypt`` value; ``CipherError`` when it is not base64 AES
        of the right shape, or is addressed to another AppID."""
        try:
            data = base64.b64decode(encrypted.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CipherError("the Encrypt value is not base64") from exc
        if not data or len(data) % 16:
            raise CipherError("the Encrypt value is not AES-CBC ciphertext")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK_BYTES or plain[-pad:] != bytes([pad]) * pad:
            raise CipherError("the Encrypt value does not decrypt with this EncodingAESKey")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise CipherError("the decrypted message is too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, app_id = plain[20 : 20 + length], plain[20 + length :]
        if len(message) != length:
            raise CipherError("the decrypted message is shorter than it says")
        if not hmac.compare_digest(app_id, self.app_id.encode()):
            raise CipherError("the message is for another AppID")
        return message
