"""The drift verdict and the drift-check report: per-feature results, the window's verdict, distributions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from functions.domain.baseline import bin_counts
from functions.domain.card import CategoricalBaseline, DriftBaseline, NumericBaseline, Task
from functions.domain.drift.statistics import (
    _numeric,
    categorical_psi,
    category_counts,
    chi_square_test,
    chi_square_two_sample,
    correct_p_values,
    ks_test,
    numeric_psi_from_counts,
    prediction_psi,
)
from functions.domain.drift_policy import DriftPolicy
from functions.domain.schema import MISSING_CATEGORY

Verdict = Literal["NO_DRIFT", "DRIFT", "INSUFFICIENT_DATA"]
FeatureKind = Literal["numeric", "categorical"]
TestName = Literal["ks", "chi2"]


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
    reference sample with ``current_sample`` when given (e.g. the bottom-k sample of the window),
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
