"""Streaming accumulators of one capture window: drift counts with a KS sample, and labelled rows for live quality."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

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


class _Reservoir:
    """A uniform random sample of at most ``capacity`` rows of a stream (Vitter's algorithm R, by chunk).

    While fewer than ``capacity`` rows have been offered, the sample is every row, in order.
    """

    def __init__(self, capacity: int, width: int, seed: int) -> None:
        if capacity < 1:
            raise ValueError("the sample needs room for at least one row")
        self.capacity = capacity
        self.seen = 0
        self._rows = np.empty((capacity, width), dtype=np.float64)
        self._rng = np.random.default_rng(seed)

    def offer(self, chunk: npt.NDArray[np.float64]) -> None:
        m = chunk.shape[0]
        filled = min(self.seen, self.capacity)
        take = min(self.capacity - filled, m)
        if take > 0:
            self._rows[filled : filled + take] = chunk[:take]
        rest = chunk[take:]
        if rest.shape[0]:
            # Row g (0-based, over the whole stream) replaces a uniform slot of [0, g] when that slot is kept.
            positions = self.seen + take + np.arange(rest.shape[0])
            slots = self._rng.integers(0, positions + 1)
            kept = slots < self.capacity
            # Repeated slots are assigned in order, so the latest row wins, as in the sequential algorithm.
            self._rows[slots[kept]] = rest[kept]
        self.seen += m

    def column(self, j: int) -> npt.NDArray[np.float64]:
        return self._rows[: min(self.seen, self.capacity), j]


class DriftAccumulator:
    """Streams one capture window into bounded counts, for the same verdict as :func:`evaluate_drift`.

    Memory depends on the baseline (bins, categories), the sample size and the chunk size, never
    on how many rows are added: numeric features keep per-bin and missing counts over the
    baseline's edges, categorical features keep category counts, the model output keeps its
    distribution's counts, and KS uses a reservoir sample of at most ``sample_size`` rows of the
    numeric features. Rows are buffered and counted a chunk at a time, so adding many small
    requests costs little more than adding one large one.

    When the window has at most ``sample_size`` rows the reservoir holds every row and
    :meth:`report` equals :func:`evaluate_drift` on the same rows exactly; beyond that, only the
    KS results vary (with ``seed``), as a sample's would.
    """

    def __init__(
        self,
        baseline: DriftBaseline,
        task: Task,
        *,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        seed: int = 0,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        """Start an empty window.

        Args:
            baseline: the drift baseline from the model card.
            task: the model's task (decides how outputs are binned; see :func:`prediction_psi`).
            sample_size: rows kept for the KS tests.
            seed: seed of the reservoir draw.
            chunk_rows: rows buffered before they are counted.
        """
        self.baseline = baseline
        self.task = task
        self.chunk_rows = max(1, chunk_rows)
        self._numeric = list(baseline.numeric)
        self._categorical = list(baseline.categorical)
        self._edges = {name: np.asarray(spec.edges, dtype=np.float64) for name, spec in baseline.numeric.items()}
        self._bins = {name: np.zeros(edges.size - 1) for name, edges in self._edges.items()}
        self._missing = dict.fromkeys(self._numeric, 0)
        self._categories: dict[str, dict[str, int]] = {name: {} for name in self._categorical}
        self._reservoir = _Reservoir(sample_size, len(self._numeric), seed)
        self._output_bins: npt.NDArray[np.float64] | None = None
        self._output_labels: dict[str, int] = {}
        self._output_rows = 0
        self._pending: dict[str, list[Any]] = {name: [] for name in (*self._numeric, *self._categorical)}
        self._pending_outputs: list[Any] = []
        self._pending_rows = 0
        self.n_rows = 0

    def add(
        self,
        columns: Mapping[str, Sequence[Any] | npt.NDArray[Any]],
        outputs: Sequence[Any] | npt.NDArray[Any] | None = None,
        n_rows: int | None = None,
    ) -> None:
        """Add the rows of one request.

        Args:
            columns: feature name to the request's values; every baseline feature is required,
                other columns are ignored. Missing numeric values are NaN or None.
            outputs: the request's model outputs in a form :func:`prediction_psi` takes (for
                classifiers, ``predict_proba`` rows), or None when they were not captured.
            n_rows: rows in the request; the length of the first baseline column when None.
        """
        names = self._pending
        absent = [name for name in names if name not in columns]
        if absent:
            raise ValueError(f"rows lack baseline features: {', '.join(sorted(absent))}")
        if n_rows is None:
            n_rows = len(columns[next(iter(names))]) if names else 0
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
            self._reservoir.offer(block)
        for name in self._categorical:
            if self._pending[name]:
                _merge(self._categories[name], category_counts(self._pending[name]))
        if self._pending_outputs:
            self._count_outputs(np.asarray(self._pending_outputs))
        for pending in self._pending.values():
            pending.clear()
        self._pending_outputs.clear()
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
            return categorical_psi(prediction.class_frequencies, self._output_labels)
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
                sample=self._reservoir.column(j),
            )
            for j, (name, spec) in enumerate(self.baseline.numeric.items())
        ]
        features += [
            _categorical_feature_from_counts(name, spec, self._categories[name])
            for name, spec in self.baseline.categorical.items()
            if self._categories[name]
        ]
        return _verdict(features, self._prediction_psi(), self.n_rows, policy)

    def sample(self, name: str) -> npt.NDArray[np.float64]:
        """The reservoir sample of one numeric feature (every value while the window is small).

        Args:
            name: a numeric feature of the baseline.

        Returns:
            A copy of the sampled values, NaN where a sampled row had the feature missing.
        """
        self._flush()
        return self._reservoir.column(self._numeric.index(name)).copy()

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
