"""Encryption at rest for secrets the portal must be able to read back (e.g. webhook signing keys).

Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`, keyed from SECRET_KEY, so
rotating SECRET_KEY requires re-entering such secrets.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    key = hashlib.sha256(b"opsportal-encryption:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(ciphertext: str) -> str:
    """The plaintext; raises ValueError when the ciphertext was made with another SECRET_KEY."""
    if not ciphertext:
        return ""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ValueError("cannot decrypt: SECRET_KEY changed since this secret was stored") from None
