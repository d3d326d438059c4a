"""All configuration, read once from `DOCDIGEST_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me-in-production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCDIGEST_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".data")
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    base_url: str = ""

    # web
    host: str = "127.0.0.1"
    port: int = 8000
    web_workers: int = 1
    #: How long an idle keep-alive connection stays open; longer than a load balancer's
    #: own idle timeout (60 s on the common ones), so the web never closes a connection
    #: the balancer is just reusing.
    web_keep_alive_s: int = Field(default=75, ge=1)
    #: How long uvicorn's supervisor waits for a web process to answer its health check
    #: before it kills the process (and the requests in it) and starts another.
    web_healthcheck_timeout_s: int = Field(default=30, ge=1)
    #: Proxies whose X-Forwarded-For/-Proto are believed (comma-separated IPs, or "*").
    forwarded_allow_ips: str = "127.0.0.1"

    # parts; None means "embedded" (see devserver/)
    database_url: str = ""
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: "host:port,host:port": find the Redis master through Sentinel (high availability).
    redis_sentinels: str = ""
    redis_sentinel_master: str = "mymaster"
    queue_name: str = "docdigest:queue"

    # accounts
    session_max_age_hours: float = 24 * 14
    password_min_length: int = 10
    login_max_failures_per_account: int = 5
    login_max_failures_per_ip: int = 30
    login_failure_window_s: int = 900
    #: Hours after signup before the "upload your first document" mail; None turns it off.
    onboarding_nudge_after_hours: float | None = 24.0

    # mail
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    smtp_timeout_s: float = 10.0
    mail_from: str = "docdigest <docdigest@localhost>"
    dev_mail_dir: Path | None = None

    # files: under data_dir/files unless object storage is given (s3://bucket/prefix)
    storage_url: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr = SecretStr("")

    # documents
    max_upload_mb: int = 50
    temp_upload_max_age_hours: float = 6.0
    retention_days: int | None = None
    extract_cpu_s: int = 60
    extract_wall_s: float = 60.0
    extract_memory_mb: int = 1024
    extract_max_chars: int = 2_000_000

    # summaries
    summarizer: Literal["extractive", "llm"] = "extractive"
    summary_sentences: int = 5
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: SecretStr = SecretStr("")
    llm_timeout_s: float = 60.0
    llm_context_tokens: int = 8192

    # job tier
    job_max_tries: int = 5
    job_retry_base_s: float = 2.0
    job_retry_cap_s: float = 300.0
    #: How long a busy worker gathers its jobs' start and end notes before writing them
    #: to the ledger in one transaction, rather than one for every job or two; an idle
    #: worker writes them within 0.05 s (0 writes each at once). Half a second is well
    #: inside the job dashboard's refresh.
    job_ledger_flush_s: float = 0.5
    worker_max_jobs: int = 10
    worker_poll_delay_s: float = 0.5
    worker_metrics_port: int | None = None

    # schedule
    timezone: str = "UTC"
    digest_hour: int = Field(default=9, ge=0, le=23)

    # logs
    log_level: str = "INFO"
    log_format: Literal["json", "text"] | None = None

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'docdigest.db'}"
        return self

    @model_validator(mode="after")
    def _check_storage_url(self) -> Settings:
        if self.storage_url and not self.storage_url.startswith("s3://"):
            raise ValueError(
                "DOCDIGEST_STORAGE_URL must be empty (local files) or s3://bucket/prefix"
            )
        return self

    @model_validator(mode="after")
    def _refuse_development_parts_in_production(self) -> Settings:
        if self.env == "production":
            problems = production_problems(self)
            if problems:
                raise ValueError(
                    "not fit for DOCDIGEST_ENV=production:\n- " + "\n- ".join(problems)
                )
        return self

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def upload_tmp_dir(self) -> Path:
        """Partial uploads stream here; abandoned ones are removed by a cron job."""
        return self.data_dir / "tmp"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def dev_mail_enabled(self) -> bool:
        """The captured-mail views exist only while mail goes to the local catcher."""
        return self.dev_mail_dir is not None


MIN_SECRET_LENGTH = 32
_PLACEHOLDERS = {PLACEHOLDER_SECRET, "changeme", "change-me", "secret", "password"}


def production_problems(settings: Settings) -> list[str]:
    """What still points at a placeholder or an embedded development part."""
    problems = []
    secret = settings.secret_key.get_secret_value()
    if secret.lower() in _PLACEHOLDERS or len(secret) < MIN_SECRET_LENGTH:
        problems.append(
            f"DOCDIGEST_SECRET_KEY is a placeholder or shorter than {MIN_SECRET_LENGTH} characters"
            " (make one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    for name in ("smtp_password", "llm_api_key", "s3_secret_access_key"):
        value: SecretStr = getattr(settings, name)
        if value.get_secret_value().lower() in _PLACEHOLDERS:
            problems.append(f"DOCDIGEST_{name.upper()} is a placeholder")
    if settings.is_sqlite:
        problems.append(
            "DOCDIGEST_DATABASE_URL is SQLite; production needs PostgreSQL"
            " (postgresql+asyncpg://user:password@host/db)"
        )
    if "redis_url" not in settings.model_fields_set and not settings.redis_sentinels:
        problems.append("DOCDIGEST_REDIS_URL is not set; production needs its own Redis server")
    if not settings.smtp_host or settings.dev_mail_dir is not None:
        problems.append(
            "mail goes to the development catcher; set DOCDIGEST_SMTP_HOST (and"
            " DOCDIGEST_SMTP_USER/PASSWORD) and unset DOCDIGEST_DEV_MAIL_DIR"
        )
    return problems


@lru_cache
def get_settings() -> Settings:
    return Settings()
