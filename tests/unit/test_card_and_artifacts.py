"""The model card's JSON contract, and loading artifacts only when they are what the card says."""

from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np
import pytest
import skops.io
from pydantic import ValidationError as PydanticValidationError
from sklearn.preprocessing import FunctionTransformer

from functions.domain.artifacts import sha256_hex
from functions.domain.card import ModelCard
from functions.domain.pipeline_io import (
    ALLOWED_TYPES,
    PINNED_LIBRARIES,
    check_compatible,
    dump_pipeline,
    library_versions,
    load_pipeline,
    load_vouched_pickle,
)
from functions.errors import ArtifactIntegrityError, IncompatibleModelError, UntrustedArtifactError

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
    assert summary["features"][1] == {
        "name": "sex",
        "kind": "categorical",
        "categories": ("sex_1", "sex_2"),
        "nullable": False,
    }
    assert set(summary["features"][0]) == {"name", "kind", "minimum", "maximum", "nullable"}
    assert "baseline" not in summary
    assert set(summary["artifacts"]) == {"serving", "pipeline"}
    assert summary["artifacts"]["serving"]["format"] == "onnx"
    assert summary["serving_graph"]["fidelity"]["max_scaled_difference"] <= 1e-6
    assert "canned" not in summary["serving_graph"]


BAD_CARD_FIELDS = [
    pytest.param({"version": 0}, id="version-zero"),
    pytest.param({"task": "clustering"}, id="unknown-task"),
    pytest.param({"status": "deleted"}, id="unknown-status"),
    pytest.param({"schema_version": 3}, id="future-schema"),
    pytest.param({"owner": "me"}, id="unknown-field"),
    pytest.param({"artifacts": {"weights": {}}}, id="unknown-artifact-role"),
]
BAD_ARTIFACT_FIELDS = [
    pytest.param({"sha256": "ABC"}, id="sha-not-hex"),
    pytest.param({"sha256": "a" * 63}, id="sha-short"),
    pytest.param({"bytes": 0}, id="empty-artifact"),
    pytest.param({"format": "pickle"}, id="unknown-format"),
]


@pytest.mark.parametrize("changes", BAD_CARD_FIELDS)
def test_card_rejects(make_card, changes: dict[str, Any]):
    card, _ = make_card()
    doc = {**card.model_dump(mode="json"), **changes}

    with pytest.raises(PydanticValidationError):
        ModelCard.model_validate(doc)


@pytest.mark.parametrize("changes", BAD_ARTIFACT_FIELDS)
def test_card_rejects_bad_artifact_records(make_card, changes: dict[str, Any]):
    card, _ = make_card()
    doc = card.model_dump(mode="json")
    doc["artifacts"]["serving"].update(changes)

    with pytest.raises(PydanticValidationError):
        ModelCard.model_validate(doc)


def test_a_schema_1_card_reads_as_a_version_without_a_serving_graph(make_card):
    card, _ = make_card()
    doc = card.model_dump(mode="json", exclude={"artifacts", "serving_graph", "upgraded_from"})
    doc.update(schema_version=1, artifact_sha256="ab" * 32, artifact_bytes=123)

    old = ModelCard.model_validate(doc)

    assert old.serving_artifact is None and old.serving_graph is None
    assert old.artifacts["pipeline"].model_dump() == {
        "file": "model.joblib",
        "format": "joblib",
        "sha256": "ab" * 32,
        "bytes": 123,
    }
    assert (old.artifact_sha256, old.artifact_bytes) == ("ab" * 32, 123)


def test_sha256_is_pinned():
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_skops_round_trip_predicts_the_same(make_card, trained):
    card, files = make_card()
    X = np.array(
        [[float(v) for v in card.baseline.reference_sample[f.name][:5]] for f in card.feature_schema.features]
    ).T

    model = load_pipeline(files["model.skops"], card)

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
    card, files = make_card()
    bad = tamper(files["model.skops"])

    with pytest.raises(ArtifactIntegrityError) as exc:
        load_pipeline(bad, card)

    assert sha256_hex(bad) in exc.value.message
    assert card.artifacts["pipeline"].sha256 in exc.value.message
    assert "refusing to load" in exc.value.message


