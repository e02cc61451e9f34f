"""Streaming accumulators of one capture window: drift counts with a KS sample, and labelled rows for live quality."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from functions.domain.baseline import bin_counts
from functions.domain.card import DriftBaseline, Task
from functions.domain.drift.report import (
    FALLBACK_METRIC,
    MISSING_LABEL,
    DriftReport,
    FeatureDistribution,
    PerformanceResult,
    _categorical_feature_from_counts,
    _category_distribution,
    _numeric_feature_from_counts,
    _shares_or_zero,
    _verdict,
    bin_labels,
)
from functions.domain.drift.statistics import (
    _numeric,
    _numeric_cells,
    categorical_psi,
    category_counts,
    live_metrics,
    performance_check,
    psi,
)
from functions.domain.drift_policy import DriftPolicy

DEFAULT_SAMPLE_SIZE = 5000
DEFAULT_CHUNK_ROWS = 8192


def row_hashes(row_ids: Sequence[str]) -> npt.NDArray[np.uint64]:
    """A stable 64-bit hash of each row id: the first 8 bytes of its BLAKE2b digest, big-endian.

    Stable across processes and machines (unlike ``hash()``), so samples drawn in different
    places by these keys can be merged.

    Args:
        row_ids: the rows' ids (``<request_id>-<i>``, as predict answers them).

    Returns:
        One key per row id, in order.
    """
    digests = b"".join(hashlib.blake2b(row_id.encode(), digest_size=8).digest() for row_id in row_ids)
    return np.frombuffer(digests, dtype=">u8").astype(np.uint64)


class _BottomK:
    """The ``capacity`` rows with the smallest keys (hashes of their row ids) of everything offered.

    Rows are kept in ascending key order. Because the choice depends on the keys only, the
    bottom-k of the union of two streams is the bottom-k of their two bottom-k sets: merging
    samples equals sampling once. While fewer than ``capacity`` rows have been offered, the
    sample is every row. Distinct row ids collide with probability about ``k * n / 2**64``.
    """

    def __init__(self, capacity: int, width: int) -> None:
        if capacity < 1:
            raise ValueError("the sample needs room for at least one row")
        self.capacity = capacity
        self.keys = np.empty(0, dtype=np.uint64)
        self.rows = np.empty((0, width), dtype=np.float64)

    def offer(self, keys: npt.NDArray[np.uint64], rows: npt.NDArray[np.float64]) -> None:
        if self.keys.size >= self.capacity:
            below = keys < self.keys[-1]  # nothing at or above the largest kept key can enter
            keys, rows = keys[below], rows[below]
        if keys.size == 0:
            return
        all_keys = np.concatenate([self.keys, keys])
        order = np.argsort(all_keys, kind="stable")[: self.capacity]
        self.keys = all_keys[order]
        self.rows = np.concatenate([self.rows, rows])[order]

    def column(self, j: int) -> npt.NDArray[np.float64]:
        return self.rows[:, j]


class IncompatiblePartialError(ValueError):
    """Drift statistics of different baselines (or tasks, or sample sizes) cannot be merged."""


class NumericCounts(BaseModel):
    """One numeric feature's live counts over its baseline bins."""

    model_config = ConfigDict(extra="forbid")

    bins: list[int] = Field(description="Live values per baseline bin, in bin order.")
    missing: int = Field(ge=0, description="Live values that were missing.")


class DriftPartial(BaseModel):
    """The mergeable state of a :class:`DriftAccumulator` as JSON: what one slice of rows (an hour) adds to a window.

    ``sample_keys`` are the KS sample's row-id hashes (:func:`row_hashes`, 16 hex digits, ascending,
    at most ``sample_size``); ``sample`` holds each numeric feature's values of those rows in the
    same order, ``null`` where missing.
    """

    model_config = ConfigDict(extra="forbid")

    format: Literal[1] = 1
    baseline_sha256: str = Field(description="SHA-256 of the baseline's JSON: partials of one baseline only merge.")
    task: Task
    sample_size: int = Field(ge=1)
    n_rows: int = Field(ge=0)
    numeric: dict[str, NumericCounts]
    categorical: dict[str, dict[str, int]]
    output_rows: int = Field(default=0, ge=0)
    output_bins: list[int] | None = Field(default=None, description="Model outputs per prediction bin (binned tasks).")
    output_labels: dict[str, int] = Field(default_factory=dict, description="Predicted labels (multiclass).")
    sample_keys: list[str] = Field(default_factory=list)
    sample: dict[str, list[float | None]] = Field(default_factory=dict)


