"""What the calls pages ask of a store, and which store answers: PostgreSQL when POSTGRES_DSN is
set, else the JSON files every robot writes into its logs_dir (the embedded default)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from voiceplat.storage.records import CallRecord, CallSnapshot, CallStatus

if TYPE_CHECKING:
    from voiceplat.robot import Robot

TEXT_MAX = 200


class CallQuery(BaseModel):
    """The filters of the calls list; every one is optional. Dates are UTC days, both inclusive."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    robot: str | None = Field(None, max_length=200)
    date_from: date | None = Field(None, description="First day (UTC), inclusive.")
    date_to: date | None = Field(None, description="Last day (UTC), inclusive.")
    status: CallStatus | None = None
    end_reason: str | None = Field(None, max_length=100)
    caller: str | None = Field(None, max_length=200, description="Part of the caller's number.")
    min_duration_s: float | None = Field(None, ge=0)
    max_duration_s: float | None = Field(None, ge=0)
    text: str | None = Field(
        None, max_length=TEXT_MAX, description="Words in any turn's text (case-insensitive)."
    )
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(50, ge=1, le=200)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: object) -> object:
        # An HTML GET form sends every field, the empty ones as "": those are "no filter"
        # (blank text too: it would otherwise match every call with a turn).
        if isinstance(data, Mapping):
            return {
                key: value
                for key, value in data.items()
                if not (isinstance(value, str) and not value.strip())
            }
        return data

    @model_validator(mode="after")
    def _ranges(self) -> CallQuery:
        if self.date_from and self.date_to and self.date_to < self.date_from:
            raise ValueError(f"date_to ({self.date_to}) is before date_from ({self.date_from})")
        if (
            self.min_duration_s is not None
            and self.max_duration_s is not None
            and self.max_duration_s < self.min_duration_s
        ):
            raise ValueError(
                f"max_duration_s ({self.max_duration_s:g}) is below "
                f"min_duration_s ({self.min_duration_s:g})"
            )
        return self

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def filters(self) -> dict[str, str]:
        """The set filters as strings (for links that keep them), without page."""
        values = self.model_dump(exclude={"page"}, exclude_none=True)
        if values.get("per_page") == 50:
            del values["per_page"]
        return {key: str(value) for key, value in values.items()}


class CallPage(BaseModel):
    items: list[CallRecord]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


class RobotStats(BaseModel):
    calls_today: int = 0
    """Calls started today (UTC)."""
    v2v_p50_ms: float | None = None
    v2v_p95_ms: float | None = None
    v2v_ms: list[float] = Field(default_factory=list)
    """The v2v of every robot turn of the robot's last N calls (for a histogram)."""
    end_reasons: dict[str, int] = Field(default_factory=dict)
    """Over the last N calls."""


class CallStoreError(RuntimeError):
    """The store cannot answer now (PostgreSQL down): the pages say so with a 503."""


class CallStore(Protocol):
    async def list_calls(self, query: CallQuery) -> CallPage: ...

    async def get_call(self, call_id: str) -> CallSnapshot | None: ...

    async def robot_stats(self, robot: str, last_calls: int = 100) -> RobotStats: ...

    async def aclose(self) -> None: ...


def call_store_for(env: Mapping[str, str], robots: Mapping[str, Robot]) -> CallStore:
    """PostgreSQL when POSTGRES_DSN is set (connected lazily, on the first query), else the JSON
    files of each robot's logs_dir."""
    logs_dirs = {name: robot.logs_dir for name, robot in robots.items()}
    if dsn := env.get("POSTGRES_DSN"):
        from voiceplat.web.calls.postgres_store import PostgresCallStore

        # The JSON files still give each call's pipeline log (PostgreSQL keeps none).
        return PostgresCallStore(dsn, logs_dirs)
    from voiceplat.web.calls.json_store import JsonCallStore

    return JsonCallStore(logs_dirs)
