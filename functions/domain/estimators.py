"""The one table of estimator kinds: what the CLI offers, the card accepts, training builds and the build checks.

Pure data (class paths, not classes): the predict function reads the card, which names a kind, and
must not import scikit-learn to do so. ``functions.domain.training`` resolves the class paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

EstimatorKind = Literal[
    "logistic_regression",
    "random_forest",
    "hist_gradient_boosting",
    "ridge",
    "linear_regression",
]


@dataclass(frozen=True)
class EstimatorKindSpec:
    """One estimator kind.

    Attributes:
        classifier: ``module:Class`` of the classifier, or None when the kind has no classifier.
        regressor: ``module:Class`` of the regressor, or None when it has none.
        defaults: parameters applied unless the spec overrides them.
        scaled: numeric features are standardised before the estimator (linear models).
    """

    classifier: str | None
    regressor: str | None
    defaults: dict[str, Any] = field(default_factory=dict)
    scaled: bool = False

    def class_path(self, classification: bool) -> str | None:
        return self.classifier if classification else self.regressor


_FOREST = {"n_estimators": 100, "random_state": 0, "n_jobs": 1}

ESTIMATORS: dict[str, EstimatorKindSpec] = {
    "logistic_regression": EstimatorKindSpec(
        classifier="sklearn.linear_model:LogisticRegression", regressor=None, defaults={"max_iter": 2000}, scaled=True
    ),
    "random_forest": EstimatorKindSpec(
        classifier="sklearn.ensemble:RandomForestClassifier",
        regressor="sklearn.ensemble:RandomForestRegressor",
        defaults=_FOREST,
    ),
    "hist_gradient_boosting": EstimatorKindSpec(
        classifier="sklearn.ensemble:HistGradientBoostingClassifier",
        regressor="sklearn.ensemble:HistGradientBoostingRegressor",
        defaults={"random_state": 0},
    ),
    "ridge": EstimatorKindSpec(classifier=None, regressor="sklearn.linear_model:Ridge", scaled=True),
    "linear_regression": EstimatorKindSpec(
        classifier=None, regressor="sklearn.linear_model:LinearRegression", scaled=True
    ),
}

ESTIMATOR_KINDS: tuple[str, ...] = get_args(EstimatorKind)
if set(ESTIMATOR_KINDS) != set(ESTIMATORS):  # pragma: no cover - a table edited on one side only
    raise RuntimeError(f"EstimatorKind {sorted(ESTIMATOR_KINDS)} and ESTIMATORS {sorted(ESTIMATORS)} disagree")


def kinds_for(classification: bool) -> list[str]:
    """The kinds that can be trained for a classification (or a regression) task."""
    return [kind for kind, spec in ESTIMATORS.items() if spec.class_path(classification) is not None]


# What ``mlops train`` uses when no estimator is named: a linear model, scaled, for either task.
DEFAULT_KIND: dict[bool, str] = {True: "logistic_regression", False: "ridge"}


def default_kind(classification: bool) -> str:
    """The estimator kind trained when none is named, for a classification (or regression) task."""
    return DEFAULT_KIND[classification]
