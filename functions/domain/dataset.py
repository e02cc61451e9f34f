"""Tabular training data: parsing CSV text into typed columns."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from functions.domain.card import Task
from functions.domain.schema import MISSING_CATEGORY
from functions.errors import TrainingError


@dataclass
class Dataset:
    """Feature columns (float64 for numeric, object for categorical) and the target column."""

    columns: dict[str, np.ndarray]
    target_name: str
    target: np.ndarray
    categorical: frozenset[str]

    @property
    def n_rows(self) -> int:
        return int(self.target.shape[0])

    @property
    def feature_names(self) -> list[str]:
        return list(self.columns)

    def take(self, index: np.ndarray) -> Dataset:
        """The rows at ``index``, as a new dataset."""
        return Dataset(
            columns={k: v[index] for k, v in self.columns.items()},
            target_name=self.target_name,
            target=self.target[index],
            categorical=self.categorical,
        )

    def matrix(self, names: list[str]) -> np.ndarray:
        """The model matrix in ``names`` order: float64 when all numeric, else object."""
        if not (self.categorical & set(names)):
            return np.column_stack([self.columns[n] for n in names]).astype(np.float64)
        out = np.empty((self.n_rows, len(names)), dtype=object)
        for j, name in enumerate(names):
            out[:, j] = self.columns[name]
        return out


# An integer target with at most this many distinct values is a class label, not a quantity.
MAX_INTEGER_CLASSES = 20


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_integer(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def infer_task(values: list[str], name: str) -> tuple[Task, str]:
    """The task a target column calls for, and why, in words to print.

    Strings or booleans, or integers with at most ``MAX_INTEGER_CLASSES`` distinct values, are
    class labels: binary classification with two of them, multiclass with more. Other numbers
    are a regression target.
    """
    distinct = set(values)
    if not values:
        raise TrainingError(f"target column {name!r} has no values")
    numeric = all(_is_number(v) for v in distinct)
    integers = numeric and all(_is_integer(v) for v in distinct)
    if numeric and not (integers and len(distinct) <= MAX_INTEGER_CLASSES):
        kind = "integers" if integers else "numbers"
        return "regression", f"target {name!r} holds {len(distinct)} distinct {kind}: regression"
    if len(distinct) < 2:
        raise TrainingError(f"target column {name!r} has a single value ({next(iter(distinct))!r}): nothing to learn")
    task: Task = "binary_classification" if len(distinct) == 2 else "multiclass_classification"
    kind = f"integers (at most {MAX_INTEGER_CLASSES})" if integers else "labels"
    return task, f"target {name!r} holds {len(distinct)} distinct {kind}: {task.replace('_', ' ')}"


def target_values(text: str, target: str) -> list[str]:
    """The raw values of column ``target`` of CSV ``text`` (for ``infer_task``)."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    if target not in header:
        raise TrainingError(f"target column {target!r} not in dataset columns {header}")
    index = header.index(target)
    return [record[index].strip() for record in reader if len(record) > index]


def _target_column(values: list[str], regression: bool, name: str) -> np.ndarray:
    if regression:
        try:
            return np.array([float(v) for v in values], dtype=np.float64)
        except ValueError as exc:
            raise TrainingError(f"target column {name!r} must be numeric for regression: {exc}") from exc
    try:
        return np.array([int(v) for v in values], dtype=np.int64)
    except ValueError:
        return np.array(values, dtype=object)


# Cells that mean "no value": a numeric one becomes NaN (imputed by the pipeline), a categorical one
# the category MISSING_CATEGORY.
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})


def is_missing(value: str) -> bool:
    return value.strip().lower() in MISSING_MARKERS


def _feature_column(name: str, values: list[str], categorical: bool) -> np.ndarray:
    if categorical:
        return np.array([MISSING_CATEGORY if is_missing(v) else v for v in values], dtype=object)
    out = np.empty(len(values), dtype=np.float64)
    for line, value in enumerate(values, start=2):
        if is_missing(value):
            out[line - 2] = np.nan
            continue
        try:
            out[line - 2] = float(value)
        except ValueError:
            raise TrainingError(
                f"column {name!r} is not numeric: line {line} holds {value[:40]!r}. If the column holds"
                f" categories, pass --categorical {name}; if that cell means 'no value', leave it empty (or"
                " write NA): missing numbers are imputed"
            ) from None
        if not math.isfinite(out[line - 2]):
            raise TrainingError(f"column {name!r} has a non-finite value on line {line} ({value!r})")
    if np.isnan(out).all():
        raise TrainingError(f"column {name!r} has no values at all: drop it")
    return out


def parse_csv(text: str, target: str, categorical: set[str] | frozenset[str], regression: bool) -> Dataset:
    """Parse CSV text with a header row.

    Args:
        text: the CSV content.
        target: name of the label column.
        categorical: names of the columns to treat as categories; every other column is numeric.
        regression: whether the target is a number (else it is a class label).

    Returns:
        The dataset. Raises ``TrainingError`` naming the line and column of any bad value.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration as exc:
        raise TrainingError("dataset is empty") from exc
    header = [h.strip() for h in header]
    if target not in header:
        raise TrainingError(f"target column {target!r} not in dataset columns {header}")
    unknown = set(categorical) - set(header)
    if unknown:
        raise TrainingError(f"categorical columns {sorted(unknown)} not in dataset columns")
    raw: dict[str, list[str]] = {h: [] for h in header}
    for line_no, record in enumerate(reader, start=2):
        if not record:
            continue
        if len(record) != len(header):
            raise TrainingError(f"line {line_no}: expected {len(header)} values, got {len(record)}")
        for name, value in zip(header, record, strict=True):
            raw[name].append(value.strip())
    if not raw[target]:
        raise TrainingError("dataset has a header but no rows")
    columns = {name: _feature_column(name, raw[name], name in categorical) for name in header if name != target}
    return Dataset(
        columns=columns,
        target_name=target,
        target=_target_column(raw[target], regression, target),
        categorical=frozenset(categorical),
    )
