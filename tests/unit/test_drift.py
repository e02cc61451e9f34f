"""Drift statistics pinned on tiny samples worked out by hand, cross-checked with scipy, and the drift verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy import stats

from functions.domain.baseline import prediction_baseline, quantile_bins
from functions.domain.card import CategoricalBaseline, DriftBaseline, NumericBaseline, PredictionBaseline, Task
from functions.domain.drift import (
    DriftPolicy,
    DriftReport,
    _categorical_feature,
    benjamini_hochberg,
    bonferroni,
    categorical_psi,
    category_counts,
    chi_square_test,
    chi_square_two_sample,
    correct_p_values,
    evaluate_drift,
    ks_test,
    numeric_psi,
    performance_check,
    prediction_psi,
    psi,
)

EPS = 1e-4
# Half of the mass moved into a cell that was empty (floored at EPS) and the rest halved:
# sum over the halved cells of (e/2) ln 2 = 0.5 ln 2, plus (0.5 - EPS) ln(0.5 / EPS).
HALF_INTO_EMPTY_CELL = 0.5 * math.log(2) + (0.5 - EPS) * math.log(0.5 / EPS)


def _one_to_ten_baseline() -> NumericBaseline:
    # quantile_bins(1..10, 4): edges [1, 3.25, 5.5, 7.75, 10], proportions [0.3, 0.2, 0.2, 0.3]
    values = np.arange(1.0, 11.0)
    edges, proportions = quantile_bins(values, 4)
    return NumericBaseline(edges=edges, proportions=proportions, mean=5.5, std=float(values.std()))


# --------------------------------------------------------------------------- PSI

PSI_CASES = [
    pytest.param([0.5, 0.5], [3, 1], 0.25 * math.log(3), id="counts-three-to-one"),
    pytest.param([0.5, 0.5], [0.75, 0.25], 0.25 * math.log(3), id="proportions-same-as-counts"),
    pytest.param([0.25] * 4, [0.4, 0.3, 0.2, 0.1], 0.15 * math.log(4) + 0.05 * math.log(1.5), id="four-bins"),
    pytest.param(
        [0.5, 0.5], [1, 0], 0.5 * math.log(2) + (EPS - 0.5) * math.log(EPS / 0.5), id="empty-actual-bin-floored"
    ),
    pytest.param([0.2, 0.3, 0.5], [20, 30, 50], 0.0, id="identical"),
]


@pytest.mark.parametrize(("expected", "actual", "value"), PSI_CASES)
def test_psi_pinned(expected: list[float], actual: list[float], value: float) -> None:
    assert psi(expected, actual) == pytest.approx(value, rel=1e-12, abs=1e-15)


def test_psi_is_finite_when_the_baseline_bin_is_empty() -> None:
    got = psi([1.0, 0.0], [0.5, 0.5])

    assert math.isfinite(got)
    assert got == pytest.approx(HALF_INTO_EMPTY_CELL)


def test_psi_is_symmetric_without_empty_bins() -> None:
    assert psi([0.1, 0.6, 0.3], [0.3, 0.3, 0.4]) == pytest.approx(psi([0.3, 0.3, 0.4], [0.1, 0.6, 0.3]))


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        pytest.param([0.5, 0.5], [1, 2, 3], id="bin-count-mismatch"),
        pytest.param([0.5, 0.5], [0, 0], id="no-observations"),
        pytest.param([0.5, 0.5], [-1, 2], id="negative-count"),
        pytest.param([0.5, float("nan")], [1, 2], id="nan-share"),
        pytest.param([], [], id="no-bins"),
    ],
)
def test_psi_rejects_bad_input(expected: list[float], actual: list[float]) -> None:
    with pytest.raises(ValueError):
        psi(expected, actual)


NUMERIC_PSI_CASES = [
    pytest.param(list(range(1, 11)), 0.0, id="same-values"),
    # counts [2, 2, 2, 4] against [3, 2, 2, 3]: -0.1 ln(2/3) + 0.1 ln(4/3) = 0.1 ln 2
    pytest.param([2, 2, 4, 4, 6, 6, 8, 8, 8, 8], 0.1 * math.log(2), id="heavier-top-bin"),
    pytest.param([-100, -100, -100, 4, 4, 6, 6, 50, 50, 50], 0.0, id="beyond-range-lands-in-outer-bins"),
    pytest.param([3.25, 3.25, 3.25, 5.5, 5.5, 7.75, 7.75, 10, 10, 10], 0.0, id="edges-close-on-the-right"),
    # ten values in the same shares plus ten missing: the bins halve, the missing cell goes 0 -> 0.5
    pytest.param([*range(1, 11), *[float("nan")] * 10], HALF_INTO_EMPTY_CELL, id="missing-values-are-a-cell"),
]


@pytest.mark.parametrize(("values", "value"), NUMERIC_PSI_CASES)
def test_numeric_psi_pinned(values: list[float], value: float) -> None:
    assert numeric_psi(_one_to_ten_baseline(), np.array(values, dtype=np.float64)) == pytest.approx(value, abs=1e-12)


def test_numeric_psi_accepts_none_as_missing() -> None:
    values = [*range(1, 11), *[None] * 10]

    assert numeric_psi(_one_to_ten_baseline(), np.array(values, dtype=object)) == pytest.approx(HALF_INTO_EMPTY_CELL)


def test_numeric_psi_uses_the_baseline_missing_share() -> None:
    base = _one_to_ten_baseline().model_copy(update={"missing": 0.5})

    assert numeric_psi(base, np.array([*range(1, 11), *[float("nan")] * 10])) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- KS


def test_ks_pinned_disjoint_samples() -> None:
    # D = 1; exact p = P(the 3 smallest of 6 all come from one sample) = 2 / C(6, 3) = 0.1
    statistic, p_value = ks_test(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))

    assert statistic == pytest.approx(1.0)
    assert p_value == pytest.approx(0.1)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_ks_matches_scipy(shift: float) -> None:
    rng = np.random.default_rng(7)
    reference, current = rng.normal(size=300), rng.normal(loc=shift, size=200)

    expected = stats.ks_2samp(reference, current, alternative="two-sided", method="auto")

    assert ks_test(reference, current) == pytest.approx((expected.statistic, expected.pvalue))


def test_ks_drops_missing_values() -> None:
    with_missing = ks_test(np.array([1.0, np.nan, 2.0, 3.0]), np.array([4.0, 5.0, np.nan, 6.0]))

    assert with_missing == pytest.approx((1.0, 0.1))


def test_ks_needs_values_on_both_sides() -> None:
    with pytest.raises(ValueError):
        ks_test(np.array([np.nan]), np.array([1.0]))


# --------------------------------------------------------------------------- categories


def test_category_counts_key_by_string() -> None:
    assert category_counts(np.array([1, 2, 2, 3, 3, 3])) == {"1": 1, "2": 2, "3": 3}


def test_chi_square_pinned() -> None:
    # expected 20 / 20: (30-20)^2/20 + (10-20)^2/20 = 10 on one degree of freedom
    statistic, p_value, unseen = chi_square_test({"a": 0.5, "b": 0.5}, {"a": 30, "b": 10})

    assert statistic == pytest.approx(10.0)
    assert p_value == pytest.approx(0.0015654022580025)
    assert unseen == []


def test_chi_square_of_matching_counts_is_zero() -> None:
    statistic, p_value, unseen = chi_square_test({"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 50, "b": 30, "c": 20})

    assert (statistic, p_value) == pytest.approx((0.0, 1.0))
    assert unseen == []


def test_chi_square_matches_scipy() -> None:
    frequencies = {"a": 0.45, "b": 0.25, "c": 0.2, "d": 0.1}
    counts = {"a": 97, "b": 41, "c": 50, "d": 12}
    expected = stats.chisquare([97, 41, 50, 12], f_exp=[90, 50, 40, 20])

    statistic, p_value, _ = chi_square_test(frequencies, counts)

    assert (statistic, p_value) == pytest.approx((expected.statistic, expected.pvalue))


def test_chi_square_pools_unseen_categories_in_one_cell() -> None:
    statistic, p_value, unseen = chi_square_test({"a": 0.5, "b": 0.5}, {"a": 10, "b": 10, "z": 3, "y": 2})
    shares = np.array([0.5, 0.5, EPS]) / (1 + EPS)
    expected = stats.chisquare([10, 10, 5], f_exp=shares * 25)

    assert unseen == ["y", "z"]
    assert (statistic, p_value) == pytest.approx((expected.statistic, expected.pvalue))
    assert p_value < 1e-12


def test_more_unseen_values_push_toward_drift() -> None:
    frequencies = {"a": 0.5, "b": 0.5}
    few = {"a": 500, "b": 499, "new": 1}
    many = {"a": 350, "b": 350, "new": 300}

    assert chi_square_test(frequencies, many)[0] > chi_square_test(frequencies, few)[0]
    assert categorical_psi(frequencies, few) < 0.1
    assert categorical_psi(frequencies, many) >= 0.2


def test_chi_square_floors_zero_baseline_frequencies_and_counts_absent_categories() -> None:
    statistic, p_value, unseen = chi_square_test({"a": 0.7, "b": 0.3, "never": 0.0}, {"a": 7, "never": 1})
    shares = np.array([0.7, 0.3, EPS]) / (1 + EPS)
    expected = stats.chisquare([7, 0, 1], f_exp=shares * 8)

    assert unseen == []
    assert (statistic, p_value) == pytest.approx((expected.statistic, expected.pvalue))


def test_chi_square_with_a_single_cell_has_nothing_to_test() -> None:
    assert chi_square_test({"a": 1.0}, {"a": 5}) == (0.0, 1.0, [])


@pytest.mark.parametrize(
    ("frequencies", "counts"),
    [
        pytest.param({}, {"a": 1}, id="no-baseline-categories"),
        pytest.param({"a": 0.5, "b": 0.5}, {}, id="no-observations"),
        pytest.param({"a": 0.5, "b": 0.5}, {"a": -1, "b": 2}, id="negative-count"),
    ],
)
def test_chi_square_rejects_bad_input(frequencies: dict[str, float], counts: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        chi_square_test(frequencies, counts)


CATEGORICAL_PSI_CASES = [
    pytest.param({"a": 3, "b": 1}, 0.25 * math.log(3), id="three-to-one"),
    pytest.param({"a": 50, "b": 50}, 0.0, id="same"),
    # a and b halve, the unseen cell goes from 0 (floored) to 0.5
    pytest.param({"a": 1, "b": 1, "x": 1, "y": 1}, HALF_INTO_EMPTY_CELL, id="unseen-half"),
]


@pytest.mark.parametrize(("counts", "value"), CATEGORICAL_PSI_CASES)
def test_categorical_psi_pinned(counts: dict[str, int], value: float) -> None:
    assert categorical_psi({"a": 0.5, "b": 0.5}, counts) == pytest.approx(value, abs=1e-12)


# --------------------------------------------------------------------------- predictions

BINARY = PredictionBaseline(edges=[0.0, 0.5, 1.0], proportions=[0.5, 0.5], class_frequencies={"0": 0.5, "1": 0.5})
MULTICLASS = PredictionBaseline(class_frequencies={"a": 0.5, "b": 0.25, "c": 0.25})
REGRESSION = PredictionBaseline(edges=[1.0, 3.25, 5.5, 7.75, 10.0], proportions=[0.3, 0.2, 0.2, 0.3])
# labels a, a, a, b against a 0.5 / b 0.25 / c 0.25: 0.25 ln 1.5 + 0 + (EPS - 0.25) ln(EPS / 0.25)
MULTICLASS_SHIFT = 0.25 * math.log(1.5) + (EPS - 0.25) * math.log(EPS / 0.25)

PREDICTION_CASES = [
    pytest.param(BINARY, "binary_classification", [0.1, 0.2, 0.9, 0.3], 0.25 * math.log(3), id="binary-1d"),
    pytest.param(
        BINARY,
        "binary_classification",
        [[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.7, 0.3]],
        0.25 * math.log(3),
        id="binary-predict-proba",
    ),
    pytest.param(MULTICLASS, "multiclass_classification", ["a", "b", "c", "a"], 0.0, id="multiclass-same"),
    pytest.param(MULTICLASS, "multiclass_classification", ["a", "a", "a", "b"], MULTICLASS_SHIFT, id="multiclass"),
    pytest.param(
        MULTICLASS,
        "multiclass_classification",
        [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.5, 0.2, 0.3], [0.1, 0.8, 0.1]],
        MULTICLASS_SHIFT,
        id="multiclass-predict-proba",
    ),
    pytest.param(REGRESSION, "regression", [2, 2, 4, 4, 6, 6, 8, 8, 8, 8], 0.1 * math.log(2), id="regression"),
]


@pytest.mark.parametrize(("baseline", "task", "outputs", "value"), PREDICTION_CASES)
def test_prediction_psi_pinned(baseline: PredictionBaseline, task: Task, outputs: list[object], value: float) -> None:
    assert prediction_psi(baseline, np.array(outputs), task) == pytest.approx(value, abs=1e-12)


def test_prediction_psi_of_the_validation_outputs_is_zero() -> None:
    rng = np.random.default_rng(3)
    positive = rng.uniform(size=500)
    proba = np.column_stack([1 - positive, positive])
    three = rng.dirichlet([1.0, 1.0, 1.0], size=500)
    values = rng.normal(size=500)

    binary = prediction_baseline(proba, [0, 1], "binary_classification")
    multiclass = prediction_baseline(three, [0, 1, 2], "multiclass_classification")
    regression = prediction_baseline(values, None, "regression")

    assert prediction_psi(binary, proba, "binary_classification") == pytest.approx(0.0, abs=1e-12)
    assert prediction_psi(multiclass, np.argmax(three, axis=1), "multiclass_classification") == pytest.approx(0.0)
    assert prediction_psi(multiclass, three, "multiclass_classification") == pytest.approx(0.0, abs=1e-12)
    assert prediction_psi(regression, values, "regression") == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("baseline", "task"),
    [
        pytest.param(REGRESSION, "multiclass_classification", id="multiclass-without-frequencies"),
        pytest.param(MULTICLASS, "regression", id="regression-without-bins"),
        pytest.param(MULTICLASS, "binary_classification", id="binary-without-bins"),
    ],
)
def test_prediction_psi_needs_the_matching_baseline(baseline: PredictionBaseline, task: Task) -> None:
    with pytest.raises(ValueError):
        prediction_psi(baseline, np.array([0.5]), task)


# --------------------------------------------------------------------------- multiple testing


def test_benjamini_hochberg_pinned() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> p * 4 / rank = 0.02, 0.02, 0.04, 0.04 (already monotone);
    # the largest p, 0.04, is below its threshold 4/4 * 0.05, so every hypothesis is rejected
    rejected, adjusted = benjamini_hochberg([0.01, 0.04, 0.03, 0.005], 0.05)

    assert rejected == [True, True, True, True]
    assert adjusted == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_benjamini_hochberg_steps_up() -> None:
    # 0.03 misses its own threshold 1/2 * 0.05, but 0.04 <= 2/2 * 0.05 carries it
    rejected, adjusted = benjamini_hochberg([0.03, 0.04], 0.05)

    assert rejected == [True, True]
    assert adjusted == pytest.approx([0.04, 0.04])


def test_benjamini_hochberg_keeps_adjusted_values_monotone() -> None:
    # raw p * m / rank: 0.04, 0.04, 0.04, 0.5
    rejected, adjusted = benjamini_hochberg([0.5, 0.03, 0.01, 0.02], 0.05)

    assert rejected == [False, True, True, True]
    assert adjusted == pytest.approx([0.5, 0.04, 0.04, 0.04])


def test_benjamini_hochberg_matches_scipy() -> None:
    rng = np.random.default_rng(11)
    p_values = np.concatenate([rng.uniform(size=40), rng.uniform(high=0.01, size=10)])

    _, adjusted = benjamini_hochberg(p_values.tolist(), 0.05)

    assert adjusted == pytest.approx(stats.false_discovery_control(p_values, method="bh").tolist())


def test_bonferroni_pinned() -> None:
    rejected, adjusted = bonferroni([0.01, 0.04, 0.03, 0.005], 0.05)

    assert rejected == [True, False, False, True]
    assert adjusted == pytest.approx([0.04, 0.16, 0.12, 0.02])


def test_bonferroni_caps_at_one() -> None:
    assert bonferroni([0.5, 0.9], 0.05).adjusted == [1.0, 1.0]


def test_correct_p_values_dispatches_on_the_method() -> None:
    p_values = [0.01, 0.04, 0.03, 0.005]

    assert correct_p_values(p_values, 0.05, "bonferroni") == bonferroni(p_values, 0.05)
    assert correct_p_values(p_values, 0.05, "benjamini_hochberg") == benjamini_hochberg(p_values, 0.05)


def test_corrections_of_nothing_are_empty() -> None:
    assert benjamini_hochberg([], 0.05) == ([], [])
    assert bonferroni([], 0.05) == ([], [])


@pytest.mark.parametrize(
    ("p_values", "alpha"),
    [
        pytest.param([0.5, 1.5], 0.05, id="p-above-one"),
        pytest.param([0.5, float("nan")], 0.05, id="p-nan"),
        pytest.param([0.5], 0.0, id="alpha-zero"),
        pytest.param([0.5], 1.0, id="alpha-one"),
    ],
)
def test_corrections_reject_bad_input(p_values: list[float], alpha: float) -> None:
    with pytest.raises(ValueError):
        benjamini_hochberg(p_values, alpha)
    with pytest.raises(ValueError):
        bonferroni(p_values, alpha)


# --------------------------------------------------------------------------- performance

PERFORMANCE_CASES = [
    pytest.param(0.9, 0.8, False, (0.1 / 0.9, True), id="accuracy-fell"),
    pytest.param(0.9, 0.88, False, (0.02 / 0.9, False), id="accuracy-fell-within-tolerance"),
    pytest.param(0.9, 0.95, False, (-0.05 / 0.9, False), id="accuracy-rose"),
    pytest.param(10.0, 12.0, True, (0.2, True), id="rmse-rose"),
    pytest.param(10.0, 9.0, True, (-0.1, False), id="rmse-fell"),
    pytest.param(0.0, 0.1, True, (0.1, True), id="zero-baseline-is-absolute"),
]


@pytest.mark.parametrize(("baseline", "current", "lower_is_better", "outcome"), PERFORMANCE_CASES)
def test_performance_check(baseline: float, current: float, lower_is_better: bool, outcome: tuple[float, bool]) -> None:
    drop, degraded = performance_check("metric", baseline, current, lower_is_better, 0.05)

    assert drop == pytest.approx(outcome[0])
    assert degraded is outcome[1]


def test_performance_check_tolerance_is_configurable() -> None:
    assert performance_check("accuracy", 0.9, 0.8, lower_is_better=False, tolerance=0.2) == pytest.approx(
        (0.1 / 0.9, False)
    )


def test_performance_check_refuses_non_finite_metrics() -> None:
    with pytest.raises(ValueError, match="rmse"):
        performance_check("rmse", 1.0, float("nan"), lower_is_better=True)


# --------------------------------------------------------------------------- the verdict

N_FEATURES = 10
TRAIN_ROWS = 5_000
REFERENCE_ROWS = 1_000
LIVE_ROWS = 2_000
CATEGORIES = ["a", "b", "c"]
CATEGORY_SHARES = [0.5, 0.3, 0.2]


def _drift_baseline(seed: int = 0, train_rows: int = TRAIN_ROWS, reference_rows: int = REFERENCE_ROWS) -> DriftBaseline:
    rng = np.random.default_rng(seed)
    numeric: dict[str, NumericBaseline] = {}
    sample: dict[str, list[object]] = {}
    for i in range(N_FEATURES):
        column = rng.normal(size=train_rows)
        edges, proportions = quantile_bins(column)
        numeric[f"x{i}"] = NumericBaseline(
            edges=edges, proportions=proportions, mean=float(column.mean()), std=float(column.std())
        )
        sample[f"x{i}"] = column[:reference_rows].tolist()
    colour = rng.choice(CATEGORIES, p=CATEGORY_SHARES, size=train_rows)
    sample["colour"] = colour[:reference_rows].tolist()
    positive = rng.uniform(size=train_rows)
    edges, proportions = quantile_bins(positive)
    return DriftBaseline(
        numeric=numeric,
        categorical={"colour": CategoricalBaseline(frequencies=dict(zip(CATEGORIES, CATEGORY_SHARES, strict=True)))},
        reference_sample=sample,
        reference_size=reference_rows,
        prediction=PredictionBaseline(edges=edges, proportions=proportions, class_frequencies={"0": 0.5, "1": 0.5}),
    )


BASELINE = _drift_baseline()


def _live(seed: int, rows: int = LIVE_ROWS) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    columns = {f"x{i}": rng.normal(size=rows) for i in range(N_FEATURES)}
    columns["colour"] = rng.choice(CATEGORIES, p=CATEGORY_SHARES, size=rows)
    return columns


def _outputs(seed: int, rows: int = LIVE_ROWS) -> np.ndarray:
    return np.random.default_rng(seed + 1000).uniform(size=rows)


UNDRIFTED_OUTPUTS = _outputs(0)


def _evaluate(
    columns: dict[str, np.ndarray],
    outputs: np.ndarray | None = UNDRIFTED_OUTPUTS,
    policy: DriftPolicy | None = None,
    current_sample: dict[str, np.ndarray] | None = None,
) -> DriftReport:
    rows = len(columns["x0"])
    return evaluate_drift(
        BASELINE, columns, outputs, "binary_classification", rows, policy=policy, current_sample=current_sample
    )


@pytest.mark.parametrize("seed", range(1, 11))
def test_no_drift_on_the_training_distribution(seed: int) -> None:
    report = _evaluate(_live(seed), outputs=_outputs(seed))

    assert report.verdict == "NO_DRIFT"
    assert report.drifted == []
    assert report.prediction_drifted is False
    assert len(report.features) == N_FEATURES + 1
    assert all(f.psi < 0.1 for f in report.features)


def test_correction_stops_chance_rejections_across_many_features() -> None:
    # With 11 tests a raw p below 0.05 turns up by chance in most windows of undrifted data.
    raw = adjusted = 0
    for seed in range(1, 11):
        report = _evaluate(_live(seed))
        raw += sum(f.p_value is not None and f.p_value < 0.05 for f in report.features)
        adjusted += sum(f.adjusted_p_value is not None and f.adjusted_p_value < 0.05 for f in report.features)

    assert raw >= 5
    assert adjusted == 0


def test_a_shifted_normal_drifts_and_the_worst_shift_comes_first() -> None:
    columns = _live(1)
    columns["x3"] = columns["x3"] + 1.0
    columns["x7"] = columns["x7"] + 0.5

    report = _evaluate(columns)
    x3 = next(f for f in report.features if f.name == "x3")

    assert report.verdict == "DRIFT"
    assert report.drifted == ["x3", "x7"]
    assert x3.test == "ks"
    assert x3.psi >= 0.2
    assert x3.adjusted_p_value is not None and x3.adjusted_p_value < 1e-50


def test_a_shifted_category_mix_drifts() -> None:
    columns = _live(2)
    columns["colour"] = np.random.default_rng(2).choice(CATEGORIES, p=[0.2, 0.3, 0.5], size=LIVE_ROWS)

    report = _evaluate(columns)
    colour = next(f for f in report.features if f.name == "colour")

    assert report.drifted == ["colour"]
    assert colour.test == "chi2"
    # (0.2 - 0.5) ln(0.2 / 0.5) + (0.5 - 0.2) ln(0.5 / 0.2) = 0.6 ln 2.5, give or take the sampling
    assert colour.psi == pytest.approx(0.6 * math.log(2.5), rel=0.1)


def test_unseen_categories_are_counted_not_fatal() -> None:
    columns = _live(3)
    columns["colour"] = columns["colour"].astype(object)
    columns["colour"][:2] = "purple"

    few = _evaluate(dict(columns))
    columns["colour"][:800] = "purple"
    many = _evaluate(columns)

    few_colour = next(f for f in few.features if f.name == "colour")
    many_colour = next(f for f in many.features if f.name == "colour")
    assert few_colour.unseen == ["purple"]
    assert few_colour.drifted is False
    assert many_colour.unseen == ["purple"]
    assert many.drifted == ["colour"]


def test_a_significant_but_tiny_shift_is_only_a_warning() -> None:
    # Large samples make KS reject a 0.1 sd shift; PSI says the shift is small, so no drift.
    baseline = _drift_baseline(train_rows=20_000, reference_rows=20_000)
    columns = _live(4, rows=20_000)
    columns["x5"] = columns["x5"] + 0.1

    report = evaluate_drift(baseline, columns, None, "binary_classification", 20_000)
    x5 = next(f for f in report.features if f.name == "x5")

    assert x5.adjusted_p_value is not None and x5.adjusted_p_value < 0.05
    assert x5.psi < 0.1
    assert (x5.drifted, x5.warning) == (False, True)
    assert report.verdict == "NO_DRIFT"
    assert report.warnings == ["x5"]


def test_ks_uses_the_bounded_current_sample_and_psi_the_whole_window() -> None:
    columns = _live(5)
    sample = {"x2": columns["x2"][:300]}

    report = _evaluate(columns, current_sample=sample)
    x2 = next(f for f in report.features if f.name == "x2")

    assert (x2.statistic, x2.p_value) == pytest.approx(ks_test(np.array(BASELINE.reference_sample["x2"]), sample["x2"]))
    assert x2.psi == pytest.approx(numeric_psi(BASELINE.numeric["x2"], columns["x2"]))
    assert x2.n_current == LIVE_ROWS


def test_a_large_psi_drifts_even_when_the_ks_sample_is_too_small_to_reject() -> None:
    columns = _live(5)
    columns["x2"] = columns["x2"] + 1.0
    sample = {"x2": columns["x2"][:2]}

    report = _evaluate(columns, current_sample=sample)
    x2 = next(f for f in report.features if f.name == "x2")

    assert x2.adjusted_p_value is not None and x2.adjusted_p_value > 0.05
    assert x2.psi >= 0.2
    assert report.drifted == ["x2"]


def test_prediction_drift_alone_makes_the_verdict_drift() -> None:
    outputs = np.random.default_rng(6).beta(5, 1, size=LIVE_ROWS)

    report = _evaluate(_live(6), outputs=outputs)

    assert report.drifted == []
    assert report.prediction_psi is not None and report.prediction_psi >= 0.2
    assert report.prediction_drifted is True
    assert report.verdict == "DRIFT"


def test_without_outputs_there_is_no_prediction_psi() -> None:
    report = _evaluate(_live(1), outputs=None)

    assert report.prediction_psi is None
    assert report.verdict == "NO_DRIFT"


def test_too_few_rows_is_insufficient_data_and_nothing_drifts() -> None:
    columns = {name: values[:199] + 5.0 if name != "colour" else values[:199] for name, values in _live(7).items()}

    report = _evaluate(columns)

    assert report.verdict == "INSUFFICIENT_DATA"
    assert report.n_rows == 199
    assert report.drifted == []
    assert report.features == []
    assert report.prediction_psi is None


def test_the_policy_decides_the_correction_and_thresholds() -> None:
    columns = _live(1)
    columns["x7"] = columns["x7"] + 0.5

    strict = _evaluate(columns, policy=DriftPolicy(psi_warning=0.3, psi_drift=0.5, correction="bonferroni"))
    x7 = next(f for f in strict.features if f.name == "x7")

    assert x7.p_value is not None and x7.adjusted_p_value == pytest.approx(min(1.0, x7.p_value * (N_FEATURES + 1)))
    assert strict.verdict == "NO_DRIFT"
    assert strict.warnings == ["x7"]


def test_a_missing_feature_is_an_error() -> None:
    columns = _live(1)
    del columns["x4"]

    with pytest.raises(ValueError, match="x4"):
        _evaluate(columns)


def test_the_policy_refuses_a_warning_above_the_drift_threshold() -> None:
    with pytest.raises(ValidationError):
        DriftPolicy(psi_warning=0.3, psi_drift=0.2)


def test_the_report_round_trips_through_json() -> None:
    columns = _live(1)
    columns["x3"] = columns["x3"] + 1.0
    report = _evaluate(columns)

    assert DriftReport.model_validate_json(report.model_dump_json()) == report


# -- chi-square, two samples ----------------------------------------------------------------------------------
category_tables = st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), min_size=2, max_size=8).filter(
    lambda cells: sum(t for t, _ in cells) > 0 and sum(c for _, c in cells) > 0
)


@settings(max_examples=300, deadline=None)
@given(category_tables)
def test_the_two_sample_chi_square_matches_scipys_contingency_test(cells: list[tuple[int, int]]) -> None:
    training = {f"c{i}": t for i, (t, _) in enumerate(cells)}
    current = {f"c{i}": c for i, (_, c) in enumerate(cells)}
    kept = [(t, c) for t, c in cells if t + c > 0]  # a category absent from both sides is dropped
    statistic, p_value, unseen = chi_square_two_sample(training, current)
    assert unseen == sorted(f"c{i}" for i, (t, c) in enumerate(cells) if t == 0 and c > 0)
    if len(kept) < 2:
        assert (statistic, p_value) == (0.0, 1.0)
        return
    expected = stats.chi2_contingency(np.array(kept).T, correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)


def test_the_two_sample_test_is_less_confident_than_goodness_of_fit_on_a_small_training_split() -> None:
    training = {"a": 60, "b": 30, "c": 10}  # 100 training rows
    live = {"a": 5000, "b": 3500, "c": 1500}  # a mild shift seen on 10,000 live rows
    frequencies = {k: v / 100 for k, v in training.items()}
    two_sample = chi_square_two_sample(training, live)[1]
    goodness_of_fit = chi_square_test(frequencies, live)[1]
    assert goodness_of_fit < 1e-40 < two_sample, "the training split is a sample, not the truth"


def test_categorical_drift_uses_the_training_counts_when_the_card_has_them() -> None:
    spec = CategoricalBaseline(frequencies={"red": 0.6, "blue": 0.4}, counts={"red": 60, "blue": 40})
    live = np.array(["red"] * 50 + ["blue"] * 50 + ["green"] * 5, dtype=object)
    drift = _categorical_feature("colour", spec, live)
    expected = stats.chi2_contingency(np.array([[60, 40, 0], [50, 50, 5]]), correction=False)
    assert drift.p_value == pytest.approx(expected.pvalue)
    assert drift.unseen == ["green"]
    legacy = _categorical_feature("colour", CategoricalBaseline(frequencies=spec.frequencies), live)
    assert legacy.p_value == pytest.approx(chi_square_test(spec.frequencies, category_counts(live))[1])
