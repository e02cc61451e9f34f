"""Wiring: AWS clients, adapters and services built once per execution environment."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import botocore.session
from botocore.config import Config

from functions import shutdown
from functions.adapters.capture import CaptureWriter
from functions.adapters.outcomes import S3OutcomeStore
from functions.adapters.registry import S3ModelRegistry
from functions.config import NO_CHAMPION
from functions.domain.card import ModelCard
from functions.errors import MlopsError, ModelUnavailableError, NoChampionError, UnconvertedModelError
from functions.observability import MetricLine, identity_keys, logger, metrics, traced
from functions.services.predict import PredictService, load_serving_model
from functions.settings import LogOutcomeSettings, PredictSettings

RETRY_LOAD_AFTER_SECONDS = 5.0
UNAVAILABLE = "no model is loaded; the function's logs say why"
T = TypeVar("T")
_CLIENT_CONFIG = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=3, read_timeout=10)


def new_client(service: str) -> Any:
    """A client honouring ``AWS_ENDPOINT_URL`` (the local runtime points it at moto).

    botocore itself, not boto3: boto3 adds nothing the functions use (no resources, no managed
    transfers) and importing it, with s3transfer, costs a cold start about 50 ms.
    """
    return botocore.session.get_session().create_client(service, config=_CLIENT_CONFIG)


def s3_client() -> Any:
    """An S3 client honouring ``AWS_ENDPOINT_URL`` (the local runtime points it at moto)."""
    return new_client("s3")


class AwsClients:
    """The AWS (botocore) clients of one execution environment, each created on first use and then reused."""

    def __init__(self, **clients: Any) -> None:
        self._clients: dict[str, Any] = dict(clients)
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """The client of ``service``, created on first use."""
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    client = self._clients[service] = new_client(service)
        return client

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def events(self) -> Any:
        return self.client("events")

    @property
    def cloudwatch(self) -> Any:
        return self.client("cloudwatch")

    @property
    def lambda_(self) -> Any:
        return self.client("lambda")

    @property
    def codedeploy(self) -> Any:
        return self.client("codedeploy")


def capture_failure_reporter(model_name: str, model_version: int) -> Callable[[str, int], None]:
    """Log a failed or dropped capture write and count its rows in ``CaptureFailures`` at once.

    Called on the capture writer's thread as the failure happens, so the count does not wait for the
    environment's next request (which may never come).
    """
    line = MetricLine(
        metrics.namespace or "",
        {"model_name": model_name, "model_version": str(model_version)},
        {"CaptureFailures": "Count"},
    )

    identity = identity_keys()  # the writer thread logs for the environment that made it

    def report(message: str, rows: int) -> None:
        logger.warning(message, extra={"rows": rows, **identity})
        line.emit([float(rows)])

    return report


class _Lazy:
    """Builds a value on first use; after a failure, retries no more often than every few seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed_at = 0.0
        self._failed = False
        self._reason = UNAVAILABLE  # what a 503 says: only an operator's next step, never internals

    def _build_or_refuse(self, build: Callable[[], T]) -> T:
        """Run ``build``; any failure is logged in full and answered as a detail-free 503 error."""
        if self._failed and time.monotonic() - self._failed_at < RETRY_LOAD_AFTER_SECONDS:
            raise ModelUnavailableError(self._reason)
        try:
            value = build()
        except Exception as exc:
            self._failed, self._failed_at = True, time.monotonic()
            self._reason = exc.message if isinstance(exc, UnconvertedModelError | NoChampionError) else UNAVAILABLE
            code = exc.code if isinstance(exc, MlopsError) else "unexpected"
            logger.exception("model unavailable", extra={"error_code": code})
            raise ModelUnavailableError(self._reason) from exc
        self._failed = False
        return value


class PredictEnvironment(_Lazy):
    """One predict execution environment: the settings, the S3 client, the model, the capture."""

    def __init__(self, settings: PredictSettings, s3: Any | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.s3 = s3 or s3_client()
        self.registry = S3ModelRegistry(self.s3, settings.registry_bucket)
        self._service: PredictService | None = None
        self.capture: CaptureWriter | None = None

    @property
    def loaded(self) -> PredictService | None:
        return self._service

    def service(self) -> PredictService:
        """The predict service, loading the model on first use."""
        if self._service is not None:
            return self._service
        with self._lock:
            if self._service is not None:
                return self._service
            self._service = self._build_or_refuse(self._build)
            return self._service

    def _build(self) -> PredictService:
        s = self.settings
        if s.model_version == NO_CHAMPION:
            raise NoChampionError(
                f"this deployment has no champion of {s.model_name!r} to serve yet: the first promotion "
                "(`mlops train --champion`, or a finished canary) publishes a version that serves it"
            )
        started = time.perf_counter()
        with traced("load_model"):
            loaded = load_serving_model(self.registry, s.model_name, s.pinned_version, s.model_alias)
        self.capture = CaptureWriter(
            self.s3,
            s.data_bucket,
            s.capture_prefix,
            s.model_name,
            max_rows=s.capture_max_rows,
            max_age_seconds=s.capture_max_age_seconds,
            on_failure=capture_failure_reporter(s.model_name, loaded.card.version),
        )
        shutdown.on_shutdown(self.capture.flush)  # written, not lost, when Lambda stops the environment
        logger.info(
            "model loaded",
            extra={
                "model_name": loaded.card.name,
                "model_version": loaded.card.version,
                "pinned": s.pinned_version is not None,
                "load_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return PredictService(
            loaded=loaded,
            max_rows=s.max_batch_rows,
            capture=self.capture,
            sample_rate=s.capture_sample_rate,
            rng=random.Random(),
        )


class OutcomeEnvironment(_Lazy):
    """One log-outcome execution environment: the outcome store and the model card for type checks."""

    def __init__(self, settings: LogOutcomeSettings, s3: Any | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.s3 = s3 or s3_client()
        self.registry = S3ModelRegistry(self.s3, settings.registry_bucket)
        self.store = S3OutcomeStore(self.s3, settings.data_bucket, settings.outcomes_prefix)
        self._card: ModelCard | None = None

    def card(self) -> ModelCard:
        if self._card is not None:
            return self._card
        with self._lock:
            if self._card is None:
                self._card = self._build_or_refuse(self._resolve_card)
            return self._card

    def _resolve_card(self) -> ModelCard:
        version = self.registry.resolve(self.settings.model_name, self.settings.model_alias)
        return self.registry.get_card(self.settings.model_name, version)
