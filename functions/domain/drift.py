"""Drift statistics (PSI, KS, chi-square, multiple-testing correction) and the drift verdict for one capture window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from functions.domain.baseline import bin_counts
from functions.domain.card import CategoricalBaseline, DriftBaseline, NumericBaseline, PredictionBaseline, Task
from functions.domain.drift_policy import DEFAULT_PERFORMANCE_TOLERANCE, Correction, DriftPolicy
from functions.domain.schema import MISSING_CATEGORY

# Floor for a bin's share before taking logs (PSI) or dividing (chi-square): an empty bin on
# either side would otherwise make ln(a/e) or (o-e)^2/e infinite. 1e-4 is the usual choice: an
# empty bin still weighs heavily, but one bin cannot make the index infinite.
DEFAULT_EPS = 1e-4

Verdict = Literal["NO_DRIFT", "DRIFT", "INSUFFICIENT_DATA"]
FeatureKind = Literal["numeric", "categorical"]
TestName = Literal["ks", "chi2"]
FloatArray = npt.NDArray[np.float64]


class CorrectedPValues(NamedTuple):
    """Outcome of a multiple-testing correction, in the order of the input p-values."""

    rejected: list[bool]
    adjusted: list[float]


# --------------------------------------------------------------------------- statistics


def _shares(values: npt.ArrayLike, what: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D sequence")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{what} must be finite and non-negative")
    total = array.sum()
    if total <= 0:
        raise ValueError(f"{what} has no mass (sums to zero)")
    return array / total


def psi(expected_proportions: npt.ArrayLike, actual: npt.ArrayLike, eps: float = DEFAULT_EPS) -> float:
    """Population Stability Index ``sum((a - e) * ln(a / e))`` over matching bins.

    Both sides are normalised to shares first, so ``actual`` may be raw counts or proportions.
    Shares are then floored at ``eps`` (not renormalised) so that an empty bin contributes a
    large but finite amount. Rules of thumb: below 0.1 stable, 0.1-0.2 moderate, 0.2+ drift.

    Args:
        expected_proportions: baseline share of each bin.
        actual: live counts (or shares) of the same bins, in the same order.
        eps: floor applied to every share before taking logs.

    Returns:
        The index, ``>= 0``; 0 when the two distributions are identical.
    """
    expected = _shares(expected_proportions, "expected_proportions")
    observed = _shares(actual, "actual")
    if expected.shape != observed.shape:
        raise ValueError(f"bin count mismatch: {expected.size} expected bins, {observed.size} actual bins")
    e = np.maximum(expected, eps)
    a = np.maximum(observed, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError("values must be 1-D")
    return array


def numeric_psi(baseline: NumericBaseline, values: npt.ArrayLike, eps: float = DEFAULT_EPS) -> float:
    """PSI of live numeric values against the feature's training quantile bins.

    Values are binned with :func:`functions.domain.baseline.bin_counts`, exactly as the baseline
    was, so values beyond the training range land in the outer bins. Missing values (NaN/None)
    form one extra cell compared with ``baseline.missing``, so a feature that suddenly goes
    missing counts as drift rather than disappearing from the statistic.

    Args:
        baseline: the feature's bins from the model card.
        values: the live values of the feature.
        eps: floor applied to every share (see :func:`psi`).

    Returns:
        The PSI over the baseline bins plus the missing cell.
    """
    array = _numeric(values)
    missing = np.isnan(array)
    return numeric_psi_from_counts(baseline, bin_counts(array[~missing], baseline.edges), int(missing.sum()), eps)


def _numeric_cells(baseline: NumericBaseline, counts: npt.ArrayLike, missing: int) -> tuple[list[float], list[float]]:
    expected = [p * (1.0 - baseline.missing) for p in baseline.proportions] + [baseline.missing]
    actual = [*np.asarray(counts, dtype=np.float64).tolist(), float(missing)]
    return expected, actual


def numeric_psi_from_counts(
    baseline: NumericBaseline, counts: npt.ArrayLike, missing: int, eps: float = DEFAULT_EPS
) -> float:
    """:func:`numeric_psi` from counts already made: what a streaming check accumulates.

    Args:
        baseline: the feature's bins from the model card.
        counts: live values per baseline bin (see :func:`functions.domain.baseline.bin_counts`).
        missing: live values that were missing.
        eps: floor applied to every share (see :func:`psi`).

    Returns:
        The PSI over the baseline bins plus the missing cell.
    """
    expected, actual = _numeric_cells(baseline, counts, missing)
    return psi(expected, actual, eps)


def ks_test(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test (two-sided, ``method="auto"``).

    ``reference`` is normally the model card's bounded reference sample, and ``current`` may be a
    bounded (e.g. reservoir) sample of the live window rather than every value: the test only
    needs two independent samples, and bounding both keeps its cost and its sensitivity to
    trivial shifts in check. Missing values are dropped from both sides.

    Args:
        reference: values from the training data.
        current: values from live traffic.

    Returns:
        ``(statistic, p_value)``: the largest gap between the two empirical CDFs and its p-value.
    """
    ref = _numeric(reference)
    cur = _numeric(current)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref.size == 0 or cur.size == 0:
        raise ValueError("both samples need at least one non-missing value")
    result = stats.ks_2samp(ref, cur, alternative="two-sided", method="auto")
    return float(result.statistic), float(result.pvalue)


