"""DOCDIGEST_ENV=production refuses placeholders and the embedded development parts."""

from __future__ import annotations

import os
import subprocess

import pytest
from pydantic import ValidationError

from docdigest.settings import Settings
from tests.ops.conftest import DOCDIGEST, clean_env

PRODUCTION = {
    "DOCDIGEST_ENV": "production",
    "DOCDIGEST_SECRET_KEY": "k" * 48,
    "DOCDIGEST_DATABASE_URL": "postgresql+asyncpg://docdigest:pw@db.internal/docdigest",
    "DOCDIGEST_REDIS_URL": "redis://redis.internal:6379/0",
    "DOCDIGEST_SMTP_HOST": "smtp.internal",
}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in [k for k in os.environ if k.startswith("DOCDIGEST_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_a_complete_production_configuration_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(PRODUCTION, monkeypatch)
    assert settings.env == "production"
    assert not settings.is_sqlite


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DOCDIGEST_SECRET_KEY": "change-me-in-production"}, "DOCDIGEST_SECRET_KEY"),
        ({"DOCDIGEST_SECRET_KEY": "short"}, "DOCDIGEST_SECRET_KEY"),
        ({"DOCDIGEST_DATABASE_URL": ""}, "production needs PostgreSQL"),
        ({"DOCDIGEST_DATABASE_URL": "sqlite+aiosqlite:///x.db"}, "production needs PostgreSQL"),
        ({"DOCDIGEST_REDIS_URL": None}, "DOCDIGEST_REDIS_URL is not set"),
        ({"DOCDIGEST_SMTP_HOST": ""}, "development catcher"),
        ({"DOCDIGEST_DEV_MAIL_DIR": "/srv/mail"}, "development catcher"),
        ({"DOCDIGEST_SMTP_PASSWORD": "changeme"}, "DOCDIGEST_SMTP_PASSWORD is a placeholder"),
    ],
)
def test_production_refuses_placeholders_and_embedded_parts(
    change: dict[str, str | None], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {k: v for k, v in (PRODUCTION | change).items() if v is not None}
    with pytest.raises(ValidationError, match=message):
        settings_from(env, monkeypatch)


def test_development_keeps_its_embedded_defaults() -> None:
    settings = Settings(env="development")
    assert settings.is_sqlite
    assert settings.storage_url == ""


def test_storage_url_must_be_object_storage_when_given() -> None:
    with pytest.raises(ValidationError, match="s3://bucket/prefix"):
        Settings(storage_url="ftp://files.example/docs")


def test_the_cli_refuses_to_start_a_misconfigured_production_web_app() -> None:
    result = subprocess.run(
        [DOCDIGEST, "web"],
        env=clean_env(**(PRODUCTION | {"DOCDIGEST_SECRET_KEY": "change-me-in-production"})),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DOCDIGEST_SECRET_KEY is a placeholder" in result.stderr