def baseline_fingerprint(baseline: DriftBaseline) -> str:
    """SHA-256 of the baseline's JSON: equal for the same card's baseline wherever it was read.

    Args:
        baseline: a drift baseline.

    Returns:
        64 hex digits.
    """
    return hashlib.sha256(baseline.model_dump_json().encode()).hexdigest()


class DriftAccumulator:
    """Streams one capture window into bounded counts, for the same verdict as :func:`evaluate_drift`.

    Memory depends on the baseline (bins, categories), the sample size and the chunk size, never
    on how many rows are added: numeric features keep per-bin and missing counts over the
    baseline's edges, categorical features keep category counts, the model output keeps its
    distribution's counts, and KS uses a sample of at most ``sample_size`` rows of the numeric
    features: the rows with the smallest hashes of their row ids (see :func:`row_hashes`). Rows
    are buffered and counted a chunk at a time, so adding many small requests costs little more
    than adding one large one.

    The statistics are mergeable: accumulators of the same baseline, fed disjoint rows (e.g. one
    per hour, anywhere), :meth:`merge` into the accumulator of all those rows, and
    :meth:`to_partial` / :meth:`from_partial` carry one through JSON. Merged counts and sample
    equal those of a single pass, so the report does too.

    When the window has at most ``sample_size`` rows the sample holds every row and
    :meth:`report` equals :func:`evaluate_drift` on the same rows exactly; beyond that, only the
    KS results differ, as a sample's would (which rows are sampled depends on their ids only).
    """

    def __init__(
        self,
        baseline: DriftBaseline,
        task: Task,
        *,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        """Start an empty window.

        Args:
            baseline: the drift baseline from the model card.
            task: the model's task (decides how outputs are binned; see :func:`prediction_psi`).
            sample_size: rows kept for the KS tests (the ``k`` of the bottom-k sample).
            chunk_rows: rows buffered before they are counted.
        """
        self.baseline = baseline
        self.task = task
        self.sample_size = sample_size
        self.chunk_rows = max(1, chunk_rows)
        self._numeric = list(baseline.numeric)
        self._categorical = list(baseline.categorical)
        self._edges = {name: np.asarray(spec.edges, dtype=np.float64) for name, spec in baseline.numeric.items()}
        self._bins = {name: np.zeros(edges.size - 1) for name, edges in self._edges.items()}
        self._missing = dict.fromkeys(self._numeric, 0)
        self._categories: dict[str, dict[str, int]] = {name: {} for name in self._categorical}
        self._sample = _BottomK(sample_size, len(self._numeric))
        self._output_bins: npt.NDArray[np.float64] | None = None
        self._output_labels: dict[str, int] = {}
        self._output_rows = 0
        self._pending: dict[str, list[Any]] = {name: [] for name in (*self._numeric, *self._categorical)}
        self._pending_outputs: list[Any] = []
        self._pending_ids: list[str] = []
        self._pending_rows = 0
        self._fingerprint: str | None = None
        self.n_rows = 0

    def add(
        self,
        columns: Mapping[str, Sequence[Any] | npt.NDArray[Any]],
        outputs: Sequence[Any] | npt.NDArray[Any] | None = None,
        n_rows: int | None = None,
        *,
        row_ids: Sequence[str],
    ) -> None:
        """Add the rows of one request.

        Args:
            columns: feature name to the request's values; every baseline feature is required,
                other columns are ignored. Missing numeric values are NaN or None.
            outputs: the request's model outputs in a form :func:`prediction_psi` takes (for
                classifiers, ``predict_proba`` rows), or None when they were not captured.
            n_rows: rows in the request; the length of the first baseline column when None.
            row_ids: one id per row, unique in the window (``CapturedRequest.row_ids``); the KS
                sample keeps the rows whose ids hash lowest.
        """
        names = self._pending
        absent = [name for name in names if name not in columns]
        if absent:
            raise ValueError(f"rows lack baseline features: {', '.join(sorted(absent))}")
        if n_rows is None:
            n_rows = len(columns[next(iter(names))]) if names else len(row_ids)
        if len(row_ids) != n_rows:
            raise ValueError(f"{len(row_ids)} row id(s) for {n_rows} row(s)")
        if self._numeric:
            self._pending_ids.extend(row_ids)
        for name, pending in names.items():
            pending.extend(columns[name])
        if outputs is not None:
            self._pending_outputs.extend(outputs)
        self._pending_rows += n_rows
        self.n_rows += n_rows
        if self._pending_rows >= self.chunk_rows:
            self._flush()

    # -- counting -------------------------------------------------------------------------------
    def _flush(self) -> None:
        if self._numeric and self._pending[self._numeric[0]]:
            block = np.column_stack([np.asarray(self._pending[name], dtype=np.float64) for name in self._numeric])
            for j, name in enumerate(self._numeric):
                column = block[:, j]
                missing = np.isnan(column)
                self._missing[name] += int(missing.sum())
                self._bins[name] += bin_counts(column[~missing], self._edges[name])
            self._sample.offer(row_hashes(self._pending_ids), block)
        for name in self._categorical:
            if self._pending[name]:
                _merge(self._categories[name], category_counts(self._pending[name]))
        if self._pending_outputs:
            self._count_outputs(np.asarray(self._pending_outputs))
        for pending in self._pending.values():
            pending.clear()
        self._pending_outputs.clear()
        self._pending_ids.clear()
        self._pending_rows = 0

    def _count_outputs(self, outputs: npt.NDArray[Any]) -> None:
        prediction = self.baseline.prediction
        if self.task == "multiclass_classification":
            if prediction.class_frequencies is None:
                raise ValueError("the prediction baseline has no class frequencies")
            if outputs.ndim == 2:
                outputs = np.asarray(list(prediction.class_frequencies), dtype=object)[np.argmax(outputs, axis=1)]
            _merge(self._output_labels, category_counts(outputs))
            self._output_rows += int(outputs.shape[0])
            return
        if prediction.edges is None:
            raise ValueError(f"the prediction baseline has no bins for {self.task}")
        if self.task == "binary_classification" and outputs.ndim == 2:
            outputs = outputs[:, 1]
        values = _numeric(outputs)
        counts = bin_counts(values[~np.isnan(values)], prediction.edges)
        self._output_bins = counts if self._output_bins is None else self._output_bins + counts
        self._output_rows += int(values.size)

    # -- results ----------------------------------------------------------------------------------
    def _prediction_psi(self) -> float | None:
        prediction = self.baseline.prediction
        if self.task == "multiclass_classification":
            if not self._output_labels or prediction.class_frequencies is None:
                return None
            return categorical_psi(prediction.class_frequencies, _sorted(self._output_labels))
        if self._output_bins is None or prediction.proportions is None or self._output_bins.sum() <= 0:
            return None
        return psi(prediction.proportions, self._output_bins)

    def report(self, policy: DriftPolicy | None = None) -> DriftReport:
        """The verdict on every row added so far (see :func:`evaluate_drift` for the rule).

        Args:
            policy: thresholds; the defaults of :class:`DriftPolicy` when None.

        Returns:
            INSUFFICIENT_DATA below ``policy.min_rows`` rows, else the full report.
        """
        self._flush()
        policy = policy or DriftPolicy()
        if self.n_rows < policy.min_rows:
            return DriftReport(verdict="INSUFFICIENT_DATA", n_rows=self.n_rows, drifted=[], policy=policy)
        features = [
            _numeric_feature_from_counts(
                name,
                spec,
                counts=self._bins[name],
                missing=self._missing[name],
                reference=self.baseline.reference_sample.get(name, []),
                sample=self._sample.column(j),
            )
            for j, (name, spec) in enumerate(self.baseline.numeric.items())
        ]
        features += [
            _categorical_feature_from_counts(name, spec, _sorted(self._categories[name]))
            for name, spec in self.baseline.categorical.items()
            if self._categories[name]
        ]
        return _verdict(features, self._prediction_psi(), self.n_rows, policy)

    def sample(self, name: str) -> npt.NDArray[np.float64]:
        """The KS sample of one numeric feature (every value while the window is small).

        Args:
            name: a numeric feature of the baseline.

        Returns:
            A copy of the sampled values in the order of their row-id hashes, NaN where a sampled
            row had the feature missing.
        """
        self._flush()
        return self._sample.column(self._numeric.index(name)).copy()

    # -- merging ----------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        """SHA-256 of the baseline (see :func:`baseline_fingerprint`), computed once."""
        if self._fingerprint is None:
            self._fingerprint = baseline_fingerprint(self.baseline)
        return self._fingerprint

    def _require_compatible(self, fingerprint: str | None, task: Task, sample_size: int) -> None:
        """``fingerprint`` None: the other side holds this very baseline object."""
        if fingerprint is not None and fingerprint != self.fingerprint:
            raise IncompatiblePartialError(
                "cannot merge drift statistics of different baselines "
                f"({fingerprint[:12]}... into {self.fingerprint[:12]}...)"
            )
        if task != self.task:
            raise IncompatiblePartialError(f"cannot merge drift statistics of a {task} model into a {self.task} one")
        if sample_size != self.sample_size:
            raise IncompatiblePartialError(
                f"cannot merge drift statistics with KS samples of {sample_size} and {self.sample_size} rows"
            )

    def merge(self, other: DriftAccumulator) -> DriftAccumulator:
        """Add another accumulator's rows to this one, as if they had been added here.

        The two must have seen disjoint rows (a row in both would be counted twice).

        Args:
            other: an accumulator of the same baseline, task and sample size; left unchanged.

        Returns:
            This accumulator, holding both windows' counts and the bottom-k sample of their union.

        Raises:
            IncompatiblePartialError: when the baselines, tasks or sample sizes differ.
        """
        if other is self:
            raise ValueError("an accumulator cannot merge itself (its rows would count twice)")
        same = other.baseline is self.baseline  # the common case: no need to hash the baseline
        self._require_compatible(None if same else other.fingerprint, other.task, other.sample_size)
        self._flush()
        other._flush()
        for name in self._numeric:
            self._bins[name] += other._bins[name]
            self._missing[name] += other._missing[name]
        for name in self._categorical:
            _merge(self._categories[name], other._categories[name])
        if other._output_bins is not None:
            self._output_bins = (
                other._output_bins.copy() if self._output_bins is None else self._output_bins + other._output_bins
            )
        _merge(self._output_labels, other._output_labels)
        self._output_rows += other._output_rows
        self._sample.offer(other._sample.keys, other._sample.rows)
        self.n_rows += other.n_rows
        return self

    def to_partial(self) -> DriftPartial:
        """This accumulator's state as a JSON-ready partial (``.model_dump_json()`` to write it).

        Returns:
            The counts, the row count and the KS sample (see :class:`DriftPartial`).
        """
        self._flush()
        keys = self._sample.keys.tolist()
        return DriftPartial(
            baseline_sha256=self.fingerprint,
            task=self.task,
            sample_size=self.sample_size,
            n_rows=self.n_rows,
            numeric={
                name: NumericCounts(bins=[int(c) for c in self._bins[name].tolist()], missing=self._missing[name])
                for name in self._numeric
            },
            categorical={name: _sorted(self._categories[name]) for name in self._categorical},
            output_rows=self._output_rows,
            output_bins=None if self._output_bins is None else [int(c) for c in self._output_bins.tolist()],
            output_labels=_sorted(self._output_labels),
            sample_keys=[f"{k:016x}" for k in keys],
            sample={
                name: [None if math.isnan(v) else v for v in self._sample.column(j).tolist()]
                for j, name in enumerate(self._numeric)
            },
        )

    @classmethod
    def from_partial(
        cls, baseline: DriftBaseline, partial: DriftPartial | Mapping[str, Any], *, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> DriftAccumulator:
        """An accumulator holding what a partial recorded, ready to :meth:`merge` or to add rows to.

        Args:
            baseline: the drift baseline the partial was made against (the card's).
            partial: a :class:`DriftPartial`, or its JSON form parsed to a dict.
            chunk_rows: rows buffered before they are counted, for rows added later.

        Returns:
            The accumulator.

        Raises:
            IncompatiblePartialError: when the partial was made against another baseline.
            ValueError: when the partial does not fit the baseline's features and bins.
        """
        return cls.from_partials(baseline, [partial], chunk_rows=chunk_rows)

    @classmethod
    def from_partials(
        cls,
        baseline: DriftBaseline,
        partials: Sequence[DriftPartial | Mapping[str, Any]],
        *,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> DriftAccumulator:
        """The merge of several partials of one baseline (e.g. a window's hours), hashing the baseline once.

        Args:
            baseline: the drift baseline the partials were made against.
            partials: at least one partial (see :meth:`from_partial`).
            chunk_rows: rows buffered before they are counted, for rows added later.

        Returns:
            An accumulator equal to one that was fed every partial's rows.

        Raises:
            IncompatiblePartialError: when a partial was made against another baseline, or the
                partials' tasks or sample sizes differ.
            ValueError: when there is no partial, or one does not fit the baseline.
        """
        docs = [p if isinstance(p, DriftPartial) else DriftPartial.model_validate(p) for p in partials]
        if not docs:
            raise ValueError("no partial to load")
        fingerprint = baseline_fingerprint(baseline)
        total: DriftAccumulator | None = None
        for doc in docs:
            acc = cls(baseline, doc.task, sample_size=doc.sample_size, chunk_rows=chunk_rows)
            acc._fingerprint = fingerprint
            acc._require_compatible(doc.baseline_sha256, doc.task, doc.sample_size)
            acc._load(doc)
            total = acc if total is None else total.merge(acc)
        assert total is not None
        return total

    def _load(self, doc: DriftPartial) -> None:
        if list(doc.numeric) != self._numeric or list(doc.categorical) != self._categorical:
            raise ValueError("the partial's features are not the baseline's")
        for name, counts in doc.numeric.items():
            if len(counts.bins) != self._bins[name].size:
                raise ValueError(f"{name}: {len(counts.bins)} bin counts for {self._bins[name].size} bins")
            self._bins[name] = np.asarray(counts.bins, dtype=np.float64)
            self._missing[name] = counts.missing
        self._categories = {name: dict(counts) for name, counts in doc.categorical.items()}
        self._output_rows = doc.output_rows
        self._output_bins = None if doc.output_bins is None else np.asarray(doc.output_bins, dtype=np.float64)
        self._output_labels = dict(doc.output_labels)
        self._sample.keys, self._sample.rows = _sample_arrays(doc, self._numeric)
        self.n_rows = doc.n_rows

    def distributions(self) -> list[FeatureDistribution]:
        """Reference and current shares per feature, then of the model output when it was captured.

        A numeric feature gets a ``(missing)`` cell when either side has missing values; a
        categorical feature gets an ``(unseen)`` cell when live values fall outside the baseline.

        Returns:
            One distribution per baseline feature, in baseline order, then ``model output``.
        """
        self._flush()
        out: list[FeatureDistribution] = []
        for name, spec in self.baseline.numeric.items():
            expected, actual = _numeric_cells(spec, self._bins[name], self._missing[name])
            labels = bin_labels(spec.edges)
            if spec.missing <= 0 and self._missing[name] == 0:
                expected, actual = expected[:-1], actual[:-1]
            else:
                labels.append(MISSING_LABEL)
            out.append(
                FeatureDistribution(
                    name=name, kind="numeric", labels=labels, reference=expected, current=_shares_or_zero(actual)
                )
            )
        for name, cat in self.baseline.categorical.items():
            out.append(_category_distribution(name, "categorical", cat.frequencies, self._categories[name]))
        prediction = self.baseline.prediction
        if self._output_rows:
            if self.task == "multiclass_classification" and prediction.class_frequencies is not None:
                out.append(
                    _category_distribution(
                        "model output", "prediction", prediction.class_frequencies, self._output_labels
                    )
                )
            elif prediction.edges is not None and prediction.proportions is not None and self._output_bins is not None:
                out.append(
                    FeatureDistribution(
                        name="model output",
                        kind="prediction",
                        labels=bin_labels(prediction.edges),
                        reference=list(prediction.proportions),
                        current=_shares_or_zero(self._output_bins.tolist()),
                    )
                )
        return out


def _merge(total: dict[str, int], counts: Mapping[str, int]) -> None:
    for key, count in counts.items():
        total[key] = total.get(key, 0) + count


def _sample_arrays(doc: DriftPartial, numeric: list[str]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
    keys = np.asarray([int(k, 16) for k in doc.sample_keys], dtype=np.uint64)
    if keys.size > doc.sample_size or np.any(keys[1:] <= keys[:-1]):
        raise ValueError("the partial's sample keys must be ascending and at most sample_size")
    if set(doc.sample) != set(numeric) or any(len(doc.sample[name]) != keys.size for name in numeric):
        raise ValueError("the partial's sample needs one value per key for every numeric feature")
    rows = np.empty((keys.size, len(numeric)), dtype=np.float64)
    for j, name in enumerate(numeric):
        rows[:, j] = np.asarray(doc.sample[name], dtype=np.float64)  # None -> NaN
    return keys, rows


def _sorted(counts: Mapping[str, int]) -> dict[str, int]:
    """Counts in key order, as :func:`category_counts` gives them, so sums over cells ignore arrival order."""
    return dict(sorted(counts.items()))


class PerformanceAccumulator:
    """Collects the labelled rows of a window (outputs joined with outcomes) and measures them.

    Metrics such as ROC AUC need every labelled row at once, so this keeps them, compactly, in
    numpy chunks: about ``8 * (2 + n_classes)`` bytes a labelled row, less than the outcomes
    map they were joined from. Classifier labels are matched to the card's classes by their
    string form (as the drift baseline keys them); an outcome naming no known class is counted
    in ``unknown_labels`` and left out.
    """

    def __init__(self, task: Task, classes: Sequence[str | int] | None, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        """Start with no labelled rows.

        Args:
            task: the model's task.
            classes: the card's classes in model order (classifiers).
            chunk_rows: rows buffered before they are converted to arrays.
        """
        if task != "regression" and not classes:
            raise ValueError("a classifier's classes are needed to match its outcomes")
        self.task = task
        self.chunk_rows = max(1, chunk_rows)
        self._index = {str(c): i for i, c in enumerate(classes or [])}
        self.n_classes = len(self._index)
        self._actual: list[Any] = []
        self._predicted: list[Any] = []
        self._proba: list[Any] = []
        self._chunks: list[tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.float64] | None]] = []
        self.labeled_rows = 0
        self.unknown_labels = 0
        self._without_probabilities = False

    def add(
        self,
        actuals: Sequence[Any],
        predictions: Sequence[Any],
        probabilities: Sequence[Sequence[float]] | None = None,
    ) -> None:
        """Add labelled rows: the outcome, the prediction served and (classifiers) its probabilities.

        Args:
            actuals: the outcomes, one per row.
            predictions: the predictions served for the same rows.
            probabilities: the ``predict_proba`` rows served, or None.
        """
        if not (len(actuals) == len(predictions) and (probabilities is None or len(probabilities) == len(actuals))):
            raise ValueError("actuals, predictions and probabilities must have one entry per row")
        if self.task == "regression":
            self._actual.extend(actuals)
            self._predicted.extend(predictions)
            self.labeled_rows += len(actuals)
        else:
            self._add_classified(actuals, predictions, probabilities)
        if len(self._actual) >= self.chunk_rows:
            self._flush()

    def _add_classified(
        self, actuals: Sequence[Any], predictions: Sequence[Any], probabilities: Sequence[Sequence[float]] | None
    ) -> None:
        for i, actual in enumerate(actuals):
            index = self._index.get(str(actual))
            if index is None:
                self.unknown_labels += 1
                continue
            self._actual.append(index)
            if probabilities is None:
                self._without_probabilities = True
                self._predicted.append(self._index.get(str(predictions[i]), -1))
            else:
                row = probabilities[i]
                self._proba.append(row)
                self._predicted.append(int(np.argmax(row)))
            self.labeled_rows += 1

    def _flush(self) -> None:
        if not self._actual:
            return
        chunk: tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.float64] | None]
        if self.task == "regression":
            chunk = (np.asarray(self._actual, dtype=np.float64), np.asarray(self._predicted, dtype=np.float64), None)
        else:
            proba = np.asarray(self._proba, dtype=np.float64) if self._proba else None
            chunk = (np.asarray(self._actual, dtype=np.int64), np.asarray(self._predicted, dtype=np.int64), proba)
        self._chunks.append(chunk)
        self._actual, self._predicted, self._proba = [], [], []

    def metrics(self) -> dict[str, float]:
        """Every metric measurable on the labelled rows so far.

        Returns:
            Metric name to value (see :func:`live_metrics`); empty without labelled rows.
        """
        self._flush()
        if not self._chunks:
            return {}
        y = np.concatenate([c[0] for c in self._chunks])
        predicted = np.concatenate([c[1] for c in self._chunks])
        probabilities = None
        if self.task != "regression" and not self._without_probabilities:
            probabilities = np.concatenate([c[2] for c in self._chunks if c[2] is not None])
        return live_metrics(self.task, self.n_classes, y, predicted, probabilities)

    def result(
        self, validation_metrics: Mapping[str, float], primary_metric: str, *, tolerance: float, min_rows: int
    ) -> PerformanceResult:
        """Compare the window's primary metric with its validation value.

        Args:
            validation_metrics: the card's validation metrics.
            primary_metric: the card's primary metric.
            tolerance: largest acceptable relative drop (see :func:`performance_check`).
            min_rows: labelled rows needed before a judgement is made.

        Returns:
            INSUFFICIENT_DATA below ``min_rows`` labelled rows or when no comparable metric can
            be measured; else OK or DEGRADED, with the relative drop. When the primary metric
            cannot be measured on the window (e.g. ROC AUC with one class among the labels), the
            task's fallback metric is compared instead and ``note`` says so.
        """
        from functions.domain.training import LOWER_IS_BETTER

        live = self.metrics()
        base = {"tolerance": tolerance, "labeled_rows": self.labeled_rows, "min_rows": min_rows, "metrics": live}
        notes = [f"{self.unknown_labels} outcome(s) named no known class"] if self.unknown_labels else []
        if self.labeled_rows < min_rows:
            return PerformanceResult(
                status="INSUFFICIENT_DATA",
                metric=primary_metric,
                validation_value=validation_metrics.get(primary_metric),
                live_value=live.get(primary_metric),
                note="; ".join([f"{self.labeled_rows} labelled row(s), {min_rows} needed", *notes]),
                **base,
            )
        metric = primary_metric
        if metric not in live or metric not in validation_metrics:
            metric = FALLBACK_METRIC[self.task]
            notes.insert(0, f"{primary_metric} cannot be measured on this window; compared {metric} instead")
        if metric not in live or metric not in validation_metrics:
            return PerformanceResult(
                status="INSUFFICIENT_DATA", metric=metric, note="; ".join(["no comparable metric", *notes]), **base
            )
        drop, degraded = performance_check(
            metric, validation_metrics[metric], live[metric], metric in LOWER_IS_BETTER, tolerance
        )
        return PerformanceResult(
            status="DEGRADED" if degraded else "OK",
            metric=metric,
            validation_value=validation_metrics[metric],
            live_value=live[metric],
            relative_drop=drop,
            degraded=degraded,
            note="; ".join(notes),
            **base,
        )