def category_counts(values: npt.ArrayLike) -> dict[str, int]:
    """Count live values per category, keyed by ``str(value)`` as the baseline's frequencies are.

    Args:
        values: the live values of a categorical feature (or predicted labels).

    Returns:
        Category to count, for the categories present.
    """
    labels, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    return {str(k): int(c) for k, c in zip(labels, counts, strict=True)}


def _category_cells(
    baseline_frequencies: Mapping[str, float], current_counts: Mapping[str, int]
) -> tuple[list[float], list[float], list[str]]:
    if not baseline_frequencies:
        raise ValueError("the baseline has no categories")
    if any(c < 0 for c in current_counts.values()):
        raise ValueError("category counts must be non-negative")
    unseen = sorted(k for k, c in current_counts.items() if k not in baseline_frequencies and c > 0)
    expected = [float(baseline_frequencies[k]) for k in baseline_frequencies]
    observed = [float(current_counts.get(k, 0)) for k in baseline_frequencies]
    return expected, observed, unseen


def categorical_psi(
    baseline_frequencies: Mapping[str, float], current_counts: Mapping[str, int], eps: float = DEFAULT_EPS
) -> float:
    """PSI of live category counts against the baseline category frequencies.

    Categories never seen in training share one extra cell whose expected share is 0, floored
    at ``eps`` like every other cell, so many unseen values raise the index sharply.

    Args:
        baseline_frequencies: category to share in the training data.
        current_counts: category to live count (see :func:`category_counts`).
        eps: floor applied to every share (see :func:`psi`).

    Returns:
        The PSI over the baseline categories plus the unseen cell.
    """
    expected, observed, unseen = _category_cells(baseline_frequencies, current_counts)
    return psi([*expected, 0.0], [*observed, float(sum(current_counts[k] for k in unseen))], eps)


def chi_square_test(
    baseline_frequencies: Mapping[str, float], current_counts: Mapping[str, int], eps: float = DEFAULT_EPS
) -> tuple[float, float, list[str]]:
    """Pearson chi-square goodness of fit of live category counts to the baseline frequencies.

    Expected counts are the baseline frequencies (floored at ``eps``, then renormalised) scaled to
    the observed total. Categories unseen in training are pooled in one extra cell with expected
    share ``eps``; the cell exists only when something unseen was observed, so without unseen
    values this is exactly ``scipy.stats.chisquare`` on the baseline categories.

    Args:
        baseline_frequencies: category to share in the training data.
        current_counts: category to live count (see :func:`category_counts`).
        eps: floor for an expected share.

    Returns:
        ``(statistic, p_value, unseen)`` where ``unseen`` lists, sorted, the observed categories
        that the baseline does not know.
    """
    expected, observed, unseen = _category_cells(baseline_frequencies, current_counts)
    if unseen:
        expected.append(0.0)
        observed.append(float(sum(current_counts[k] for k in unseen)))
    obs = np.asarray(observed, dtype=np.float64)
    total = obs.sum()
    if total <= 0:
        raise ValueError("no observations to test")
    if obs.size < 2:
        # One cell cannot differ from itself: no degrees of freedom, nothing to test.
        return 0.0, 1.0, unseen
    shares = np.maximum(np.asarray(expected, dtype=np.float64), eps)
    result = stats.chisquare(obs, shares / shares.sum() * total)
    return float(result.statistic), float(result.pvalue), unseen


