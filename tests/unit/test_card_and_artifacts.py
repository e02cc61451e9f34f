"""The model card's JSON contract, and loading artifacts only when they are what the card says."""

from __future__ import annotations

import io
import pickle
from typing import Any

import joblib
import numpy as np
import pytest
from pydantic import ValidationError as PydanticValidationError

from functions.domain.artifacts import (
    PINNED_LIBRARIES,
    check_compatible,
    dump_model,
    library_versions,
    load_model,
    sha256_hex,
)
from functions.domain.card import ModelCard
from functions.errors import ArtifactIntegrityError, IncompatibleModelError

UNPICKLED: list[str] = []


def _record_unpickling(tag: str) -> None:
    UNPICKLED.append(tag)


class _RecordsUnpickling:
    """A payload whose unpickling leaves a trace: proves whether bytes reached the unpickler."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _record_unpickling, ("unpickled",)


@pytest.mark.parametrize("name", ["breast_cancer", "iris", "diabetes"])
def test_card_survives_a_json_round_trip(make_card, name: str):
    card, _ = make_card(name)

    again = ModelCard.model_validate_json(card.model_dump_json(indent=2))

    assert again == card
    assert again.classes == card.classes
    assert [type(c) for c in again.classes or []] == [type(c) for c in card.classes or []]


def test_card_classes_keep_their_json_types(make_card):
    binary, _ = make_card("breast_cancer")
    multi, _ = make_card("iris")
    regression, _ = make_card("diabetes")

    assert binary.classes == [0, 1]
    assert multi.classes == ["setosa", "versicolor", "virginica"]
    assert regression.classes is None
    assert (binary.is_classifier, multi.is_classifier, regression.is_classifier) == (True, True, False)


def test_card_summary_is_the_public_contract(make_card):
    card, _ = make_card("diabetes", version=3, parent_version=2, status="champion")

    summary = card.summary()

    assert summary["name"] == "diabetes"
    assert summary["version"] == 3
    assert summary["parent_version"] == 2
    assert summary["status"] == "champion"
    assert summary["created_at"] == "2026-11-23T16:00:00+00:00"
    assert summary["estimator"] == "ridge"
    assert summary["features"][1] == {"name": "sex", "kind": "categorical", "categories": ("sex_1", "sex_2")}
    assert set(summary["features"][0]) == {"name", "kind", "minimum", "maximum"}
    assert "baseline" not in summary


BAD_CARD_FIELDS = [
    pytest.param({"artifact_sha256": "ABC"}, id="sha-not-hex"),
    pytest.param({"artifact_sha256": "a" * 63}, id="sha-short"),
    pytest.param({"version": 0}, id="version-zero"),
    pytest.param({"artifact_bytes": 0}, id="empty-artifact"),
    pytest.param({"task": "clustering"}, id="unknown-task"),
    pytest.param({"status": "deleted"}, id="unknown-status"),
    pytest.param({"schema_version": 2}, id="future-schema"),
    pytest.param({"owner": "me"}, id="unknown-field"),
]


@pytest.mark.parametrize("changes", BAD_CARD_FIELDS)
def test_card_rejects(make_card, changes: dict[str, Any]):
    card, _ = make_card()
    doc = {**card.model_dump(mode="json"), **changes}

    with pytest.raises(PydanticValidationError):
        ModelCard.model_validate(doc)


def test_sha256_is_pinned():
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_dump_and_load_round_trip_predicts_the_same(make_card, trained):
    card, artifact = make_card()
    X = np.array(
        [[float(v) for v in card.baseline.reference_sample[f.name][:5]] for f in card.feature_schema.features]
    ).T

    model = load_model(artifact, card)

    np.testing.assert_array_equal(model.predict_proba(X), trained["breast_cancer"].model.predict_proba(X))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b: b[:-1], id="truncated"),
        pytest.param(lambda b: b + b"\0", id="appended"),
        pytest.param(lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], id="one-bit"),
        pytest.param(lambda b: b"", id="empty"),
    ],
)
def test_load_refuses_tampered_bytes(make_card, tamper):
    card, artifact = make_card()
    bad = tamper(artifact)

    with pytest.raises(ArtifactIntegrityError) as exc:
        load_model(bad, card)

    assert sha256_hex(bad) in exc.value.message
    assert card.artifact_sha256 in exc.value.message
    assert "refusing to load" in exc.value.message


def test_tampered_bytes_never_reach_the_unpickler(make_card):
    card, _ = make_card()
    payload = pickle.dumps(_RecordsUnpickling())
    UNPICKLED.clear()

    with pytest.raises(ArtifactIntegrityError):
        load_model(payload, card)
    assert UNPICKLED == []

    # Control: the same payload with a matching hash does reach joblib, so the check above is what stopped it.
    load_model(payload, card.model_copy(update={"artifact_sha256": sha256_hex(payload)}))
    assert UNPICKLED == ["unpickled"]


@pytest.mark.parametrize("library", PINNED_LIBRARIES)
def test_load_refuses_other_library_versions(make_card, library: str):
    card, artifact = make_card()
    stale = card.model_copy(update={"libraries": {**card.libraries, library: "0.0.1"}})

    with pytest.raises(IncompatibleModelError) as exc:
        load_model(artifact, stale)

    assert f"{library} 0.0.1 (this runtime has {library_versions()[library]})" in exc.value.message
    assert "breast-cancer" in exc.value.message


def test_compatibility_names_every_mismatch_and_missing_entries(make_card):
    card, _ = make_card()
    installed = {"scikit-learn": "9.9", "numpy": "9.9", "scipy": card.libraries["scipy"], "joblib": "9.9"}
    missing = card.model_copy(update={"libraries": {"numpy": card.libraries["numpy"]}})

    with pytest.raises(IncompatibleModelError) as exc:
        check_compatible(card, installed)
    with pytest.raises(IncompatibleModelError) as missing_exc:
        check_compatible(missing)

    assert "scikit-learn" in exc.value.message and "joblib" in exc.value.message and "scipy" not in exc.value.message
    assert "scikit-learn ? (this runtime" in missing_exc.value.message
    check_compatible(card)  # the runtime that trained it can load it


def test_library_versions_are_the_installed_ones():
    assert library_versions()["joblib"] == joblib.__version__
    assert set(library_versions()) == set(PINNED_LIBRARIES)


def test_dump_model_is_a_joblib_stream():
    data = dump_model({"weights": [1, 2, 3]})
    assert joblib.load(io.BytesIO(data)) == {"weights": [1, 2, 3]}
