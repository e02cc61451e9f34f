"""Drift statistics (PSI, KS, chi-square, multiple-testing correction) and the drift verdict for one capture window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

from functions.domain.baseline import bin_counts
from functions.domain.card import DriftBaseline, NumericBaseline, PredictionBaseline, Task

# Floor for a bin's share before taking logs (PSI) or dividing (chi-square): an empty bin on
# either side would otherwise make ln(a/e) or (o-e)^2/e infinite. 1e-4 is the usual choice: an
# empty bin still weighs heavily, but one bin cannot make the index infinite.
DEFAULT_EPS = 1e-4
DEFAULT_PERFORMANCE_TOLERANCE = 0.05

Correction = Literal["benjamini_hochberg", "bonferroni"]
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
    counts = bin_counts(array[~missing], baseline.edges)
    expected = [p * (1.0 - baseline.missing) for p in baseline.proportions] + [baseline.missing]
    actual = [*counts.tolist(), float(missing.sum())]
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


class DriftPolicy(BaseModel):
    """Thresholds of the drift verdict.

    A feature drifts when its PSI reaches ``psi_drift`` (a large shift, whatever the test says),
    or when its corrected test rejects at ``p_value_alpha`` *and* its PSI reaches
    ``psi_warning``. The test alone is not enough: on thousands of rows KS and chi-square
    reject shifts far too small to matter, so a moderate effect size is required as well.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    psi_warning: float = Field(default=0.1, gt=0)
    psi_drift: float = Field(default=0.2, gt=0)
    p_value_alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: Correction = "benjamini_hochberg"
    min_rows: int = Field(default=200, ge=1)
    performance_tolerance: float = Field(default=DEFAULT_PERFORMANCE_TOLERANCE, ge=0)
    prediction_psi_drift: float = Field(default=0.2, gt=0)

    @model_validator(mode="after")
    def _warning_below_drift(self) -> DriftPolicy:
        if self.psi_warning > self.psi_drift:
            raise ValueError("psi_warning must not exceed psi_drift")
        return self


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
    result = FeatureDrift(
        name=name, kind="numeric", psi=numeric_psi(baseline, array), n_current=int(np.sum(~np.isnan(array)))
    )
    ref = _numeric(np.asarray(reference, dtype=np.float64))
    cur = _numeric(sample)
    if np.any(~np.isnan(ref)) and np.any(~np.isnan(cur)):
        result.statistic, result.p_value = ks_test(ref, cur)
        result.test = "ks"
    return result


def _categorical_feature(name: str, frequencies: Mapping[str, float], values: npt.ArrayLike) -> FeatureDrift:
    counts = category_counts(values)
    statistic, p_value, unseen = chi_square_test(frequencies, counts)
    return FeatureDrift(
        name=name,
        kind="categorical",
        psi=categorical_psi(frequencies, counts),
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
    features += [
        _categorical_feature(name, spec.frequencies, current_columns[name])
        for name, spec in baseline.categorical.items()
    ]
    _judge(features, policy)
    prediction = None if current_outputs is None else prediction_psi(baseline.prediction, current_outputs, task)
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
