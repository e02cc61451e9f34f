"""EventBridge: the stage's bus, the schedules from functions/config.py, and the model-event rule to retrain."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.adapters.events import MODEL_DRIFT_DETECTED, MODEL_PERFORMANCE_DEGRADED
from functions.config import StageConfig
from functions.services.drift_hours import AGGREGATE_EVENT
from infra.naming import aggregate_rule_name, schedule_rule_name
from infra.settings import FunctionKey

DELIVERY_RETRIES = 2
DELIVERY_MAX_AGE = Duration.hours(1)


class EventsConstruct(Construct):
    """The custom bus ``config.event_bus_name``; schedule rules on the default bus (where schedules live).

    EventBridge retries delivery a little (throttling, an unavailable function); an event it cannot
    deliver goes to the failures queue. Lambda itself does not retry these functions (see FunctionConstruct).
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, failures: sqs.IQueue) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.failures = failures
        self.bus = events.EventBus(self, "Bus", event_bus_name=config.event_bus_name)
        self.rules: dict[str, events.Rule] = {}

    def _target(self, function: lambda_.IFunction, payload: dict[str, Any] | None = None) -> targets.LambdaFunction:
        return targets.LambdaFunction(
            function,
            event=None if payload is None else events.RuleTargetInput.from_object(payload),
            dead_letter_queue=self.failures,
            retry_attempts=DELIVERY_RETRIES,
            max_event_age=DELIVERY_MAX_AGE,
        )

    def schedule(self, key: FunctionKey, expression: str, function: lambda_.IFunction) -> events.Rule:
        """Run ``function`` on ``expression`` (``rate(...)`` or ``cron(...)``) with the "Scheduled Event"."""
        rule = events.Rule(
            self,
            f"{key.title().replace('_', '')}Schedule",
            rule_name=schedule_rule_name(self.config, key),
            description=f"{expression}: {key} (functions/config.py)",
            schedule=events.Schedule.expression(expression),
            targets=[self._target(function)],
        )
        self.rules[f"{key}-schedule"] = rule
        return rule

    def aggregation(self, expression: str, function: lambda_.IFunction) -> events.Rule:
        """Run drift-check's ``{"action": "aggregate"}`` on ``expression``: the recent hours' drift aggregates."""
        rule = events.Rule(
            self,
            "DriftAggregateSchedule",
            rule_name=aggregate_rule_name(self.config),
            description=f"{expression}: drift-check aggregate (functions/config.py)",
            schedule=events.Schedule.expression(expression),
            targets=[self._target(function, AGGREGATE_EVENT)],
        )
        self.rules["drift-aggregate-schedule"] = rule
        return rule

    def on_model_events(self, function: lambda_.IFunction) -> events.Rule:
        """``ModelDriftDetected`` / ``ModelPerformanceDegraded`` from drift-check -> ``function`` (retrain)."""
        rule = events.Rule(
            self,
            "ModelEventsToRetrain",
            rule_name=self.config.resource_name("model-events-to-retrain"),
            description="Drift or a performance drop reported by drift-check starts a retrain",
            event_bus=self.bus,
            event_pattern=events.EventPattern(
                source=[self.config.event_source],
                detail_type=[MODEL_DRIFT_DETECTED, MODEL_PERFORMANCE_DEGRADED],
            ),
            targets=[self._target(function)],
        )
        self.rules["model-events"] = rule
        return rule
