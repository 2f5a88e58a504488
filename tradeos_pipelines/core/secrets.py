"""Encryption at rest for 1C credentials and webhook secrets (Fernet, key from the environment)."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from tradeos_pipelines.core.settings import get_settings


class SecretDecryptError(RuntimeError):
    """A stored secret cannot be decrypted with the current TRADEOS_SECRET_KEY."""


def _fernet(key: str | None = None) -> Fernet:
    return Fernet((key or get_settings().require_secret_key()).encode())


def encrypt_json(value: dict[str, Any], key: str | None = None) -> str:
    """Encrypt a JSON-able dict; the result is safe to store in a text column."""
    return _fernet(key).encrypt(json.dumps(value, ensure_ascii=False).encode()).decode()


def decrypt_json(token: str, key: str | None = None) -> dict[str, Any]:
    """Decrypt what :func:`encrypt_json` produced."""
    try:
        return json.loads(_fernet(key).decrypt(token.encode()))
    except InvalidToken:
        raise SecretDecryptError(
            "stored credentials cannot be decrypted: TRADEOS_SECRET_KEY differs from the key "
            "they were saved with"
        ) from None


def encrypt_text(value: str, key: str | None = None) -> str:
    """Encrypt one string (a webhook secret)."""
    return _fernet(key).encrypt(value.encode()).decode()


def decrypt_text(token: str, key: str | None = None) -> str:
    """Decrypt what :func:`encrypt_text` produced."""
    try:
        return _fernet(key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretDecryptError(
            "stored secret cannot be decrypted: TRADEOS_SECRET_KEY differs from the key it was "
            "saved with"
        ) from None


def new_secret_key() -> str:
    """A fresh Fernet key for TRADEOS_SECRET_KEY."""
    return Fernet.generate_key().decode()
