"""The deployed functions, hosted in this process: one execution environment per Lambda version,
requests routed by the ``live`` alias weights (which moto stores but does not honour)."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from functions.adapters.lambda_alias import PINNED_VARIABLE
from functions.bootstrap import AwsClients, OutcomeEnvironment, PredictEnvironment
from functions.config import StageConfig, function_environment
from functions.errors import MlopsError
from functions.handlers import drift_check, log_outcome, predict, retrain
from functions.handlers import rollout as rollout_handler
from functions.local.events import LocalContext
from functions.observability import bound, isolated_metrics
from functions.settings import (
    DriftCheckSettings,
    LogOutcomeSettings,
    PredictSettings,
    RetrainSettings,
    RolloutSettings,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
ROUTING_CACHE_SECONDS = 0.5


def settings_values(config: StageConfig, function: str, **overrides: str) -> dict[str, str]:
    """A function's settings as the stack sets them (environment variable names, lower-cased)."""
    values = {k.lower(): v for k, v in function_environment(config, function).items()}
    values.update({k.lower(): v for k, v in overrides.items()})
    return values


class ServedModelMismatchError(MlopsError):
    """The alias routes to a Lambda version pinned to another model than the one this runtime serves."""

    code = "served_model_mismatch"


class FairLock:
    """A lock that goes to its waiters in the order they came (``threading.Lock`` promises no order).

    Requests queued for one execution environment are then served first come, first served, and
    no request waits behind many later ones, which is what set the local server's p99 under load.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def __enter__(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by the holder that hands the lock over

    def __exit__(self, *_exc: object) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().release()  # still held: ownership passes to the next waiter
            else:
                self._held = False


class Environment:
    """One execution environment: its handler, one invocation at a time, with metrics of its own.

    Environments run at the same time, as on Lambda: a drift-check or rollout tick that takes
    seconds never holds up predict. Each has its own Powertools metrics buffer (Powertools keeps
    one in class state shared by every ``Metrics()`` in a process), and each invocation's log keys
    are its own (``bind_invocation``).
    """

    def __init__(self, handler: Handler, namespace: str) -> None:
        self.handler = handler
        self.metrics = isolated_metrics(namespace)
        self._lock = FairLock()

    def invoke(self, event: dict[str, Any], context: LocalContext) -> dict[str, Any]:
        with self._lock, bound(self.metrics):
            return self.handler(event, context)


class FunctionHost:
    """Hosts one execution environment per function (and per predict version), each serving one
    request at a time, as Lambda does; different environments run concurrently."""

    def __init__(self, config: StageConfig, clients: AwsClients, seed: int | None = None) -> None:
        self.config = config
        self.clients = clients
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # guards the tables below, never held while a handler runs
        self._predict: dict[str, tuple[PredictEnvironment, Environment]] = {}
        self._routing: tuple[float, list[tuple[str, float]]] = (0.0, [])
        self.served_by_version: dict[str, int] = {}
        self.outcome_env = OutcomeEnvironment(
            LogOutcomeSettings.model_validate(settings_values(config, "log_outcome")), s3=clients.s3
        )
        rollout_settings = RolloutSettings.model_validate(settings_values(config, "rollout"))
        self.rollout = rollout_handler.RolloutFunction(rollout_settings, clients, config.metrics_namespace)
        drift_env = drift_check.DriftCheckEnvironment(
            DriftCheckSettings.model_validate(settings_values(config, "drift_check")), clients
        )
        retrain_env = retrain.RetrainEnvironment(
            RetrainSettings.model_validate(settings_values(config, "retrain")), clients
        )
        self.handlers: dict[str, Environment] = {}
        self.add_handler("log_outcome", log_outcome.instrument(log_outcome.LogOutcomeFunction(self.outcome_env)))
        self.add_handler("drift_check", drift_check.instrument(drift_check.DriftCheckFunction(drift_env)))
        self.add_handler("retrain", retrain.instrument(retrain.RetrainFunction(retrain_env)))
        self.add_handler("rollout", rollout_handler.instrument(self.rollout))

    # -- predict, by alias weight ---------------------------------------------------------------------
    def _weights(self) -> list[tuple[str, float]]:
        expires, weights = self._routing
        if time.monotonic() < expires:
            return weights
        routing = self.rollout.ports.deployer.routing()
        extra = sum(routing.weights.values())
        weights = [(routing.stable_version, 1.0 - extra), *routing.weights.items()]
        self._routing = (time.monotonic() + ROUTING_CACHE_SECONDS, weights)
        return weights

    def choose_version(self) -> str:
        """A Lambda version drawn by the alias weights, as Lambda routes an alias invocation."""
        draw, cumulative = self._rng.random(), 0.0
        weights = self._weights()
        for version, weight in weights:
            cumulative += weight
            if draw < cumulative:
                return version
        return weights[0][0]

    def predict_environment(self, version: str) -> tuple[PredictEnvironment, Environment]:
        """The execution environment of one Lambda version (its MODEL_VERSION pin, if any, applies)."""
        found = self._predict.get(version)
        if found is not None:
            return found
        with self._lock:
            found = self._predict.get(version)
            if found is None:
                variables = self.rollout.ports.deployer.variables(version)
                pin = variables.get(PINNED_VARIABLE)
                published_for = variables.get("MODEL_NAME", self.config.model_name)
                if pin is not None and published_for != self.config.model_name:
                    raise ServedModelMismatchError(
                        f"Lambda version {version} is pinned to {published_for!r} v{pin}, not to a version of "
                        f"{self.config.model_name!r}: one served model per stage (use a fresh `mlops serve` for it)"
                    )
                overrides = {PINNED_VARIABLE: pin} if pin is not None else {}
                settings = PredictSettings.model_validate(settings_values(self.config, "predict", **overrides))
                env = PredictEnvironment(settings, s3=self.clients.s3)
                handler = predict.instrument(predict.PredictFunction(env))
                found = self._predict[version] = (env, Environment(handler, self.config.metrics_namespace))
            return found

    def add_handler(self, function: str, handler: Handler) -> None:
        """Host ``handler`` as ``function``'s execution environment (replacing any before it)."""
        self.handlers[function] = Environment(handler, self.config.metrics_namespace)

    def context(self, function: str, version: str = "$LATEST") -> LocalContext:
        """A context with the function's deployed name, memory and timeout (the stage's deployment settings)."""
        name = self.config.resource_name(function.replace("_", "-"))
        sizing = self.config.deployment.functions.get(function) if self.config.deployment else None  # type: ignore[call-overload]
        if sizing is None:
            return LocalContext(function_name=name, function_version=version)
        return LocalContext(
            function_name=name,
            function_version=version,
            memory_limit_in_mb=sizing.memory_mb,
            deadline_ms=time.time() * 1000 + sizing.timeout_seconds * 1000,
        )

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        """Invoke ``function`` (predict through the alias weights) in its own execution environment."""
        if function != "predict":
            return self.handlers[function].invoke(event, self.context(function))
        with self._lock:
            version = self.choose_version()
            self.served_by_version[version] = self.served_by_version.get(version, 0) + 1
        return self.predict_environment(version)[1].invoke(event, self.context("predict", version))

    def flush(self) -> None:
        """Write every buffered capture record now."""
        for env, _ in list(self._predict.values()):
            if env.capture is not None:
                env.capture.flush()
