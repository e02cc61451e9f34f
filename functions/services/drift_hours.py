"""Hourly drift aggregates: built from capture by a small scheduled step, grown by whoever reads an hour next.

Every ``drift.aggregate_schedule`` the drift-check function runs ``{"action": "aggregate"}``: for
the current and the previous hour it reads the capture objects no aggregate covers yet and adds
them to the hour's aggregate (:class:`~functions.domain.drift.hourly.HourAggregate`). A drift-check
then reads one aggregate per whole hour of its window instead of every capture object, plus the
few objects written since the last aggregation, which it adds too. Nothing depends on the step
having run: an hour without an aggregate is read from capture and its aggregate written then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from functions.adapters.capture_reader import CapturedRequest
from functions.adapters.skipped import SkippedRecords
from functions.domain.card import ModelCard
from functions.domain.drift import DriftAccumulator, DriftPartial, baseline_fingerprint, row_hashes
from functions.domain.drift.hourly import HOUR, HourAggregate, HourRows, JoinRows, VersionHour, hour_of
from functions.errors import ModelNotFoundError, RegistryError, StorageError
from functions.observability import logger

DEFAULT_AGGREGATE_HOURS = 2
# What the aggregation schedule sends the drift-check function (infra and the local scheduler).
AGGREGATE_EVENT: dict[str, str] = {"action": "aggregate"}


class HourCaptures(Protocol):
    """Capture objects by hour, and the requests they hold (see ``S3CaptureReader``)."""

    def keys_by_hour(self, model_name: str, start: datetime, end: datetime) -> dict[datetime, list[str]]: ...

    def read_keys(
        self,
        keys: Iterable[str],
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        skipped: SkippedRecords | None = None,
    ) -> Iterator[CapturedRequest]: ...


class AggregateStore(Protocol):
    """Where hourly aggregates live (see ``S3AggregateStore``)."""

    def hours(self, model_name: str, start: datetime, end: datetime) -> set[datetime]: ...

    def get(self, model_name: str, hour: datetime) -> tuple[HourAggregate | None, str] | None: ...

    def get_rows(self, aggregate: HourAggregate) -> HourRows | None: ...

    def put(self, aggregate: HourAggregate, rows: HourRows, etag: str | None) -> bool: ...


class Cards:
    """Cards by version, each read from the registry once; None for a version without a readable one."""

    def __init__(self, registry: Any, model_name: str, known: Sequence[ModelCard] = ()) -> None:
        """Remember ``known`` cards; read others from ``registry`` (``get_card(name, version)``; None: none)."""
        self._registry = registry
        self.model_name = model_name
        self._cards: dict[int, ModelCard | None] = {card.version: card for card in known}
        self._fingerprints: dict[int, str] = {}

    def __call__(self, version: int) -> ModelCard | None:
        if version not in self._cards:
            self._cards[version] = None
            if self._registry is not None:
                try:
                    self._cards[version] = self._registry.get_card(self.model_name, version)
                except ModelNotFoundError:
                    pass
                except RegistryError as exc:  # its rows are counted, not judged; the checked version's card was read
                    logger.warning("drift aggregate: card unreadable", extra={"version": version, "error": str(exc)})
        return self._cards[version]

    def fingerprint(self, version: int) -> str | None:
        """The version's baseline fingerprint (what its partials carry), computed once; None without a card."""
        card = self(version)
        if card is None:
            return None
        if version not in self._fingerprints:
            self._fingerprints[version] = baseline_fingerprint(card.baseline)
        return self._fingerprints[version]


def fits(aggregate: HourAggregate, cards: Cards, sample_size: int) -> bool:
    """Whether ``aggregate``'s statistics can be grown and merged: same KS sample size, and each version's
    partial made against that version's card as it is now (a card read since, a baseline changed by an
    upgrade of the card format, all mean rebuilding the hour)."""
    if aggregate.sample_size != sample_size:
        return False
    for version, entry in aggregate.versions.items():
        card = cards(version)
        if card is None:
            if entry.drift is not None:
                return False
            continue
        drift = entry.drift
        if drift is None or drift.baseline_sha256 != cards.fingerprint(version) or drift.task != card.task:
            return False
    return True


