"""The S3 model registry against moto: immutable versions, safe allocation, verified loads, aliases by CAS."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from functions.adapters.registry import S3ModelRegistry
from functions.config import stage_config
from functions.domain.artifacts import sha256_hex
from functions.domain.card import ModelCard
from functions.domain.inference import ServingGraph, load_serving_graph
from functions.domain.pipeline_io import load_pipeline
from functions.errors import (
    ArtifactIntegrityError,
    ConcurrentUpdateError,
    IncompatibleModelError,
    ModelNotFoundError,
    RegistryError,
)

CFG = stage_config("local")
NAME = CFG.model_name
ARTIFACT_KEY = "models/breast-cancer/versions/{}/model.onnx"  # written first: it claims the version
PIPELINE_KEY = "models/breast-cancer/versions/{}/model.skops"
CARD_KEY = "models/breast-cancer/versions/{}/card.json"


def serve(registry: S3ModelRegistry, version: int) -> ServingGraph:
    """What predict does with a version: read the verified graph and load it (canned prediction included)."""
    card = registry.get_card(NAME, version)
    return load_serving_graph(registry.read_artifact(card, "serving"), card)


@pytest.fixture
def register(registry: S3ModelRegistry, make_card) -> Callable[..., ModelCard]:
    """``register(**card_changes)``: register the breast-cancer artifact as the next version."""

    def run(on: S3ModelRegistry | None = None, **changes: Any) -> ModelCard:
        _, files = make_card()

        def build(version: int) -> ModelCard:
            return make_card(version=version, **changes)[0]

        return (on or registry).register(NAME, files, build)

    return run


def test_register_get_list_and_load(register, registry: S3ModelRegistry, aws, make_card):
    first = register(description="first")
    second = register(description="second", parent_version=1)

    assert (first.version, second.version) == (1, 2)
    assert registry.get_card(NAME, 2) == second
    assert [c.version for c in registry.list_versions(NAME)] == [1, 2]
    assert [c.description for c in registry.list_versions(NAME)] == ["first", "second"]
    assert registry.list_models() == [NAME]
    X = np.array([[float(v[0]) for v in first.baseline.reference_sample.values()]])
    assert serve(registry, 1).run(X, {}).shape == (1, 2)
    pipeline = load_pipeline(registry.read_artifact(first, "pipeline"), first)
    assert pipeline.predict_proba(X).shape == (1, 2)
    stored = aws.get_object(Bucket=CFG.registry_bucket, Key=ARTIFACT_KEY.format(1))["Body"].read()
    assert sha256_hex(stored) == first.artifact_sha256 == make_card()[0].artifact_sha256
    assert first.artifacts["serving"].file == "model.onnx" and first.artifacts["pipeline"].file == "model.skops"


def test_versions_are_written_once(register, registry: S3ModelRegistry, aws):
    register()
    before = aws.get_object(Bucket=CFG.registry_bucket, Key=CARD_KEY.format(1))["Body"].read()

    register()

    assert aws.get_object(Bucket=CFG.registry_bucket, Key=CARD_KEY.format(1))["Body"].read() == before
    versions = aws.list_object_versions(Bucket=CFG.registry_bucket, Prefix="models/breast-cancer/versions/1/")
    assert len(versions["Versions"]) == 3  # two artifacts and one card, never rewritten


def test_missing_versions_and_aliases(registry: S3ModelRegistry, register):
    with pytest.raises(ModelNotFoundError) as exc:
        registry.get_card(NAME, 1)
    assert (exc.value.name, exc.value.version) == (NAME, 1)
    assert registry.list_versions(NAME) == []
    assert registry.list_models() == []
    with pytest.raises(ModelNotFoundError, match="alias 'champion'"):
        registry.resolve(NAME, "champion")
    register()
    with pytest.raises(ModelNotFoundError):
        registry.get_card(NAME, 2)


@pytest.mark.parametrize("name", ["Breast-Cancer", "-x", "a/b", "", "a" * 64, "model_1"])
def test_invalid_model_names_are_refused(registry: S3ModelRegistry, name: str):
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.get_card(name, 1)


def test_a_card_must_describe_the_artifacts_it_registers(registry: S3ModelRegistry, make_card):
    card, files = make_card()
    wrong_hash = {**card.artifacts, "serving": card.artifacts["serving"].model_copy(update={"sha256": "0" * 64})}

    with pytest.raises(RegistryError, match="does not name the version"):
        registry.register(NAME, files, lambda v: card.model_copy(update={"version": v + 1}))
    with pytest.raises(ArtifactIntegrityError, match="failed verification"):
        registry.register(NAME, files, lambda v: card.model_copy(update={"version": v, "artifacts": wrong_hash}))
    with pytest.raises(RegistryError, match="lists"):
        registry.register(NAME, {"model.onnx": files["model.onnx"]}, lambda v: card.model_copy(update={"version": v}))
    assert registry.list_versions(NAME) == []  # no attempt committed a version


# -- racing registrations --------------------------------------------------------------------


class StaleListingRegistry(S3ModelRegistry):
    """Lists the allocated versions, then lets a rival register before the caller acts on the stale list."""

    def __init__(self, s3: Any, bucket: str, rival: Callable[[], Any]) -> None:
        super().__init__(s3, bucket)
        self._rival: Callable[[], Any] | None = rival

    def _allocated_versions(self, name: str) -> list[int]:
        allocated = super()._allocated_versions(name)
        if self._rival is not None:
            rival, self._rival = self._rival, None
            rival()
        return allocated


def test_racing_registrations_get_distinct_versions_and_both_cards_survive(aws, registry, register):
    rival_cards: list[ModelCard] = []
    racer = StaleListingRegistry(aws, CFG.registry_bucket, lambda: rival_cards.append(register(description="rival")))

    mine = register(on=racer, description="mine")

    assert (rival_cards[0].version, mine.version) == (1, 2)
    cards = registry.list_versions(NAME)
    assert [(c.version, c.description) for c in cards] == [(1, "rival"), (2, "mine")]
    assert serve(registry, 1) is not None and serve(registry, 2) is not None


def test_a_claimed_version_is_skipped_and_never_overwritten(aws, registry, register):
    # Another registration claimed version 1 (its artifact is written) and has not committed its card yet.
    aws.put_object(Bucket=CFG.registry_bucket, Key=ARTIFACT_KEY.format(1), Body=b"someone else's artifact")

    card = register()

    assert card.version == 2
    assert [c.version for c in registry.list_versions(NAME)] == [2]
    body = aws.get_object(Bucket=CFG.registry_bucket, Key=ARTIFACT_KEY.format(1))["Body"].read()
    assert body == b"someone else's artifact"


def test_registration_moves_past_several_claimed_versions(aws, registry, register):
    register()
    for version in (2, 3, 4):
        aws.put_object(Bucket=CFG.registry_bucket, Key=ARTIFACT_KEY.format(version), Body=b"claimed")

    assert register().version == 5
    assert [c.version for c in registry.list_versions(NAME)] == [1, 5]


# -- verified loads --------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "role"), [(ARTIFACT_KEY, "serving"), (PIPELINE_KEY, "pipeline")])
def test_reads_refuse_an_overwritten_artifact(aws, registry, register, key: str, role: str):
    card = register()
    original = aws.get_object(Bucket=CFG.registry_bucket, Key=key.format(1))["Body"].read()
    tampered = original[:-1] + bytes([original[-1] ^ 0xFF])
    aws.put_object(Bucket=CFG.registry_bucket, Key=key.format(1), Body=tampered)

    with pytest.raises(ArtifactIntegrityError) as exc:
        registry.read_artifact(card, role)  # type: ignore[arg-type]

    assert card.artifacts[role].sha256 in exc.value.message  # type: ignore[index]
    assert sha256_hex(tampered) in exc.value.message


def test_reads_refuse_a_deleted_artifact(aws, registry, register):
    card = register()
    aws.delete_object(Bucket=CFG.registry_bucket, Key=ARTIFACT_KEY.format(1))

    with pytest.raises(ArtifactIntegrityError, match="missing"):
        registry.read_artifact(card, "serving")
    # Versioning keeps what was deleted: the artifact is recoverable.
    versions = aws.list_object_versions(Bucket=CFG.registry_bucket, Prefix=ARTIFACT_KEY.format(1))
    assert len(versions["Versions"]) == 1 and len(versions["DeleteMarkers"]) == 1


def test_the_pipeline_refuses_a_card_from_other_library_versions(aws, registry, register):
    card = register()
    doc = json.loads(card.model_dump_json())
    doc["libraries"]["scikit-learn"] = "1.0.2"
    aws.put_object(Bucket=CFG.registry_bucket, Key=CARD_KEY.format(1), Body=json.dumps(doc).encode())
    stale = registry.get_card(NAME, 1)

    with pytest.raises(IncompatibleModelError, match="scikit-learn 1.0.2"):
        load_pipeline(registry.read_artifact(stale, "pipeline"), stale)
    assert serve(registry, 1) is not None  # the graph does not depend on scikit-learn's version


def test_an_invalid_stored_card_is_a_registry_error(aws, registry, register):
    register()
    aws.put_object(Bucket=CFG.registry_bucket, Key=CARD_KEY.format(1), Body=b'{"name": "breast-cancer"}')

    with pytest.raises(RegistryError, match="invalid"):
        registry.get_card(NAME, 1)


# -- aliases ---------------------------------------------------------------------------------


def test_set_aliases_moves_several_at_once_and_keeps_history(registry, register):
    register()
    register()
    registry.set_aliases(NAME, {"champion": 1}, expect={"champion": None}, reason="first")

    after = registry.set_aliases(NAME, {"champion": 2, "previous": 1}, expect={"champion": 1}, reason="promote 2")

    assert after == {"champion": 2, "previous": 1}
    assert registry.get_aliases(NAME) == {"champion": 2, "previous": 1}
    assert registry.resolve(NAME, "champion") == 2
    history = registry.alias_state(NAME).history
    assert [(h["alias"], h["from"], h["to"], h["reason"]) for h in history] == [
        ("champion", None, 1, "first"),
        ("champion", 1, 2, "promote 2"),
        ("previous", None, 1, "promote 2"),
    ]


def test_none_clears_an_alias(registry, register):
    register()
    registry.set_aliases(NAME, {"champion": 1, "challenger": 1})

    assert registry.set_aliases(NAME, {"challenger": None}) == {"champion": 1}


def test_cas_refuses_when_the_expected_value_no_longer_holds(registry, register):
    register()
    register()
    registry.set_aliases(NAME, {"champion": 1})

    with pytest.raises(ConcurrentUpdateError, match="alias 'champion' of breast-cancer is 1, expected 2"):
        registry.set_aliases(NAME, {"champion": 1, "previous": 2}, expect={"champion": 2})
    with pytest.raises(ConcurrentUpdateError):
        registry.set_aliases(NAME, {"champion": 2}, expect={"champion": None})

    assert registry.get_aliases(NAME) == {"champion": 1}


def test_aliases_point_only_at_registered_versions(registry, register):
    register()

    with pytest.raises(ModelNotFoundError):
        registry.set_aliases(NAME, {"champion": 9})
    with pytest.raises(RegistryError, match="unknown alias 'live'"):
        registry.set_aliases(NAME, {"live": 1})
    assert registry.get_aliases(NAME) == {}


class InterleavedRegistry(S3ModelRegistry):
    """Reads the alias document, then lets a rival write before the caller writes its change."""

    def __init__(self, s3: Any, bucket: str, rivals: list[Callable[[], Any]]) -> None:
        super().__init__(s3, bucket)
        self._rivals = list(rivals)

    def alias_state(self, name: str):  # type: ignore[no-untyped-def]
        state = super().alias_state(name)
        if self._rivals:
            self._rivals.pop(0)()
        return state


def test_concurrent_alias_writers_both_land_in_order(aws, registry, register):
    register()
    register()
    registry.set_aliases(NAME, {"champion": 1})
    rival = S3ModelRegistry(aws, CFG.registry_bucket)
    racer = InterleavedRegistry(
        aws,
        CFG.registry_bucket,
        [
            lambda: rival.set_aliases(NAME, {"challenger": 2}, reason="rival 1"),
            lambda: rival.set_aliases(NAME, {"previous": 1}, reason="rival 2"),
        ],
    )

    after = racer.set_aliases(NAME, {"champion": 2}, reason="mine")

    assert after == {"champion": 2, "challenger": 2, "previous": 1}
    assert registry.get_aliases(NAME) == after
    reasons = [h["reason"] for h in registry.alias_state(NAME).history]
    assert reasons == ["", "rival 1", "rival 2", "mine"]


def test_cas_expectation_is_checked_against_the_latest_document(aws, registry, register):
    register()
    register()
    registry.set_aliases(NAME, {"champion": 1})
    rival = S3ModelRegistry(aws, CFG.registry_bucket)
    racer = InterleavedRegistry(aws, CFG.registry_bucket, [lambda: rival.set_aliases(NAME, {"champion": 2})])

    with pytest.raises(ConcurrentUpdateError):
        racer.set_aliases(NAME, {"champion": 2, "previous": 1}, expect={"champion": 1})

    assert registry.get_aliases(NAME) == {"champion": 2}


def test_a_writer_that_never_wins_gives_up(aws, registry, register):
    register()
    rival = S3ModelRegistry(aws, CFG.registry_bucket)
    racer = InterleavedRegistry(
        aws, CFG.registry_bucket, [lambda: rival.set_aliases(NAME, {"challenger": 1}) for _ in range(30)]
    )

    with pytest.raises(ConcurrentUpdateError, match="gave up"):
        racer.set_aliases(NAME, {"champion": 1})

    assert "champion" not in registry.get_aliases(NAME)
