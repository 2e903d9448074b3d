"""The mirror token at rest: AES-256-GCM under a key that does not live beside the data.

The key is a secret the operator keeps outside the data dir (``mirror_key_file``, or
``mirror_key`` from the environment); a stolen database or data-dir backup alone does not
yield the token. The ciphertext is bound to the mirror URL (GCM associated data), so a
database edit that points the mirror at another host cannot make camvault send it the token.
A short key id stored with the ciphertext tells "the key changed" apart from "tampered".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from camvault.errors import CamvaultError
from camvault.settings import Settings

MIN_SECRET = 32
_VERSION = "v1"
_NONCE = 12

KEY_HELP = (
    "set CAMVAULT_MIRROR_KEY_FILE to a file outside the data dir holding a random secret of "
    "at least 32 characters (e.g. `openssl rand -base64 32 > /etc/camvault/mirror.key`), or "
    "CAMVAULT_MIRROR_KEY, and restart camvault; or give the token through "
    "CAMVAULT_MIRROR_TOKEN instead of the API"
)


class MirrorKeyError(CamvaultError):
    """The key setting is unusable (missing file, too short, inside the data dir): a
    configuration error that stops startup, as a bad TLS certificate would."""

    code = "mirror_key_invalid"


class TokenDecryptError(Exception):
    """A stored token could not be decrypted: another key, or a tampered row."""


class TokenCipher:
    """Encrypts and decrypts the mirror token with a key derived from the operator's secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret.strip()) < MIN_SECRET:
            raise MirrorKeyError(f"the mirror key must be at least {MIN_SECRET} characters")
        self._key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"camvault-mirror-token", info=b"v1"
        ).derive(secret.strip())
        self.key_id = hmac.new(self._key, b"camvault key id", hashlib.sha256).hexdigest()[:16]

    def encrypt(self, token: str, url: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self._key).encrypt(nonce, token.encode(), url.encode())
        return f"{_VERSION}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, stored: str, url: str, key_id: str | None) -> str:
        if key_id is not None and key_id != self.key_id:
            raise TokenDecryptError(
                "the stored mirror token was encrypted with another key (was the mirror key "
                "changed?): configure the mirror again with its token"
            )
        version, _, body = stored.partition(":")
        try:
            if version != _VERSION:
                raise ValueError(version)
            raw = base64.b64decode(body, validate=True)
            plain = AESGCM(self._key).decrypt(raw[:_NONCE], raw[_NONCE:], url.encode())
        except (ValueError, InvalidTag) as exc:
            raise TokenDecryptError(
                "the stored mirror token cannot be decrypted for this URL: configure the "
                "mirror again with its token"
            ) from exc
        return plain.decode()


def load_cipher(settings: Settings) -> TokenCipher | None:
    """The cipher from the settings, None when no key is configured (blocking: reads a file)."""
    if settings.mirror_key is not None and settings.mirror_key_file is not None:
        raise MirrorKeyError("set either mirror_key or mirror_key_file, not both")
    if settings.mirror_key is not None:
        return TokenCipher(settings.mirror_key.get_secret_value().encode())
    path = settings.mirror_key_file
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    if resolved.is_relative_to(settings.data.resolve()):
        raise MirrorKeyError(
            f"the mirror key file {path} is inside the data dir: keep it elsewhere, so a copy "
            "of the data does not carry the key that opens the token"
        )
    try:
        secret = resolved.read_bytes()
    except OSError as exc:
        raise MirrorKeyError(f"cannot read the mirror key file {path}: {exc.strerror}") from exc
    return TokenCipher(secret)
