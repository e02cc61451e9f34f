"""Merged drift partials equal one pass over the same rows: every count, the KS sample, the verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.domain.card import CategoricalBaseline, DriftBaseline, NumericBaseline, PredictionBaseline, Task
from functions.domain.drift import (
    DriftAccumulator,
    DriftPartial,
    DriftPolicy,
    IncompatiblePartialError,
    row_hashes,
)

POLICY = DriftPolicy(min_rows=1)
COLOURS = ["red", "blue", "green", "mauve"]  # mauve was never seen in training


def _baseline(task: Task, shift: float = 0.0) -> DriftBaseline:
    rng = np.random.default_rng(0)
    prediction = (
        PredictionBaseline(class_frequencies={"x": 0.4, "y": 0.3, "z": 0.3})
        if task == "multiclass_classification"
        else PredictionBaseline(edges=[0.0, 0.25, 0.5, 0.75, 1.0], proportions=[0.25] * 4)
    )
    return DriftBaseline(
        numeric={
            "a": NumericBaseline(
                edges=[-3.0, -1.0, 0.0, 1.0, 3.0], proportions=[0.16, 0.34, 0.34, 0.16], mean=0, std=1
            ),
            "b": NumericBaseline(edges=[0.0, 0.5, 1.0], proportions=[0.5, 0.5], mean=0.5, std=0.3, missing=0.1),
        },
        categorical={
            "colour": CategoricalBaseline(
                frequencies={"red": 0.5, "blue": 0.3, "green": 0.2}, counts={"red": 50, "blue": 30, "green": 20}
            )
        },
        reference_sample={
            "a": (rng.normal(size=80) + shift).tolist(),
            "b": [*rng.uniform(size=70).tolist(), *[float("nan")] * 10],
            "colour": ["red"] * 40 + ["blue"] * 24 + ["green"] * 16,
        },
        reference_size=80,
        prediction=prediction,
    )


BASELINES: dict[str, DriftBaseline] = {
    task: _baseline(task) for task in ("binary_classification", "multiclass_classification")
}


@dataclass(frozen=True)
class Request:
    """One captured request, as drift-check hands it to the accumulator."""

    columns: dict[str, list[Any]]
    outputs: list[Any] | None
    row_ids: list[str]


def _requests(task: Task, rows: int, seed: int) -> list[Request]:
    """``rows`` rows in requests of 1-30 rows: ``b`` drifts up and is at times missing; some outputs uncaptured."""
    rng = np.random.default_rng(seed)
    out: list[Request] = []
    done = 0
    while done < rows:
        n = min(int(rng.integers(1, 31)), rows - done)
        b = (rng.uniform(size=n) * 1.4).tolist()
        for i in np.flatnonzero(rng.random(n) < 0.2):
            b[i] = None
        width = 3 if task == "multiclass_classification" else 2
        proba = rng.dirichlet(np.ones(width), size=n).tolist()
        out.append(
            Request(
                columns={
                    "a": rng.normal(size=n).tolist(),
                    "b": b,
                    "colour": [COLOURS[k] for k in rng.choice(4, size=n, p=[0.45, 0.3, 0.2, 0.05])],
                },
                outputs=None if rng.random() < 0.1 else proba,
                row_ids=[f"req-{seed}-{len(out)}-{i}" for i in range(n)],
            )
        )
        done += n
    return out


def _fed(acc: DriftAccumulator, requests: list[Request]) -> DriftAccumulator:
    for r in requests:
        acc.add(r.columns, r.outputs, len(r.row_ids), row_ids=r.row_ids)
    return acc


def _split(requests: list[Request], parts: int, rng: np.random.Generator) -> list[list[Request]]:
    """``parts`` consecutive slices of whole requests (an hour's partial holds whole capture objects); some empty."""
    cuts = sorted(rng.integers(0, len(requests) + 1, size=parts - 1).tolist())
    bounds = [0, *cuts, len(requests)]
    return [requests[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]


def _assert_same(merged: DriftAccumulator, single: DriftAccumulator) -> None:
    assert merged.n_rows == single.n_rows
    assert merged.to_partial() == single.to_partial()  # every count and the KS sample, keys and values
    for name in ("a", "b"):
        np.testing.assert_array_equal(merged.sample(name), single.sample(name))
    assert merged.report(POLICY) == single.report(POLICY)  # PSI, KS and chi-square p-values, the verdict
    assert merged.distributions() == single.distributions()


@settings(max_examples=60, deadline=None)
@given(
    task=st.sampled_from(sorted(BASELINES)),
    rows=st.integers(1, 500),
    parts=st.integers(1, 24),
    sample_size=st.integers(1, 80),
    chunk_rows=st.sampled_from([1, 7, 64, 8192]),
    seed=st.integers(0, 2**16),
)
def test_merged_partials_equal_one_pass(
    *, task: Task, rows: int, parts: int, sample_size: int, chunk_rows: int, seed: int
) -> None:
    baseline = BASELINES[task]
    requests = _requests(task, rows, seed)
    single = _fed(DriftAccumulator(baseline, task, sample_size=sample_size), requests)
    pieces = [
        _fed(DriftAccumulator(baseline, task, sample_size=sample_size, chunk_rows=chunk_rows), part)
        for part in _split(requests, parts, np.random.default_rng(seed))
    ]

    # through JSON, as hourly partials would be written and read back, merged in any order
    documents = [json.loads(piece.to_partial().model_dump_json()) for piece in pieces]
    shuffled = [documents[i] for i in np.random.default_rng(seed + 1).permutation(len(documents))]
    _assert_same(DriftAccumulator.from_partials(baseline, shuffled), single)

    # in memory, one accumulator at a time
    in_memory = DriftAccumulator(baseline, task, sample_size=sample_size)
    for piece in pieces:
        in_memory.merge(piece)
    _assert_same(in_memory, single)


def test_the_sample_is_the_rows_whose_ids_hash_lowest() -> None:
    task: Task = "binary_classification"
    requests = _requests(task, 400, seed=3)
    acc = _fed(DriftAccumulator(BASELINES[task], task, sample_size=50), requests)
    ids = [row_id for r in requests for row_id in r.row_ids]
    values = [v for r in requests for v in r.columns["a"]]
    lowest = np.argsort(row_hashes(ids))[:50]

    partial = acc.to_partial()

    assert partial.sample_keys == [f"{k:016x}" for k in np.sort(row_hashes(ids))[:50].tolist()]
    assert partial.sample["a"] == [values[i] for i in lowest]


def test_a_small_window_samples_every_row_and_matches_one_pass_report() -> None:
    task: Task = "multiclass_classification"
    requests = _requests(task, 120, seed=4)
    halves = [
        _fed(DriftAccumulator(BASELINES[task], task, sample_size=200), requests[:5]),
        _fed(DriftAccumulator(BASELINES[task], task, sample_size=200), requests[5:]),
    ]
    merged = halves[0].merge(halves[1])

    every = np.asarray([v for r in requests for v in r.columns["a"]])
    np.testing.assert_array_equal(np.sort(merged.sample("a")), np.sort(every))


def test_row_hashes_are_stable() -> None:
    # pinned: BLAKE2b-64 of the id, big-endian, so partials written anywhere agree
    assert [f"{k:016x}" for k in row_hashes(["abc-0", "abc-1"]).tolist()] == [
        _blake("abc-0"),
        _blake("abc-1"),
    ]


def _blake(row_id: str) -> str:
    import hashlib

    return hashlib.blake2b(row_id.encode(), digest_size=8).hexdigest()


def test_the_partial_is_plain_json() -> None:
    task: Task = "binary_classification"
    acc = DriftAccumulator(BASELINES[task], task, sample_size=10)
    acc.add(
        {"a": [0.5, -2.0], "b": [None, 0.7], "colour": ["red", "mauve"]},
        [[0.9, 0.1], [0.2, 0.8]],
        row_ids=["q-0", "q-1"],
    )

    doc = json.loads(acc.to_partial().model_dump_json())

    assert doc["n_rows"] == 2 and doc["task"] == task and doc["sample_size"] == 10
    assert doc["numeric"]["a"] == {"bins": [1, 0, 1, 0], "missing": 0}
    assert doc["numeric"]["b"] == {"bins": [0, 1], "missing": 1}
    assert doc["categorical"] == {"colour": {"mauve": 1, "red": 1}}
    assert doc["output_rows"] == 2 and doc["output_bins"] == [1, 0, 0, 1]
    assert sorted(doc["sample"]["b"], key=lambda v: v is None) == [0.7, None]  # missing is null
    assert all(len(k) == 16 for k in doc["sample_keys"])
    assert DriftPartial.model_validate(doc) == acc.to_partial()


# --------------------------------------------------------------------------- refusals


def _one_request(task: Task, sample_size: int = 10) -> DriftAccumulator:
    return _fed(DriftAccumulator(BASELINES[task], task, sample_size=sample_size), _requests(task, 20, seed=1))


def test_merging_accumulators_of_different_baselines_is_refused() -> None:
    task: Task = "binary_classification"
    other = _fed(DriftAccumulator(_baseline(task, shift=0.5), task, sample_size=10), _requests(task, 20, seed=2))

    with pytest.raises(IncompatiblePartialError, match="different baselines"):
        _one_request(task).merge(other)


def test_loading_a_partial_of_another_baseline_is_refused() -> None:
    task: Task = "binary_classification"
    partial = _one_request(task).to_partial()

    with pytest.raises(IncompatiblePartialError, match="different baselines"):
        DriftAccumulator.from_partial(_baseline(task, shift=0.5), partial)


def test_merging_different_sample_sizes_is_refused() -> None:
    task: Task = "binary_classification"
    partials = [_one_request(task, sample_size=10).to_partial(), _one_request(task, sample_size=20).to_partial()]

    with pytest.raises(IncompatiblePartialError, match="samples of"):
        DriftAccumulator.from_partials(BASELINES[task], partials)


def test_an_accumulator_cannot_merge_itself() -> None:
    acc = _one_request("binary_classification")

    with pytest.raises(ValueError, match="itself"):
        acc.merge(acc)


def test_row_ids_must_match_the_rows() -> None:
    task: Task = "binary_classification"
    acc = DriftAccumulator(BASELINES[task], task)

    with pytest.raises(ValueError, match="row id"):
        acc.add({"a": [0.1, 0.2], "b": [0.1, 0.2], "colour": ["red", "red"]}, None, 2, row_ids=["only-0"])