def _describing(card: ModelCard, data: bytes, **ref: Any) -> ModelCard:
    """``card`` with its pipeline record edited to match ``data`` (what an attacker with bucket access does)."""
    pipeline = card.artifacts["pipeline"].model_copy(update={"sha256": sha256_hex(data), "bytes": len(data), **ref})
    return card.model_copy(update={"artifacts": {**card.artifacts, "pipeline": pipeline}})


@pytest.mark.parametrize("fmt", ["skops", "joblib"])
def test_a_pickle_with_a_matching_card_is_never_unpickled(make_card, fmt: str):
    card, _ = make_card()
    payload = pickle.dumps(_RecordsUnpickling())
    forged = _describing(card, payload, format=fmt)
    UNPICKLED.clear()

    with pytest.raises(UntrustedArtifactError):
        load_pipeline(payload, forged)

    assert UNPICKLED == []
    # Control: the same bytes do run code when unpickled, so the refusal above is what stopped it.
    pickle.loads(payload)
    assert UNPICKLED == ["unpickled"]


def test_skops_refuses_types_outside_the_allow_list(make_card):
    card, _ = make_card()
    hostile = skops.io.dumps(FunctionTransformer(func=os.system, kw_args={"command": "touch /tmp/pwned"}))

    with pytest.raises(UntrustedArtifactError) as exc:
        load_pipeline(hostile, _describing(card, hostile))

    assert "allow-list" in exc.value.message
    assert "system" in exc.value.message


def test_dump_refuses_what_load_would_refuse():
    with pytest.raises(UntrustedArtifactError):
        dump_pipeline(FunctionTransformer(func=os.system))


def test_our_pipelines_need_only_the_allow_list(trained):
    for model in trained.values():
        untrusted = skops.io.get_untrusted_types(data=dump_pipeline(model.model))
        assert set(untrusted) <= set(ALLOWED_TYPES)


def test_a_vouched_pickle_opens_only_with_its_recorded_hash():
    payload = pickle.dumps({"weights": [1, 2, 3]})

    with pytest.raises(UntrustedArtifactError) as exc:
        load_vouched_pickle(payload, "0" * 64)

    assert "not opening it" in exc.value.message
    assert load_vouched_pickle(payload, sha256_hex(payload)) == {"weights": [1, 2, 3]}


@pytest.mark.parametrize("library", PINNED_LIBRARIES)
def test_load_refuses_other_library_versions(make_card, library: str):
    card, files = make_card()
    stale = card.model_copy(update={"libraries": {**card.libraries, library: "0.0.1"}})

    with pytest.raises(IncompatibleModelError) as exc:
        load_pipeline(files["model.skops"], stale)

    assert f"{library} 0.0.1 (this runtime has {library_versions()[library]})" in exc.value.message
    assert "breast-cancer" in exc.value.message


def test_compatibility_names_every_mismatch_and_missing_entries(make_card):
    card, _ = make_card()
    installed = {"scikit-learn": "9.9", "numpy": "9.9", "scipy": card.libraries["scipy"]}
    missing = card.model_copy(update={"libraries": {"numpy": card.libraries["numpy"]}})

    with pytest.raises(IncompatibleModelError) as exc:
        check_compatible(card, installed)
    with pytest.raises(IncompatibleModelError) as missing_exc:
        check_compatible(missing)

    assert "scikit-learn" in exc.value.message and "numpy" in exc.value.message and "scipy" not in exc.value.message
    assert "scikit-learn ? (this runtime" in missing_exc.value.message
    check_compatible(card)  # the runtime that trained it can load it


def test_library_versions_are_the_installed_ones(make_card):
    card, _ = make_card()
    assert set(PINNED_LIBRARIES) <= set(library_versions())
    assert {k: card.libraries[k] for k in library_versions()} == library_versions()
    assert {"skl2onnx", "onnx", "onnxruntime"} <= set(card.libraries)
