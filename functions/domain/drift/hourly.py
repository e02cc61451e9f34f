"""Hourly aggregates: what one hour of captured traffic adds to any window that holds the whole hour.

An :class:`HourAggregate` covers a set of capture objects of one hour partition. For each model
version that served rows in them it keeps the row count and, when the version has a card, the
mergeable drift statistics of those rows (:class:`DriftPartial`). Live performance joins labels
that arrive after the hour, so the rows' outputs are kept too (:class:`JoinRows`): inline while
they are few, else in a separate object that only a window with labels reads. Objects written to the partition later
(a late flush) are simply not yet covered: a reader adds them and the aggregate grows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.domain.drift.accumulation import DriftPartial

HOUR = timedelta(hours=1)


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment`` (timezone-aware)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class VersionHour(BaseModel):
    """One model version's rows in the objects an aggregate covers."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(ge=0, description="Rows this version served.")
    drift: DriftPartial | None = Field(
        default=None, description="Their drift statistics against the version's baseline; None without a card."
    )


class JoinRows(BaseModel):
    """The outputs of one version's rows, keyed by row-id hash, for joining labels that arrive later.

    ``row_keys`` are :func:`~functions.domain.drift.row_hashes` as 16 hex digits; ``predictions`` and
    ``probabilities`` hold each row's captured outputs in the same order.
    """

    model_config = ConfigDict(extra="forbid")

    row_keys: list[str] = Field(default_factory=list)
    predictions: list[Any] = Field(default_factory=list)
    probabilities: list[list[float] | None] | None = None

    def extend(self, other: JoinRows) -> None:
        """Append ``other``'s rows (disjoint from these), in place."""
        if other.probabilities is not None and self.probabilities is None:
            self.probabilities = [None] * len(self.row_keys)
        if self.probabilities is not None:
            self.probabilities.extend(other.probabilities or [None] * len(other.row_keys))
        self.row_keys.extend(other.row_keys)
        self.predictions.extend(other.predictions)


class HourRows(BaseModel):
    """The :class:`JoinRows` of every version an aggregate covers (the object ``rows_object`` names)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = 1
    versions: dict[int, JoinRows] = Field(default_factory=dict)


class HourAggregate(BaseModel):
    """The drift statistics of the capture objects of one hour partition that it names (see module doc)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = 1
    model_name: str
    hour: datetime = Field(description="The partition's hour (UTC).")
    sample_size: int = Field(ge=1, description="KS sample size of every partial; windows of another size re-read.")
    capture_keys: list[str] = Field(description="The capture objects covered, sorted.")
    first_ts: float | None = Field(default=None, description="Earliest record time covered (epoch seconds).")
    last_ts: float | None = Field(default=None, description="Latest record time covered.")
    skipped: int = Field(default=0, ge=0, description="Corrupt capture records (or objects) skipped while covering.")
    versions: dict[int, VersionHour] = Field(default_factory=dict)
    rows: HourRows | None = Field(
        default=None, description="The rows' outputs, inline when they are few (see ``S3AggregateStore``)."
    )
    rows_object: str | None = Field(default=None, description="Key of the rows' outputs when not inline.")
    updated_at: datetime

    @property
    def row_count(self) -> int:
        return sum(v.rows for v in self.versions.values())
