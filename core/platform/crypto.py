"""Secrets at rest: AES-256-GCM under a versioned data key, bound to the row and field it belongs to.

A value is stored as ``v1:<key id>:<base64url(nonce | ciphertext+tag)>``. The key id says which key sealed
it, so rotation knows what still needs re-encrypting without trial decryption, and old keys keep working
until every value is re-sealed with the primary (``zixly keys rotate``). The associated data names the
row and the field (``connection:<id>:tokens``), so a ciphertext copied into another row or column does not
decrypt.

Keys come from ``ZIXLY_DATA_KEYS`` (``kid:base64key,kid:base64key``; the first is the primary) or from an
AWS Secrets Manager secret (``ZIXLY_DATA_KEYS_SECRET_ID``, a JSON ``{"primary": kid, "keys": {kid: b64}}``).
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "v1"


class KeyringError(RuntimeError):
    """No usable data key is configured, or the configuration is malformed."""


class DecryptionFailed(ValueError):
    """The value was sealed with an unknown key, for another row or field, or was tampered with."""


def _b64d(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _b64e(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def generate_key() -> str:
    """A fresh 256-bit key, base64url, for ZIXLY_DATA_KEYS."""
    return _b64e(secrets.token_bytes(32))


@dataclass(frozen=True)
class Keyring:
    primary: str
    keys: dict[str, bytes]

    def __post_init__(self):
        if self.primary not in self.keys:
            raise KeyringError(f"primary data key {self.primary!r} is not among the configured keys")
        for kid, key in self.keys.items():
            if not kid or ":" in kid or len(key) != 32:
                raise KeyringError(f"data key {kid!r} must have a plain id and 32 bytes")

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """``kid:base64key,kid:base64key`` — the first is the primary."""
        pairs = [item.strip() for item in spec.split(",") if item.strip()]
        if not pairs:
            raise KeyringError("no data keys given")
        keys: dict[str, bytes] = {}
        for pair in pairs:
            kid, sep, material = pair.partition(":")
            if not sep:
                raise KeyringError("each data key is written kid:base64key")
            try:
                keys[kid] = _b64d(material)
            except ValueError:
                raise KeyringError(f"data key {kid!r} is not base64") from None
        return cls(primary=pairs[0].partition(":")[0], keys=keys)

    @classmethod
    def from_secret_string(cls, text: str) -> Keyring:
        try:
            doc = json.loads(text)
            return cls(primary=doc["primary"], keys={k: _b64d(v) for k, v in doc["keys"].items()})
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyringError("the data-key secret must be JSON {primary, keys: {kid: base64}}") from None

    def key_id(self, sealed: str) -> str | None:
        parts = sealed.split(":", 2)
        return parts[1] if len(parts) == 3 and parts[0] == PREFIX else None

    def seal(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(12)
        ct = AESGCM(self.keys[self.primary]).encrypt(nonce, plaintext, context.encode())
        return f"{PREFIX}:{self.primary}:{_b64e(nonce + ct)}"

    def open(self, sealed: str, context: str) -> bytes:
        parts = sealed.split(":", 2) if isinstance(sealed, str) else []
        if len(parts) != 3 or parts[0] != PREFIX:
            raise DecryptionFailed("not a sealed value")
        key = self.keys.get(parts[1])
        if key is None:
            raise DecryptionFailed(f"sealed with unknown data key {parts[1]!r}")
        try:
            blob = _b64d(parts[2])
            return AESGCM(key).decrypt(blob[:12], blob[12:], context.encode())
        except (InvalidTag, ValueError):
            raise DecryptionFailed("value does not open under its key for this context") from None

    def seal_json(self, value, context: str) -> str:
        return self.seal(json.dumps(value, separators=(",", ":")).encode(), context)

    def open_json(self, sealed: str, context: str):
        return json.loads(self.open(sealed, context))

    def needs_rotation(self, sealed: str | None) -> bool:
        return sealed is not None and self.key_id(sealed) != self.primary

    def reseal(self, sealed: str, context: str) -> str:
        return self.seal(self.open(sealed, context), context)


_lock = threading.Lock()
_keyring: Keyring | None = None
_source: tuple | None = None


def configure(*, spec: str | None = None, secret_id: str | None = None, secrets_client=None) -> Keyring | None:
    """Load the keyring from an inline spec or a Secrets Manager secret (read once, then cached)."""
    global _keyring, _source
    with _lock:
        if _source == (spec, secret_id) and _keyring is not None:
            return _keyring
        if secret_id:
            text = secrets_client.get_secret_value(SecretId=secret_id)["SecretString"]
            _keyring = Keyring.from_secret_string(text)
        elif spec:
            _keyring = Keyring.parse(spec)
        else:
            _keyring = None
        _source = (spec, secret_id)
        return _keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise KeyringError("no data key configured: set ZIXLY_DATA_KEYS or ZIXLY_DATA_KEYS_SECRET_ID")
    return _keyring