def model_outputs(card: ModelCard, request: CapturedRequest) -> Sequence[Any] | None:
    """The outputs the prediction baseline describes: probabilities for classifiers, values for regression."""
    if card.task == "regression":
        return request.predictions
    if request.probabilities is not None:
        return request.probabilities
    # Predicted labels still describe a multiclass model; a binary baseline bins probabilities only.
    return request.predictions if card.task == "multiclass_classification" else None


@dataclass
class _Version:
    rows: int = 0
    drift: DriftAccumulator | None = None
    join: JoinRows = field(default_factory=JoinRows)


class HourBuilder:
    """What capture objects not yet covered add to one hour's aggregate.

    Rows are added whole objects at a time (:meth:`add_objects`), so the grown aggregate covers
    exactly the objects it names. :meth:`aggregate` and :meth:`new_rows` give the result.
    """

    def __init__(
        self,
        model_name: str,
        hour: datetime,
        *,
        cards: Cards,
        sample_size: int,
        base: HourAggregate | None = None,
    ) -> None:
        self.model_name = model_name
        self.hour = hour_of(hour)
        self.sample_size = sample_size
        self.base = base
        self._cards = cards
        self._covered = set(base.capture_keys) if base else set()
        self._new_keys: list[str] = []
        self._versions: dict[int, _Version] = {}
        self._first: float | None = None
        self._last: float | None = None
        self.skipped = SkippedRecords()

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The ``keys`` this aggregate does not cover yet, in order."""
        return [key for key in keys if key not in self._covered]

    @property
    def grew(self) -> bool:
        return bool(self._new_keys)

    def add_objects(self, keys: Sequence[str], requests: Iterable[CapturedRequest]) -> None:
        """Cover ``keys``: ``requests`` must be every request they hold (corrupt ones counted in ``self.skipped``)."""
        for request in requests:
            self._add(request)
        self._new_keys.extend(keys)
        self._covered.update(keys)

    def _add(self, request: CapturedRequest) -> None:
        version = self._versions.setdefault(request.model_version, _Version())
        card = self._cards(request.model_version)
        version.rows += request.n_rows
        self._first = request.timestamp if self._first is None else min(self._first, request.timestamp)
        self._last = request.timestamp if self._last is None else max(self._last, request.timestamp)
        if card is None:
            return
        if version.drift is None:
            version.drift = DriftAccumulator(card.baseline, card.task, sample_size=self.sample_size)
        ids = request.row_ids
        version.drift.add(request.features, model_outputs(card, request), request.n_rows, row_ids=ids)
        version.join.extend(
            JoinRows(
                row_keys=[f"{k:016x}" for k in row_hashes(ids).tolist()],
                predictions=list(request.predictions),
                probabilities=None if request.probabilities is None else list(request.probabilities),
            )
        )

    def partial(self, version: int, card: ModelCard) -> DriftPartial | None:
        """``version``'s drift statistics over every object covered (the base's and the new), or None without rows."""
        parts: list[DriftPartial] = []
        base = self.base.versions.get(version) if self.base else None
        if base is not None and base.drift is not None:
            parts.append(base.drift)
        new = self._versions.get(version)
        if new is not None and new.drift is not None:
            parts.append(new.drift.to_partial())
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return DriftAccumulator.from_partials(card.baseline, parts).to_partial()

    def rows_by_version(self) -> dict[int, int]:
        """Rows served per version over every object covered."""
        rows = {v: entry.rows for v, entry in (self.base.versions.items() if self.base else ())}
        for version, entry in self._versions.items():
            rows[version] = rows.get(version, 0) + entry.rows
        return rows

    def new_rows(self, version: int) -> JoinRows:
        """The outputs of ``version``'s rows in the objects added here."""
        entry = self._versions.get(version)
        return entry.join if entry is not None else JoinRows()

    @property
    def first_ts(self) -> float | None:
        """Earliest record time covered (the base's and the new objects')."""
        times = [t for t in (self.base.first_ts if self.base else None, self._first) if t is not None]
        return min(times) if times else None

    @property
    def last_ts(self) -> float | None:
        """Latest record time covered."""
        times = [t for t in (self.base.last_ts if self.base else None, self._last) if t is not None]
        return max(times) if times else None

    def aggregate(self, now: datetime) -> HourAggregate:
        """The grown aggregate without its rows (``rows_object`` still the base's: the store writes the new rows)."""
        base = self.base
        versions: dict[int, VersionHour] = {}
        for version, rows in self.rows_by_version().items():
            card = self._cards(version)
            versions[version] = VersionHour(rows=rows, drift=None if card is None else self.partial(version, card))
        return HourAggregate(
            model_name=self.model_name,
            hour=self.hour,
            sample_size=self.sample_size,
            capture_keys=sorted(self._covered),
            first_ts=self.first_ts,
            last_ts=self.last_ts,
            skipped=(base.skipped if base else 0) + self.skipped.counts.get("capture", 0),
            versions=versions,
            rows_object=base.rows_object if base else None,
            updated_at=now,
        )

    def all_rows(self, stored: HourRows | None) -> HourRows:
        """The stored rows plus the new ones, by version."""
        out = HourRows(
            versions={v: rows.model_copy(deep=True) for v, rows in (stored.versions.items() if stored else ())}
        )
        for version, entry in self._versions.items():
            if entry.join.row_keys:
                out.versions.setdefault(version, JoinRows()).extend(entry.join)
        return out