def chi_square_two_sample(
    baseline_counts: Mapping[str, int], current_counts: Mapping[str, int]
) -> tuple[float, float, list[str]]:
    """Pearson chi-square test of homogeneity: are the training and the live counts one distribution?

    Both are samples, so the training counts are not taken as exact shares (a goodness-of-fit
    test would, and on large live windows grows over-confident). The contingency table has a row
    per side and a column per category either side holds; a category absent from both is dropped.
    No Yates correction. Equal to ``scipy.stats.chi2_contingency(table, correction=False)``.

    Returns:
        ``(statistic, p_value, unseen)``, ``unseen`` the observed categories training never saw.
    """
    if any(c < 0 for c in (*baseline_counts.values(), *current_counts.values())):
        raise ValueError("category counts must be non-negative")
    either = dict.fromkeys([*baseline_counts, *current_counts])
    categories = [k for k in either if baseline_counts.get(k, 0) + current_counts.get(k, 0) > 0]
    unseen = sorted(k for k in categories if baseline_counts.get(k, 0) == 0)
    table = np.array(
        [[baseline_counts.get(k, 0) for k in categories], [current_counts.get(k, 0) for k in categories]],
        dtype=np.float64,
    )
    if table[1].sum() <= 0:
        raise ValueError("no observations to test")
    if table[0].sum() <= 0 or len(categories) < 2:
        return 0.0, 1.0, unseen  # nothing to compare with, or one category on both sides
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    p_value = float(stats.chi2.sf(statistic, len(categories) - 1))
    return statistic, p_value, unseen


def prediction_psi(baseline: PredictionBaseline, outputs: npt.ArrayLike, task: Task, eps: float = DEFAULT_EPS) -> float:
    """PSI of the model's live outputs against its validation outputs.

    Args:
        baseline: the prediction baseline from the model card.
        outputs: binary: positive-class probabilities (1-D) or ``predict_proba`` rows (2-D);
            multiclass: predicted labels (1-D) or ``predict_proba`` rows (2-D, columns in the
            order of ``baseline.class_frequencies``, which is the model's class order);
            regression: predicted values.
        task: the model's task; decides which part of the baseline is compared.
        eps: floor applied to every share (see :func:`psi`).

    Returns:
        The PSI of the positive-class probability bins (binary), the predicted-label
        frequencies (multiclass) or the predicted-value bins (regression).
    """
    array = np.asarray(outputs)
    if task == "multiclass_classification":
        if baseline.class_frequencies is None:
            raise ValueError("the prediction baseline has no class frequencies")
        if array.ndim == 2:
            array = np.asarray(list(baseline.class_frequencies), dtype=object)[np.argmax(array, axis=1)]
        return categorical_psi(baseline.class_frequencies, category_counts(array), eps)
    if baseline.edges is None or baseline.proportions is None:
        raise ValueError(f"the prediction baseline has no bins for {task}")
    if task == "binary_classification" and array.ndim == 2:
        array = array[:, 1]
    values = _numeric(array)
    return psi(baseline.proportions, bin_counts(values[~np.isnan(values)], baseline.edges), eps)


# --------------------------------------------------------------------------- multiple testing


def _p_array(p_values: Sequence[float], alpha: float) -> FloatArray:
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be between 0 and 1")
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must be a flat sequence of numbers in [0, 1]")
    return p


