"""Drift statistics: PSI, KS, chi-square, multiple-testing corrections and live quality metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import stats

from functions.domain.baseline import bin_counts
from functions.domain.card import NumericBaseline, PredictionBaseline, Task
from functions.domain.drift_policy import DEFAULT_PERFORMANCE_TOLERANCE, Correction

# Floor for a bin's share before taking logs (PSI) or dividing (chi-square): an empty bin on
# either side would otherwise make ln(a/e) or (o-e)^2/e infinite. 1e-4 is the usual choice: an
# empty bin still weighs heavily, but one bin cannot make the index infinite.
DEFAULT_EPS = 1e-4

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
    bounded (e.g. bottom-k by row id hash) sample of the live window rather than every value: the test only
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
