"""Shared fixtures: tiers by folder, moto-backed AWS, trained models, function settings and contexts."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from threadpoolctl import threadpool_limits

from functions.adapters.datasets import S3DatasetStore
from functions.adapters.registry import S3ModelRegistry
from functions.bootstrap import AwsClients, OutcomeEnvironment, PredictEnvironment
from functions.config import StageConfig, function_environment, stage_config
from functions.domain.artifacts import sha256_hex
from functions.domain.card import (
    ArtifactRef,
    DriftBaseline,
    EstimatorSpec,
    ModelCard,
    PredictionBaseline,
    TrainingDataRef,
)
from functions.domain.dataset import parse_csv
from functions.domain.packaging import CardFacts, PackagedModel, card_builder, package_model
from functions.domain.pipeline_io import library_versions
from functions.domain.schema import FeatureSchema, FeatureSpec
from functions.domain.training import TrainedModel, TrainingSpec, train
from functions.handlers.log_outcome import LogOutcomeFunction
from functions.handlers.predict import PredictFunction
from functions.local.runtime import MotoServer, ensure_resources
from functions.observability import metrics
from functions.services.training import train_and_register
from functions.settings import LogOutcomeSettings, PredictSettings

TESTS = Path(__file__).resolve().parent
DATA = TESTS.parent / "data"
TIERS = ("unit", "integration")
CFG = stage_config("local")


@dataclass(frozen=True)
class Trainable:
    """A data set in ``data/`` and how a model is trained on it."""

    model_name: str
    file: str
    spec: TrainingSpec


TRAINABLE: dict[str, Trainable] = {
    "breast_cancer": Trainable(CFG.model_name, CFG.demo.file, CFG.demo.training),
    "iris": Trainable(
        "iris",
        "iris.csv",
        TrainingSpec(
            task="multiclass_classification",
            target="species",
            estimator=EstimatorSpec(kind="logistic_regression"),
        ),
    ),
    "diabetes": Trainable(
        "diabetes",
        "diabetes.csv",
        TrainingSpec(
            task="regression",
            target="progression",
            categorical=["sex"],
            estimator=EstimatorSpec(kind="ridge", params={"alpha": 1.0}),
        ),
    ),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier, taken from the folder it lives in."""
    for item in items:
        parts = item.path.relative_to(TESTS).parts if item.path.is_relative_to(TESTS) else ()
        if len(parts) > 1 and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


