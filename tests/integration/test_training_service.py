"""Training and registering through the service, with datasets uploaded to the data bucket."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from functions.adapters.registry import S3ModelRegistry
from functions.domain.artifacts import sha256_hex
from functions.errors import TrainingError
from functions.services.training import train_and_register
from tests.conftest import TRAINABLE

DATA = Path(__file__).resolve().parents[2] / "data"


def test_the_first_version_becomes_champion_and_later_ones_do_not(train_model, registry, cfg):
    first = train_model()
    second = train_model(estimator=first.estimator.model_copy(update={"params": {"C": 0.1}}))

    assert (first.version, second.version) == (1, 2)
    assert registry.get_aliases(cfg.model_name) == {"champion": 1}
    history = registry.alias_state(cfg.model_name).history
    assert [(h["alias"], h["to"], h["reason"]) for h in history] == [("champion", 1, "first registered version")]
    assert second.estimator.params == {"C": 0.1}


def test_the_card_records_where_the_model_came_from(train_model, registry, cfg):
    card = train_model()

    stored = registry.get_card(cfg.model_name, 1)
    assert stored == card
    data = stored.training_data
    digest = sha256_hex((DATA / "breast_cancer.csv").read_bytes())
    assert data.uri == f"s3://{cfg.data_bucket}/{cfg.datasets_prefix}/sha256={digest}/breast_cancer.csv"
    assert data.sha256 == digest
    assert (data.rows, data.train_rows, data.validation_rows, data.target) == (569, 426, 143, "target")
    assert stored.task == "binary_classification" and stored.primary_metric == "roc_auc"
    assert stored.metrics["roc_auc"] > 0.98
    assert stored.status == "registered" and stored.parent_version is None


def test_three_models_live_side_by_side(train_model, registry):
    for name in ("breast_cancer", "iris", "diabetes"):
        train_model(name)

    assert sorted(registry.list_models()) == ["breast-cancer", "diabetes", "iris"]
    assert {m: registry.resolve(m, "champion") for m in registry.list_models()} == {
        "breast-cancer": 1,
        "diabetes": 1,
        "iris": 1,
    }


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://mlops-local-data/datasets/missing.csv", "does not exist"),
        ("s3://some-other-bucket/datasets/breast_cancer.csv", "are read from s3://mlops-local-data only"),
        ("/tmp/breast_cancer.csv", "must be an s3://bucket/key URI"),
    ],
)
def test_bad_dataset_uris(registry, datasets, uri: str, message: str):
    with pytest.raises(TrainingError, match=message):
        train_and_register(
            registry, datasets, model_name="breast-cancer", dataset_uri=uri, spec=TRAINABLE["breast_cancer"].spec
        )
    assert registry.list_models() == []


def test_a_failed_training_leaves_the_champion_serving(train_model, registry, datasets, cfg):
    train_model()
    uri = datasets.upload("broken.csv", b"mean_radius,target\n1.0,0\nabc,1\n")

    with pytest.raises(TrainingError):
        train_and_register(
            registry, datasets, model_name=cfg.model_name, dataset_uri=uri, spec=TRAINABLE["breast_cancer"].spec
        )

    assert registry.get_aliases(cfg.model_name) == {"champion": 1}
    assert [c.version for c in registry.list_versions(cfg.model_name)] == [1]


def test_non_utf8_datasets_are_refused(registry, datasets):
    uri = datasets.upload("latin1.csv", "caf\u00e9,target\n1,0\n".encode("latin-1"))

    with pytest.raises(TrainingError, match="not UTF-8"):
        train_and_register(
            registry, datasets, model_name="breast-cancer", dataset_uri=uri, spec=TRAINABLE["breast_cancer"].spec
        )


class BarrierRegistry(S3ModelRegistry):
    """Both trainers read the aliases before either writes: the window in which two first versions race.

    Registrations themselves are serialised, because moto's conditional put is not atomic across threads
    (S3's is); the race under test is the one after registration.
    """

    _register_lock = threading.Lock()

    def __init__(self, s3, bucket, barrier: threading.Barrier) -> None:  # type: ignore[no-untyped-def]
        super().__init__(s3, bucket)
        self._barrier = barrier

    def register(self, name, artifact, build_card):  # type: ignore[no-untyped-def]
        with self._register_lock:
            return super().register(name, artifact, build_card)

    def get_aliases(self, name: str) -> dict[str, int]:
        aliases = super().get_aliases(name)
        self._barrier.wait(timeout=10)
        return aliases


def test_two_racing_first_registrations_both_succeed(aws, datasets, cfg):
    uri = datasets.upload("breast_cancer.csv", (DATA / "breast_cancer.csv").read_bytes())
    barrier = threading.Barrier(2)
    results: dict[int, object] = {}

    def run(i: int) -> None:
        registry = BarrierRegistry(aws, cfg.registry_bucket, barrier)
        try:
            results[i] = train_and_register(
                registry,
                datasets,
                model_name=cfg.model_name,
                dataset_uri=uri,
                spec=TRAINABLE["breast_cancer"].spec,
                description=f"trainer {i}",
            ).version
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert [r for r in results.values() if isinstance(r, Exception)] == []
    assert sorted(results.values()) == [1, 2]  # type: ignore[type-var]
    registry = S3ModelRegistry(aws, cfg.registry_bucket)
    assert registry.get_aliases(cfg.model_name)["champion"] in (1, 2)
