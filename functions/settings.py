"""One settings model per function, read from the environment once at cold start."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions import config


class _Common(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    registry_bucket: str = Field(min_length=3)
    data_bucket: str = Field(min_length=3)
    model_name: str = Field(min_length=1)
    max_body_bytes: int = Field(default=config.DEFAULT_MAX_BODY_BYTES, ge=1024)


class PredictSettings(_Common):
    """Settings of the predict function."""

    model_version: int | None = Field(
        default=None, ge=1, description="Pin a model version; else the alias is resolved."
    )
    model_alias: str = "champion"
    max_batch_rows: int = Field(default=config.DEFAULT_MAX_BATCH_ROWS, ge=1)
    capture_prefix: str = "capture"
    capture_sample_rate: float = Field(default=config.DEFAULT_CAPTURE_SAMPLE_RATE, ge=0.0, le=1.0)
    capture_max_rows: int = Field(default=config.DEFAULT_CAPTURE_MAX_ROWS, ge=1)
    capture_max_age_seconds: float = Field(default=config.DEFAULT_CAPTURE_MAX_AGE_SECONDS, gt=0)


class LogOutcomeSettings(_Common):
    """Settings of the log-outcome function."""

    outcomes_prefix: str = "outcomes"
    max_outcomes: int = Field(default=config.DEFAULT_MAX_OUTCOMES, ge=1)
    model_alias: str = "champion"
