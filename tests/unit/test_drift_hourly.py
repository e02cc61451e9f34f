"""Hour aggregates in memory: growing one in steps equals building it at once, and rows' outputs concatenate."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from functions.adapters.capture_reader import CapturedRequest
from functions.domain.drift.hourly import HourAggregate, JoinRows
from functions.services.drift_hours import Cards, HourBuilder

pytestmark = pytest.mark.unit

HOUR = datetime(2026, 11, 23, 9, tzinfo=UTC)


def requests(card, n: int, version: int = 1, seed: int = 0) -> list[CapturedRequest]:
    rng = np.random.default_rng(seed)
    names = card.feature_schema.names
    out = []
    for r in range(n):
        rows = int(rng.integers(1, 4))
        p = rng.random(rows)
        out.append(
            CapturedRequest(
                request_id=f"req-{seed}-{r}",
                timestamp=HOUR.timestamp() + r,
                model_version=version,
                n_rows=rows,
                features={name: rng.normal(size=rows).tolist() for name in names},
                predictions=(p > 0.5).astype(int).tolist(),
                probabilities=np.column_stack([1 - p, p]).tolist(),
            )
        )
    return out


def build(card, batches: list[tuple[list[str], list[CapturedRequest]]], now: datetime) -> tuple[HourAggregate, dict]:
    """Add each batch as one builder's growth of the previous aggregate, as the aggregation and checks do."""
    base, stored = None, None
    for keys, batch in batches:
        builder = HourBuilder("breast-cancer", HOUR, cards=Cards(None, card.name, [card]), sample_size=50, base=base)
        builder.add_objects(builder.missing(keys), batch)
        stored = builder.all_rows(stored)
        base = builder.aggregate(now)
    assert base is not None and stored is not None
    return base, stored.versions


def test_an_aggregate_grown_in_steps_equals_one_built_at_once(make_card):
    card, _ = make_card("breast_cancer")
    first, second = requests(card, 40, seed=1), requests(card, 30, seed=2) + requests(card, 5, version=9, seed=3)
    now = datetime(2026, 11, 23, 10, tzinfo=UTC)

    at_once, rows_at_once = build(card, [(["a", "b"], first + second)], now)
    stepped, rows_stepped = build(card, [(["a"], first), (["a", "b"], second)], now)

    assert stepped == at_once
    assert stepped.capture_keys == ["a", "b"] and stepped.row_count == sum(r.n_rows for r in first + second)
    assert stepped.versions[9].drift is None and stepped.versions[9].rows == sum(r.n_rows for r in second[-5:])
    assert rows_stepped[1].row_keys == rows_at_once[1].row_keys and 9 not in rows_stepped  # no card: no outputs
    assert rows_stepped[1].probabilities == rows_at_once[1].probabilities
    assert stepped.versions[1].drift.sample_size == 50 and len(stepped.versions[1].drift.sample_keys) == 50


def test_join_rows_keep_one_probability_entry_per_row():
    rows = JoinRows(row_keys=["a"], predictions=[0])
    rows.extend(JoinRows(row_keys=["b", "c"], predictions=[1, 0], probabilities=[[0.2, 0.8], [0.9, 0.1]]))
    rows.extend(JoinRows(row_keys=["d"], predictions=[1]))

    assert rows.row_keys == ["a", "b", "c", "d"] and rows.predictions == [0, 1, 0, 1]
    assert rows.probabilities == [None, [0.2, 0.8], [0.9, 0.1], None]
