"""Settings: flags over environment over config file over defaults; secrets stay masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from camvault.settings import Settings


def test_lists_come_from_the_environment_as_plain_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMVAULT_ALLOWED_EXTENSIONS", ".mcam, NC")
    monkeypatch.setenv("CAMVAULT_ALLOWED_ORIGINS", "https://cam.shop.example/ http://10.0.0.5:8000")
    settings = Settings()
    assert settings.allowed_extensions == (".mcam", ".nc")
    assert settings.allowed_origins == ("https://cam.shop.example", "http://10.0.0.5:8000")


def test_flags_beat_environment_beat_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "camvault.toml"
    config.write_text('port = 9001\nhost = "192.168.7.2"\nsession_hours = 2\n')
    monkeypatch.setenv("CAMVAULT_CONFIG", str(config))
    monkeypatch.setenv("CAMVAULT_PORT", "9002")
    assert Settings().session_hours == 2  # file
    assert Settings().port == 9002  # environment over file
    assert Settings(port=9003).port == 9003  # flag over environment
    assert Settings().host == "192.168.7.2"


def test_secrets_never_show_in_a_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        admin_password="hunter2-hunter2", database_url="postgresql://u:topsecret@db/camvault"
    )
    assert "hunter2" not in repr(settings)
    assert "topsecret" not in repr(settings)
    assert settings.sqlalchemy_url() == "postgresql+psycopg://u:topsecret@db/camvault"
