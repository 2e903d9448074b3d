"""The mirror token at rest: encrypted under a key kept away from the data."""

from __future__ import annotations

from pathlib import Path

import pytest

from camvault.mirror.crypto import MirrorKeyError, TokenCipher, TokenDecryptError, load_cipher
from camvault.settings import Settings

SECRET = b"x" * 40
URL = "https://gitlab.example.com/shop/vault.git"


def test_a_token_round_trips_and_its_ciphertext_does_not_contain_it() -> None:
    cipher = TokenCipher(SECRET)
    sealed = cipher.encrypt("glpat-very-secret", URL)
    assert "glpat" not in sealed and "very-secret" not in sealed
    assert cipher.encrypt("glpat-very-secret", URL) != sealed, "a fresh nonce each time"
    assert cipher.decrypt(sealed, URL, cipher.key_id) == "glpat-very-secret"


def test_a_ciphertext_moved_to_another_url_does_not_decrypt() -> None:
    # Someone who can edit the database must not get the token sent to their own host.
    cipher = TokenCipher(SECRET)
    sealed = cipher.encrypt("glpat-very-secret", URL)
    with pytest.raises(TokenDecryptError, match="for this URL"):
        cipher.decrypt(sealed, "https://attacker.example.com/x.git", cipher.key_id)


def test_another_key_is_reported_as_a_changed_key() -> None:
    sealed = TokenCipher(SECRET).encrypt("t", URL)
    other = TokenCipher(b"y" * 40)
    with pytest.raises(TokenDecryptError, match="another key"):
        other.decrypt(sealed, URL, TokenCipher(SECRET).key_id)


def test_keys_shorter_than_32_characters_are_refused() -> None:
    with pytest.raises(MirrorKeyError, match="at least 32"):
        TokenCipher(b"short")


def test_no_key_configured_means_no_cipher(tmp_path: Path) -> None:
    assert load_cipher(Settings(data=tmp_path / "data")) is None


def test_the_key_file_must_not_live_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "mirror.key").write_bytes(SECRET)
    with pytest.raises(MirrorKeyError, match="inside the data dir"):
        load_cipher(Settings(data=data, mirror_key_file=data / "mirror.key"))
    outside = tmp_path / "mirror.key"
    outside.write_bytes(SECRET + b"\n")
    cipher = load_cipher(Settings(data=data, mirror_key_file=outside))
    assert cipher is not None and cipher.key_id == TokenCipher(SECRET).key_id


def test_a_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MirrorKeyError, match="cannot read the mirror key file"):
        load_cipher(Settings(data=tmp_path / "data", mirror_key_file=tmp_path / "nope.key"))


def test_the_key_from_the_environment_works_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMVAULT_MIRROR_KEY", SECRET.decode())
    cipher = load_cipher(Settings(data=tmp_path / "data"))
    assert cipher is not None and cipher.key_id == TokenCipher(SECRET).key_id
    assert SECRET.decode() not in repr(Settings(data=tmp_path / "data"))