def _refuse_socket(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("unit tests must not open network connections")


@pytest.fixture(autouse=True)
def _tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests get no sockets at all; every test starts without stray function settings in the environment."""
    if request.node.get_closest_marker("unit"):
        monkeypatch.setattr(socket.socket, "connect", _refuse_socket)
        monkeypatch.setattr(socket.socket, "connect_ex", _refuse_socket)
        monkeypatch.setattr(socket, "create_connection", _refuse_socket)
    names = set(function_environment(CFG, "predict")) | set(function_environment(CFG, "log_outcome"))
    for name in names | {"MODEL_VERSION", "MODEL_ALIAS", "AWS_LAMBDA_FUNCTION_NAME"}:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """Run numeric code on one thread, as the functions do on Lambda (OMP_NUM_THREADS=1 in their environment)."""
    with threadpool_limits(limits=int(function_environment(CFG, "predict")["OMP_NUM_THREADS"])):
        yield


@pytest.fixture(autouse=True)
def _metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Metrics are shared process state: give them a namespace and start each test empty."""
    monkeypatch.setattr(metrics, "namespace", CFG.metrics_namespace)
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


@pytest.fixture
def isolated_process_state() -> Iterator[None]:
    """The CLI and the local runtime point boto3 at their moto server through the environment and swap stdout."""
    saved_env, saved_stdout = dict(os.environ), sys.stdout
    yield
    os.environ.clear()
    os.environ.update(saved_env)
    sys.stdout = saved_stdout


@pytest.fixture
def cfg() -> StageConfig:
    return CFG


# -- pure domain ---------------------------------------------------------------------------


def read_dataset(name: str) -> Any:
    t = TRAINABLE[name]
    return parse_csv(
        (DATA / t.file).read_text(), t.spec.target, set(t.spec.categorical), regression=t.spec.task == "regression"
    )


@pytest.fixture(scope="session")
def trained() -> dict[str, TrainedModel]:
    """One model per data set, trained once per session (pure domain, no AWS)."""
    return {name: train(read_dataset(name), TRAINABLE[name].spec) for name in TRAINABLE}


@pytest.fixture(scope="session")
def packaged(trained: dict[str, TrainedModel]) -> dict[str, PackagedModel]:
    """Each session model converted and checked once: its ONNX graph, skops pipeline and their card records."""
    return {name: package_model(model, TRAINABLE[name].spec.task) for name, model in trained.items()}


@pytest.fixture(scope="session")
def make_card(
    trained: dict[str, TrainedModel], packaged: dict[str, PackagedModel]
) -> Callable[..., tuple[ModelCard, dict[str, bytes]]]:
    """``make_card(name, version=1, **changes)``: a model card and the files (name -> bytes) it describes."""

    def build(name: str = "breast_cancer", version: int = 1, **changes: Any) -> tuple[ModelCard, dict[str, bytes]]:
        t, model, package = TRAINABLE[name], trained[name], packaged[name]
        facts = CardFacts(
            name=t.model_name,
            task=t.spec.task,
            target=t.spec.target,
            estimator=t.spec.estimator,
            training_data=TrainingDataRef(
                uri=f"s3://{CFG.data_bucket}/{CFG.datasets_prefix}/{t.file}",
                sha256=sha256_hex((DATA / t.file).read_bytes()),
                rows=model.train_rows + model.validation_rows,
                target=t.spec.target,
                train_rows=model.train_rows,
                validation_rows=model.validation_rows,
            ),
            metrics=model.metrics,
            primary_metric=model.primary_metric,
        )
        card = card_builder(package, model, facts, lambda: datetime(2026, 11, 23, 16, 0, tzinfo=UTC))(version)
        return card.model_copy(update=changes), dict(package.files)

    return build


@pytest.fixture(scope="session")
def minimal_card() -> Callable[..., ModelCard]:
    """``minimal_card(task=..., classes=...)``: the smallest valid card, for tests of the card's contract only."""

    def build(**changes: Any) -> ModelCard:
        fields: dict[str, Any] = {
            "name": "toy",
            "version": 1,
            "created_at": datetime(2026, 11, 23, tzinfo=UTC),
            "artifacts": {"pipeline": ArtifactRef(file="model.skops", format="skops", sha256="0" * 64, bytes=1)},
            "libraries": library_versions(),
            "task": "binary_classification",
            "target": "y",
            "classes": [0, 1],
            "feature_schema": FeatureSchema(features=(FeatureSpec(name="x", kind="numeric"),)),
            "training_data": TrainingDataRef(
                uri="s3://bucket/toy.csv", sha256="0" * 64, rows=4, target="y", train_rows=3, validation_rows=1
            ),
            "estimator": EstimatorSpec(kind="logistic_regression"),
            "metrics": {"roc_auc": 0.5},
            "primary_metric": "roc_auc",
            "baseline": DriftBaseline(
                numeric={}, categorical={}, reference_sample={}, reference_size=0, prediction=PredictionBaseline()
            ),
        }
        fields.update(changes)
        return ModelCard(**fields)

    return build


# -- AWS (moto, in-process) ------------------------------------------------------------------


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    """One boto3 session for the whole run: its loader caches the S3 service model across tests.

    ``mock_aws`` resets ``boto3.DEFAULT_SESSION``, so ``boto3.client`` would reload the model every test.
    Clients made from this session are still mocked: moto hooks every botocore session created after import.
    """
    return boto3.session.Session(region_name=CFG.region)


@pytest.fixture
def aws(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, boto_session: boto3.session.Session
) -> Iterator[Any]:
    """An S3 client inside ``mock_aws`` with the local stage's buckets (registry versioned)."""
    if request.node.get_closest_marker("unit"):
        pytest.fail("unit tests must not use AWS, not even moto")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", CFG.region)
    monkeypatch.setenv("AWS_REGION", CFG.region)
    with mock_aws():
        s3 = boto_session.client("s3")
        for bucket in (CFG.registry_bucket, CFG.data_bucket):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=CFG.registry_bucket, VersioningConfiguration={"Status": "Enabled"})
        yield s3


