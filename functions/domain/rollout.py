"""The canary rollout as a small state machine: pure data and one decision function."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RolloutStatus = Literal["idle", "pending", "canary", "promoted", "rolled_back"]
ACTIVE: frozenset[str] = frozenset({"pending", "canary"})


class RollbackRecord(BaseModel):
    """When a bad canary was noticed and how long it took to take it out of traffic."""

    model_config = ConfigDict(extra="forbid")

    challenger_version: int
    reason: str
    canary_started_at: datetime
    detected_at: datetime
    reverted_at: datetime
    weight_at_detection: float

    @property
    def time_to_detect_seconds(self) -> float:
        return (self.detected_at - self.canary_started_at).total_seconds()

    @property
    def time_to_revert_seconds(self) -> float:
        return (self.reverted_at - self.detected_at).total_seconds()


class RolloutEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime
    what: str
    weight: float | None = None


class RolloutState(BaseModel):
    """Everything the controller knows about the current (or last) rollout of one model."""

    model_config = ConfigDict(extra="forbid")

    model_name: str
    status: RolloutStatus = "idle"
    paused: bool = False
    challenger_version: int | None = None
    champion_version: int | None = None
    stable_function_version: str | None = None
    canary_function_version: str | None = None
    stage_index: int = -1
    weight: float = 0.0
    requested_at: datetime | None = None
    started_at: datetime | None = None
    stage_started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    history: list[RolloutEvent] = Field(default_factory=list)
    rollbacks: list[RollbackRecord] = Field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def note(self, at: datetime, what: str, weight: float | None = None) -> None:
        self.history.append(RolloutEvent(at=at, what=what, weight=weight))
        del self.history[:-200]