@dataclass
class HourState:
    """One hour brought up to date: the builder, the stored rows read (if asked for), what was read and saved."""

    builder: HourBuilder
    stored_rows: HourRows | None
    read_objects: int
    saved: bool
    save_error: str | None = None  # why a save that was due failed (not a lost race)

    def rows(self, version: int) -> JoinRows:
        """``version``'s outputs over every object covered (needs ``with_rows``)."""
        out = JoinRows()
        if self.stored_rows is not None and version in self.stored_rows.versions:
            out.extend(self.stored_rows.versions[version])
        out.extend(self.builder.new_rows(version))
        return out


def bring_up_to_date(
    *,
    captures: HourCaptures,
    aggregates: AggregateStore,
    model_name: str,
    hour: datetime,
    keys: Sequence[str],
    stored: bool,
    cards: Cards,
    sample_size: int,
    now: datetime,
    save: bool = True,
    with_rows: bool = False,
    read: Callable[[Iterator[CapturedRequest]], Iterator[CapturedRequest]] = lambda r: r,
) -> HourState:
    """Read the hour's aggregate (when ``stored``), add the capture objects among ``keys`` it does not cover, save it.

    An aggregate of another KS sample size is not used (nor saved over): the hour is read again from
    capture. One that is unreadable, that does not fit the cards (see :func:`fits`), or whose rows
    object is gone (replaced meanwhile) is rebuilt from every object and saved over. A
    save that loses to another writer is dropped; a failed save is logged, since the hour's
    statistics are correct either way and only the next reader pays for it.

    Args:
        captures: the capture reader.
        aggregates: the aggregate store.
        model_name: the model.
        hour: the hour partition.
        keys: its capture objects (one listing of the window gives them).
        stored: whether the store listed an aggregate for the hour.
        cards: the card of each version seen.
        sample_size: the KS sample size.
        now: the time, recorded in the aggregate.
        save: write the grown aggregate.
        with_rows: the caller joins labels: read the stored rows too.
        read: wraps the stream of requests read (e.g. ``prefetched``).

    Returns:
        The hour's builder (base aggregate plus what was added), the stored rows, what was read and saved.

    Raises:
        StorageError: reading capture or the aggregate failed.
    """
    base, etag = None, None
    found = aggregates.get(model_name, hour) if stored else None
    if found is not None:
        base, etag = found  # base None: unreadable, rebuilt over it
        if base is not None and base.sample_size != sample_size:
            save, base = False, None  # another setting's aggregate: read around it, leave it be
        elif base is not None and not fits(base, cards, sample_size):
            base = None  # made against a card that differs now: rebuilt whole, saved over it
    covered = set(base.capture_keys) if base is not None else set()
    grows = any(key not in covered for key in keys)
    stored_rows = None
    if base is not None and (with_rows or (save and grows)):
        stored_rows = aggregates.get_rows(base)
        if stored_rows is None:
            base = None  # rebuilt whole, and saved over the aggregate read (same ETag)
    builder = HourBuilder(model_name, hour, cards=cards, sample_size=sample_size, base=base)
    new = builder.missing(keys)
    if new:
        builder.add_objects(new, read(captures.read_keys(new, skipped=builder.skipped)))
    saved, save_error = False, None
    if save and builder.grew:
        try:
            saved = aggregates.put(builder.aggregate(now), builder.all_rows(stored_rows), etag)
        except StorageError as exc:
            save_error = str(exc)
            logger.warning("drift aggregate not saved", extra={"hour": hour.isoformat(), "error": save_error})
    return HourState(
        builder=builder, stored_rows=stored_rows, read_objects=len(new), saved=saved, save_error=save_error
    )


