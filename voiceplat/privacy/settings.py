"""`privacy` in a robot's config.json: caller numbers in logs, how long call records are kept."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PrivacySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mask_caller_in_logs: bool = Field(
        False,
        description="phone numbers in the process's log lines are masked: +79161234567 -> +7***67",
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        description="call records (JSON files, PostgreSQL, MongoDB, Redis) of calls started "
        "longer ago than this are deleted at start and hourly; None: kept forever",
    )