def benjamini_hochberg(p_values: Sequence[float], alpha: float = 0.05) -> CorrectedPValues:
    """Benjamini-Hochberg step-up procedure, controlling the false discovery rate at ``alpha``.

    The adjusted p-value of the i-th smallest of m p-values is ``min over j >= i of p_(j) * m / j``
    (capped at 1), and a hypothesis is rejected when its adjusted p-value is ``<= alpha``; this
    rejects every p-value up to the largest ``p_(k) <= k / m * alpha``, even if smaller ones
    miss their own threshold.

    Args:
        p_values: one p-value per test.
        alpha: the false discovery rate to control.

    Returns:
        Rejections and adjusted p-values, in input order.
    """
    p = _p_array(p_values, alpha)
    m = p.size
    if m == 0:
        return CorrectedPValues([], [])
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    monotone = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(monotone, 1.0)
    return CorrectedPValues([bool(a <= alpha) for a in adjusted], [float(a) for a in adjusted])


def bonferroni(p_values: Sequence[float], alpha: float = 0.05) -> CorrectedPValues:
    """Bonferroni correction, controlling the family-wise error rate at ``alpha``.

    Args:
        p_values: one p-value per test.
        alpha: the family-wise error rate to control.

    Returns:
        Rejections (adjusted p-value ``<= alpha``) and adjusted p-values ``min(1, p * m)``, in input order.
    """
    p = _p_array(p_values, alpha)
    adjusted = np.minimum(p * p.size, 1.0)
    return CorrectedPValues([bool(a <= alpha) for a in adjusted], [float(a) for a in adjusted])


def correct_p_values(p_values: Sequence[float], alpha: float, method: Correction) -> CorrectedPValues:
    """Apply the named multiple-testing correction.

    Args:
        p_values: one p-value per test.
        alpha: the error rate to control.
        method: ``"benjamini_hochberg"`` (false discovery rate) or ``"bonferroni"`` (family-wise).

    Returns:
        Rejections and adjusted p-values, in input order.
    """
    if method == "bonferroni":
        return bonferroni(p_values, alpha)
    return benjamini_hochberg(p_values, alpha)


# --------------------------------------------------------------------------- performance


def performance_check(
    metric_name: str,
    baseline_value: float,
    current_value: float,
    lower_is_better: bool,
    tolerance: float = DEFAULT_PERFORMANCE_TOLERANCE,
) -> tuple[float, bool]:
    """Relative drop of a quality metric from its validation value, and whether it exceeds the tolerance.

    Args:
        metric_name: the metric's name (for error messages).
        baseline_value: the metric on validation data, from the model card.
        current_value: the metric on live outcomes.
        lower_is_better: True for errors (RMSE, log loss), False for scores (accuracy, AUC).
        tolerance: largest acceptable relative drop, e.g. 0.05 for 5%.

    Returns:
        ``(relative_drop, degraded)``. The drop is positive when the metric got worse, negative
        when it improved; relative to ``|baseline_value|``, or absolute when the baseline is 0.
        ``degraded`` is ``relative_drop > tolerance``.
    """
    if not (np.isfinite(baseline_value) and np.isfinite(current_value)):
        raise ValueError(f"{metric_name}: baseline and current values must be finite")
    worsening = current_value - baseline_value if lower_is_better else baseline_value - current_value
    scale = abs(baseline_value) or 1.0
    drop = float(worsening / scale)
    return drop, drop > tolerance


# --------------------------------------------------------------------------- the verdict