def aggregate_recent(
    *,
    registry: Any,
    captures: HourCaptures,
    aggregates: AggregateStore,
    model_name: str,
    now: datetime,
    sample_size: int,
    hours: int = DEFAULT_AGGREGATE_HOURS,
) -> dict[str, Any]:
    """The scheduled step: bring the aggregates of the last ``hours`` hours (the current one included) up to date.

    Args:
        registry: reads the card of each version seen.
        captures: the capture reader.
        aggregates: the aggregate store.
        model_name: the model.
        now: the time of the step.
        sample_size: the KS sample size (drift-check's).
        hours: hours to look at, ending with the current one; the previous hour catches late flushes.

    Returns:
        What was done per hour: objects read, rows covered, saved.

    Raises:
        StorageError: a read failed, or (once every hour was tried) an aggregate due could not be saved:
            saving is this step's whole work, so the invocation fails, is retried, and counts as failed
            for good in the failures queue. A save that lost to another writer is not a failure.
    """
    start = hour_of(now) - (hours - 1) * HOUR
    by_hour = captures.keys_by_hour(model_name, start, now)
    stored = aggregates.hours(model_name, start, now)
    cards = Cards(registry, model_name)
    done: list[dict[str, Any]] = []
    unsaved: list[str] = []
    for hour, keys in by_hour.items():
        state = bring_up_to_date(
            captures=captures,
            aggregates=aggregates,
            model_name=model_name,
            hour=hour,
            keys=keys,
            stored=hour in stored,
            cards=cards,
            sample_size=sample_size,
            now=now,
        )
        done.append(
            {
                "hour": hour.isoformat(),
                "capture_objects": len(keys),
                "objects_read": state.read_objects,
                "rows": sum(state.builder.rows_by_version().values()),
                "saved": state.saved,
            }
        )
        if state.save_error is not None:
            unsaved.append(f"{hour.isoformat()} ({state.save_error})")
    summary = {
        "action": "aggregate",
        "model_name": model_name,
        "hours": done,
        "objects_read": sum(int(d["objects_read"]) for d in done),
    }
    logger.info("drift aggregates", extra=summary)
    if unsaved:
        raise StorageError(f"drift aggregates of {len(unsaved)} hour(s) not saved: {'; '.join(unsaved)}")
    return summary
