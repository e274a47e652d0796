"""The app's settings: environment variables and `.env`, validated once.

The validators refuse the unsafe combinations instead of warning about them:
an admin API without a real token, or a fault switched on in production.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

_DEV_CURSOR_SECRET = "lab-development-cursor-secret"
_WEAK_TOKENS = {"", "changeme", "change-me", "secret", "token", "admin", "lab"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    lab_env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///.lab/data/shop.sqlite"
    # Through Toxiproxy when the lab's services run (lab/topology.py); the
    # direct addresses are for set-up work (migrations, seeding) and diagnosis.
    database_direct_url: str | None = None
    redis_url: str | None = None
    redis_direct_url: str | None = None
    upstream_url: str | None = None
    upstream_direct_url: str | None = None
    # The inventory service (inventory/app.py): what placed orders reserve stock in.
    inventory_url: str | None = None
    inventory_direct_url: str | None = None
    # This deployment runs job workers (target_app/worker.py): /metrics then
    # counts the jobs by state (`background_jobs{state}`) from their table.
    jobs_enabled: bool = False
    # This process runs the periodic jobs (target_app/scheduler.py), every
    # SCHEDULER_INTERVAL_S seconds; under gunicorn, each worker process does.
    scheduler_enabled: bool = False
    scheduler_interval_s: float = Field(3600.0, ge=0.5, le=86400.0)
    db_pool_size: int = Field(10, ge=1, le=200)
    db_max_overflow: int = Field(10, ge=0, le=200)

    # Faults switched on at start-up, e.g. FAULTS=memory-leak,blocking-call
    faults: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Where the toggles live, shared by every worker of this app.
    lab_state_file: Path = Path(".lab/state/toggles.json")

    # A drill (`lab drill`): the app does not say which scenario it runs, neither in
    # /metrics (no lab_fault_active series) nor in its start log, so the person
    # investigating has only what production would show.
    lab_blind: bool = False

    # The /_lab admin API is only mounted when the lab asks for it.
    lab_admin_enabled: bool = False
    lab_admin_token: SecretStr = SecretStr("")

    # Signs pagination cursors so clients cannot forge positions.
    cursor_secret: SecretStr = SecretStr(_DEV_CURSOR_SECRET)

    # Uploads (routes/uploads.py): where files land, and the largest one accepted.
    upload_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("LAB_HOME", ".lab")) / "uploads"
    )
    upload_max_bytes: int = Field(2**30, ge=1)

    # Off only for the benchmark's baseline: no metrics, no timing, no seams.
    lab_instrumentation: bool = True
    log_level: str = "INFO"
    # Requests slower than this are logged at WARNING with their timing split.
    log_slow_ms: float = Field(1000.0, ge=0)
    # One INFO line per request (method, route, status, time), what the live log
    # (GET /logs/live) streams; off by default: a line per request costs each one.
    access_log: bool = False

    @field_validator("faults", mode="before")
    @classmethod
    def _split_faults(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Settings:
        token = self.lab_admin_token.get_secret_value()
        # Checked whenever one is set, not only with the admin API: the token also
        # opens the live log (GET /logs/live), which can run without it.
        if (self.lab_admin_enabled or token) and (token.lower() in _WEAK_TOKENS or len(token) < 16):
            raise ValueError(
                "LAB_ADMIN_ENABLED needs LAB_ADMIN_TOKEN set to a random string of at least "
                "16 characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            )
        if self.lab_env == "production" and (
            self.cursor_secret.get_secret_value() == _DEV_CURSOR_SECRET
        ):
            raise ValueError("set CURSOR_SECRET to a random string: the default is public")
        if self.lab_env == "production" and self.faults:
            raise ValueError(
                f"FAULTS={','.join(self.faults)} refused: no fault can be switched on "
                "when LAB_ENV=production"
            )
        return self

    @property
    def is_production(self) -> bool:
        return self.lab_env == "production"


@lru_cache
def get_settings() -> Settings:
    return Settings()