class FeatureDrift(BaseModel):
    """Drift statistics and judgement for one feature."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: FeatureKind
    psi: float
    test: TestName | None = None
    statistic: float | None = None
    p_value: float | None = None
    adjusted_p_value: float | None = None
    drifted: bool = False
    warning: bool = False
    unseen: list[str] = Field(default_factory=list)
    n_current: int
    missing_share: float = Field(default=0.0, description="share of live values that were missing (numeric)")
    baseline_missing_share: float = Field(default=0.0, description="the same share in training")


class DriftReport(BaseModel):
    """The drift verdict for one capture window."""

    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    n_rows: int
    drifted: list[str] = Field(description="Drifted features, most severe (highest PSI) first.")
    warnings: list[str] = Field(default_factory=list, description="Features past a warning threshold only.")
    features: list[FeatureDrift] = Field(default_factory=list)
    prediction_psi: float | None = None
    prediction_drifted: bool = False
    policy: DriftPolicy


def _numeric_feature(
    name: str, baseline: NumericBaseline, values: npt.ArrayLike, reference: Sequence[object], sample: npt.ArrayLike
) -> FeatureDrift:
    array = _numeric(values)
    missing = np.isnan(array)
    counts = bin_counts(array[~missing], baseline.edges)
    return _numeric_feature_from_counts(
        name, baseline, counts=counts, missing=int(missing.sum()), reference=reference, sample=sample
    )


def _numeric_feature_from_counts(
    name: str,
    baseline: NumericBaseline,
    *,
    counts: npt.NDArray[np.float64],
    missing: int,
    reference: Sequence[object],
    sample: npt.ArrayLike,
) -> FeatureDrift:
    present = int(np.asarray(counts).sum())
    result = FeatureDrift(
        name=name,
        kind="numeric",
        psi=numeric_psi_from_counts(baseline, counts, missing),  # a jump in the missing share moves it
        n_current=present,
        missing_share=missing / (present + missing) if present + missing else 0.0,
        baseline_missing_share=baseline.missing,
    )
    ref = _numeric(np.asarray(reference, dtype=np.float64))
    cur = _numeric(sample)
    if np.any(~np.isnan(ref)) and np.any(~np.isnan(cur)):
        result.statistic, result.p_value = ks_test(ref, cur)
        result.test = "ks"
    return result


def _categorical_feature(name: str, spec: CategoricalBaseline, values: npt.ArrayLike) -> FeatureDrift:
    return _categorical_feature_from_counts(name, spec, category_counts(values))


def _categorical_feature_from_counts(name: str, spec: CategoricalBaseline, counts: Mapping[str, int]) -> FeatureDrift:
    if spec.counts is not None:
        statistic, p_value, unseen = chi_square_two_sample(spec.counts, counts)
    else:  # a card from before training counts were kept: goodness of fit to the frequencies
        statistic, p_value, unseen = chi_square_test(spec.frequencies, counts)
    return FeatureDrift(
        name=name,
        kind="categorical",
        psi=categorical_psi(spec.frequencies, counts),
        missing_share=counts.get(MISSING_CATEGORY, 0) / total if (total := sum(counts.values())) else 0.0,
        baseline_missing_share=spec.frequencies.get(MISSING_CATEGORY, 0.0),
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        unseen=unseen,
        n_current=sum(counts.values()),
    )


def _judge(features: list[FeatureDrift], policy: DriftPolicy) -> None:
    tested = [f for f in features if f.p_value is not None]
    corrected = correct_p_values(
        [f.p_value for f in tested if f.p_value is not None], policy.p_value_alpha, policy.correction
    )
    rejected = {f.name for f, r in zip(tested, corrected.rejected, strict=True) if r}
    for feature, adjusted in zip(tested, corrected.adjusted, strict=True):
        feature.adjusted_p_value = adjusted
    for feature in features:
        significant = feature.name in rejected
        feature.drifted = feature.psi >= policy.psi_drift or (significant and feature.psi >= policy.psi_warning)
        feature.warning = not feature.drifted and (significant or feature.psi >= policy.psi_warning)


def evaluate_drift(
    baseline: DriftBaseline,
    current_columns: Mapping[str, npt.ArrayLike],
    current_outputs: npt.ArrayLike | None,
    task: Task,
    n_rows: int,
    *,
    policy: DriftPolicy | None = None,
    current_sample: Mapping[str, npt.ArrayLike] | None = None,
) -> DriftReport:
    """Compare one window of live traffic with the model card's baseline.

    PSI and chi-square use every value in ``current_columns``; KS compares the baseline's bounded
    reference sample with ``current_sample`` when given (e.g. a reservoir sample of the window),
    else with the full column. All feature tests form one family for the multiple-testing
    correction. The verdict is DRIFT when any feature drifts (see :class:`DriftPolicy`) or the
    prediction PSI reaches ``policy.prediction_psi_drift``.

    Args:
        baseline: the drift baseline from the model card.
        current_columns: feature name to the window's values; every baseline feature is required.
        current_outputs: the window's model outputs (see :func:`prediction_psi`), or None.
        task: the model's task.
        n_rows: rows in the window; fewer than ``policy.min_rows`` gives INSUFFICIENT_DATA and
            no statistics, so a quiet hour never raises an alarm.
        policy: thresholds; the defaults of :class:`DriftPolicy` when None.
        current_sample: feature name to a bounded sample of the window's values, for KS.

    Returns:
        The verdict, drifted features by severity, per-feature results and the prediction PSI.
    """
    policy = policy or DriftPolicy()
    if n_rows < policy.min_rows:
        return DriftReport(verdict="INSUFFICIENT_DATA", n_rows=n_rows, drifted=[], policy=policy)
    absent = sorted((set(baseline.numeric) | set(baseline.categorical)) - set(current_columns))
    if absent:
        raise ValueError(f"current window lacks baseline features: {', '.join(absent)}")
    samples = current_sample or {}
    features = [
        _numeric_feature(
            name,
            spec,
            current_columns[name],
            baseline.reference_sample.get(name, []),
            samples.get(name, current_columns[name]),
        )
        for name, spec in baseline.numeric.items()
    ]
    features += [_categorical_feature(name, spec, current_columns[name]) for name, spec in baseline.categorical.items()]
    prediction = None if current_outputs is None else prediction_psi(baseline.prediction, current_outputs, task)
    return _verdict(features, prediction, n_rows, policy)


def _verdict(features: list[FeatureDrift], prediction: float | None, n_rows: int, policy: DriftPolicy) -> DriftReport:
    _judge(features, policy)
    prediction_drifted = prediction is not None and prediction >= policy.prediction_psi_drift
    drifted = sorted(
        (f for f in features if f.drifted),
        key=lambda f: (-f.psi, 1.0 if f.adjusted_p_value is None else f.adjusted_p_value, f.name),
    )
    return DriftReport(
        verdict="DRIFT" if drifted or prediction_drifted else "NO_DRIFT",
        n_rows=n_rows,
        drifted=[f.name for f in drifted],
        warnings=sorted(f.name for f in features if f.warning),
        features=features,
        prediction_psi=prediction,
        prediction_drifted=prediction_drifted,
        policy=policy,
    )


# --------------------------------------------------------------------------- streaming

DEFAULT_SAMPLE_SIZE = 5000
DEFAULT_CHUNK_ROWS = 8192
UNSEEN_LABEL = "(unseen)"
MISSING_LABEL = "(missing)"
DistributionKind = Literal["numeric", "categorical", "prediction"]


class FeatureDistribution(BaseModel):
    """Reference and current shares of one feature's (or the model output's) cells, for charts."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: DistributionKind
    labels: list[str] = Field(description="One label per cell: a bin's range, a category, or a marker cell.")
    reference: list[float]
    current: list[float]