@pytest.fixture
def registry(aws: Any) -> S3ModelRegistry:
    return S3ModelRegistry(aws, CFG.registry_bucket)


@pytest.fixture
def datasets(aws: Any) -> S3DatasetStore:
    return S3DatasetStore(aws, CFG.data_bucket, CFG.datasets_prefix)


@pytest.fixture
def train_model(registry: S3ModelRegistry, datasets: S3DatasetStore) -> Callable[..., ModelCard]:
    """``train_model("iris", **spec_changes)``: upload the CSV and train and register through the service."""

    def run(name: str = "breast_cancer", **spec_changes: Any) -> ModelCard:
        t = TRAINABLE[name]
        uri = datasets.upload(t.file, (DATA / t.file).read_bytes())
        spec = t.spec.model_copy(update=spec_changes)
        return train_and_register(registry, datasets, model_name=t.model_name, dataset_uri=uri, spec=spec)

    return run


@pytest.fixture
def champion(train_model: Callable[..., ModelCard]) -> ModelCard:
    """Version 1 of the breast-cancer model, which becomes champion."""
    return train_model("breast_cancer")


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto in server mode with the local stage's resources; this process and its children talk to it."""
    server = MotoServer()
    url = server.start()
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    for var, value in {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": CFG.region,
        "AWS_REGION": CFG.region,
    }.items():
        monkeypatch.setenv(var, value)
    ensure_resources(AwsClients(), CFG)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def predict_function(aws: Any) -> Callable[..., PredictFunction]:
    """``predict_function(**settings)``: a fresh predict execution environment over moto."""

    def build(**overrides: Any) -> PredictFunction:
        fields: dict[str, Any] = {
            "registry_bucket": CFG.registry_bucket,
            "data_bucket": CFG.data_bucket,
            "model_name": CFG.model_name,
            "capture_prefix": CFG.capture_prefix,
        }
        fields.update(overrides)
        return PredictFunction(PredictEnvironment(PredictSettings(**fields), s3=aws))

    return build


@pytest.fixture
def outcome_function(aws: Any) -> Callable[..., LogOutcomeFunction]:
    """``outcome_function(**settings)``: a fresh log-outcome execution environment over moto."""

    def build(**overrides: Any) -> LogOutcomeFunction:
        fields: dict[str, Any] = {
            "registry_bucket": CFG.registry_bucket,
            "data_bucket": CFG.data_bucket,
            "model_name": CFG.model_name,
            "outcomes_prefix": CFG.outcomes_prefix,
        }
        fields.update(overrides)
        return LogOutcomeFunction(OutcomeEnvironment(LogOutcomeSettings(**fields), s3=aws))

    return build


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, str]]:
    """``function_env("predict", MODEL_VERSION="2")``: set a function's environment as the stacks do."""

    def apply(function: str, **extra: str) -> dict[str, str]:
        env = {**function_environment(CFG, function), **extra}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return env

    return apply


@dataclass
class FakeLambdaContext:
    """The attributes of a Lambda context that Powertools reads."""

    function_name: str = "mlops-local-predict"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlops-local-predict:live"
    aws_request_id: str = "3f1e2d3c-4b5a-4697-8877-665544332211"
    log_group_name: str = "/aws/lambda/mlops-local-predict"
    log_stream_name: str = "2026/11/23/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