def _edge(value: float) -> str:
    return f"{value:.4g}"


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the bins :func:`functions.domain.baseline.bin_counts` makes from ``edges``.

    The inner edges decide, bins are right-closed, and the outer bins are open-ended, so live
    values beyond the training range land in the first or last bin.

    Args:
        edges: the baseline's bin edges (one more than there are bins).

    Returns:
        ``["≤ e1", "e1 – e2", ..., "> e(n-1)"]``, or ``["all"]`` for a single bin.
    """
    inner = list(edges[1:-1])
    if not inner:
        return ["all"]
    labels = [f"≤ {_edge(inner[0])}"]
    labels += [f"{_edge(lo)} – {_edge(hi)}" for lo, hi in zip(inner, inner[1:], strict=False)]
    labels.append(f"> {_edge(inner[-1])}")
    return labels


def _shares_or_zero(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [float(c) / total if total > 0 else 0.0 for c in counts]


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


def _category_distribution(
    name: str, kind: DistributionKind, frequencies: Mapping[str, float], counts: Mapping[str, int]
) -> FeatureDistribution:
    labels = list(frequencies)
    reference = [float(frequencies[k]) for k in labels]
    current = [float(counts.get(k, 0)) for k in labels]
    unseen = sum(c for k, c in counts.items() if k not in frequencies)
    if unseen:
        labels.append(UNSEEN_LABEL)
        reference.append(0.0)
        current.append(float(unseen))
    return FeatureDistribution(
        name=name, kind=kind, labels=labels, reference=reference, current=_shares_or_zero(current)
    )


# --------------------------------------------------------------------------- live performance

PerformanceStatus = Literal["OK", "DEGRADED", "INSUFFICIENT_DATA"]
# Used when the primary metric cannot be measured on the window (ROC AUC with one class only).
FALLBACK_METRIC: dict[str, str] = {
    "binary_classification": "accuracy",
    "multiclass_classification": "accuracy",
    "regression": "rmse",
}


class PerformanceResult(BaseModel):
    """The model's quality on the labelled rows of a window, against its validation value."""

    model_config = ConfigDict(extra="forbid")

    status: PerformanceStatus
    metric: str = Field(description="The metric compared: the card's primary metric, or the fallback (see note).")
    validation_value: float | None = None
    live_value: float | None = None
    relative_drop: float | None = Field(default=None, description="Positive when worse; see performance_check.")
    tolerance: float
    degraded: bool = False
    labeled_rows: int
    min_rows: int
    metrics: dict[str, float] = Field(default_factory=dict, description="Every metric measurable on the window.")
    note: str = ""


def live_metrics(
    task: Task,
    n_classes: int,
    y_true: npt.NDArray[Any],
    predictions: npt.NDArray[Any],
    probabilities: npt.NDArray[np.float64] | None,
) -> dict[str, float]:
    """Quality metrics of captured outputs against their outcomes, as ``training.evaluate`` measures them.

    Args:
        task: the model's task.
        n_classes: number of classes (classifiers); labels are class indices ``0..n_classes-1``.
        y_true: actual class indices (classifiers) or values (regression).
        predictions: predicted class indices or values.
        probabilities: ``predict_proba`` rows (classifiers), or None.

    Returns:
        Classifiers: accuracy, f1_macro, and when probabilities are given log_loss and roc_auc
        (binary: f1 too). ROC AUC needs every class among the actual labels, so it is left out
        otherwise. Regression: mae, rmse and, from two rows, r2. Empty when there are no rows.
    """
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        mean_absolute_error,
        r2_score,
        roc_auc_score,
        root_mean_squared_error,
    )

    if y_true.size == 0:
        return {}
    if task == "regression":
        out = {
            "mae": float(mean_absolute_error(y_true, predictions)),
            "rmse": float(root_mean_squared_error(y_true, predictions)),
        }
        if y_true.size >= 2:
            out["r2"] = float(r2_score(y_true, predictions))
        return out
    out = {
        "accuracy": float(accuracy_score(y_true, predictions)),
        "f1_macro": float(f1_score(y_true, predictions, average="macro")),
    }
    if task == "binary_classification":
        out["f1"] = float(f1_score(y_true, predictions, pos_label=1, labels=[0, 1], zero_division=0.0))
    if probabilities is None:
        return out
    labels = list(range(n_classes))
    out["log_loss"] = float(log_loss(y_true, probabilities, labels=labels))
    present = np.unique(y_true).size
    if task == "binary_classification" and present == 2:
        out["roc_auc"] = float(roc_auc_score(y_true == 1, probabilities[:, 1]))
    elif task == "multiclass_classification" and present == n_classes:
        out["roc_auc"] = float(roc_auc_score(y_true, probabilities, multi_class="ovr", labels=labels))
    return out


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


# --------------------------------------------------------------------------- the check's report


class WindowModel(BaseModel):
    """A capture window as reports and events show it."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime
    hours: float


class DriftCheckReport(BaseModel):
    """Everything one check found: the JSON report, and what the HTML report shows."""

    model_config = ConfigDict(extra="forbid")

    model_name: str
    model_version: int
    alias: str | None
    generated_at: datetime
    window: WindowModel
    scope: str
    verdict: Verdict
    rows_checked: int
    rows_other_versions: int = Field(description="Rows in the window served by other model versions, not judged.")
    drift: DriftReport
    performance: PerformanceResult | None = Field(
        default=None, description="None when no captured row of the window has an outcome."
    )
    outcomes_joined: int = 0
    records_skipped: dict[str, int] = Field(
        default_factory=dict,
        description="Corrupt capture lines (or non-gzip objects) and outcome lines skipped while reading, by source.",
    )
    distributions: list[FeatureDistribution] = Field(default_factory=list)
