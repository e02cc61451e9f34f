"""The static alarms, every one notifying the alarm topic.

Metrics the functions emit per model version (``CaptureFailures``, ``DriftVerdict``) are alarmed on
with a CloudWatch Metrics Insights query that sums or maximises over every version of the model,
since the serving version changes at run time. The challenger's own alarms during a model canary
are created and deleted by the rollout controller (``<predict>-canary-<model>-v<N>-errors`` and
``-p99-latency``, notifying this topic through ``ALARM_TOPIC_ARN``).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.config import StageConfig
from infra.naming import api_name, code_deploy_alarm_names
from infra.settings import InfraSettings

GTE = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LTE = cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD
GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
NOT_BREACHING = cloudwatch.TreatMissingData.NOT_BREACHING
DRIFT_PERIOD = Duration.hours(1)


def insights(query: str, period: Duration, label: str) -> cloudwatch.MathExpression:
    """A Metrics Insights query as an alarmable expression (one time series)."""
    return cloudwatch.MathExpression(expression=query, using_metrics={}, period=period, label=label)


def over_versions(config: StageConfig, aggregate: str, metric: str) -> str:
    """``SELECT <aggregate>(<metric>)`` over every model version of the stage's model."""
    return (
        f'SELECT {aggregate}({metric}) FROM SCHEMA("{config.metrics_namespace}", model_name, model_version)'
        f" WHERE model_name = '{config.model_name}'"
    )


class AlarmsConstruct(Construct):
    """Predict errors, throttles and p99 latency; API 5xx; capture failures; drift; retrain failures;
    rollbacks; failed asynchronous invocations; and the CodeDeploy rollback alarms (as one composite)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        settings: InfraSettings,
        topic: sns.ITopic,
        failures: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.action = actions.SnsAction(topic)
        self.alarms: dict[str, cloudwatch.AlarmBase] = {}
        a = settings.alarms
        period = Duration.seconds(a.period_seconds)
        predict = config.predict_function_name
        alias = f"{predict}:{config.rollout.alias_name}"

        def lambda_metric(name: str, statistic: str, **dims: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name=name,
                dimensions_map={"FunctionName": predict, **dims},
                statistic=statistic,
                period=period,
            )

        def model_metric(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=config.metrics_namespace,
                metric_name=name,
                dimensions_map={"model_name": config.model_name},
                statistic="Sum",
                period=period,
            )

        self._alarm(
            "api-5xx",
            "5xx answers of the API (handler errors, model unavailable, integration failures)",
            cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name="5XXError",
                dimensions_map={"ApiName": api_name(config), "Stage": settings.api.stage_name},
                statistic="Sum",
                period=period,
            ),
            a.api_5xx_threshold,
        )
        self._alarm(
            "predict-errors",
            "Failed predict invocations (crashes, timeouts, init failures)",
            lambda_metric("Errors", "Sum"),
            a.predict_errors_threshold,
        )
        self._alarm(
            "predict-throttles",
            "Throttled predict invocations",
            lambda_metric("Throttles", "Sum"),
            a.predict_throttles_threshold,
        )
        self._alarm(
            "predict-p99-latency",
            "p99 duration of predict through the live alias",
            lambda_metric("Duration", "p99", Resource=alias),
            settings.p99_latency_ms(config),
            comparison=GT,
            evaluation_periods=a.latency_evaluation_periods,
        )
        self._alarm(
            "capture-failures",
            "Captured requests that could not be written (predictions were still answered)",
            insights(over_versions(config, "SUM", "CaptureFailures"), period, "CaptureFailures"),
            a.capture_failures_threshold,
        )
        self._alarm(
            "drift-detected",
            "drift-check's verdict was DRIFT (DriftVerdict 1)",
            insights(over_versions(config, "MAX", "DriftVerdict"), DRIFT_PERIOD, "DriftVerdict"),
            1,
        )
        self._alarm(
            "drift-insufficient-data",
            "Every drift-check window was too thin to judge (DriftVerdict -1) for several checks in a row",
            insights(over_versions(config, "MAX", "DriftVerdict"), DRIFT_PERIOD, "DriftVerdict"),
            -1,
            comparison=LTE,
            evaluation_periods=a.thin_drift_windows,
        )
        self._alarm("retrain-failures", "retrain failed", model_metric("RetrainFailures"), 1)
        self._alarm(
            "model-rollbacks", "The rollout controller rolled a model canary back", model_metric("Rollbacks"), 1
        )
        self._alarm(
            "failed-invocations",
            "drift-check, retrain or rollout invocations (or their events) that failed for good",
            failures.metric_approximate_number_of_messages_visible(period=period, statistic="Maximum"),
            1,
        )
        errors_alarm, api_alarm = code_deploy_alarm_names(config)
        code_deploy = cloudwatch.CompositeAlarm(
            self,
            "CodeDeployRollback",
            composite_alarm_name=config.resource_name("code-deploy-rollback"),
            alarm_description="A CodeDeploy rollback alarm of the live alias fired (serving stack)",
            alarm_rule=cloudwatch.AlarmRule.any_of(
                *(
                    cloudwatch.AlarmRule.from_alarm(
                        cloudwatch.Alarm.from_alarm_name(self, f"Imported{i}", name), cloudwatch.AlarmState.ALARM
                    )
                    for i, name in enumerate((errors_alarm, api_alarm))
                )
            ),
        )
        code_deploy.add_alarm_action(self.action)
        self.alarms["code-deploy-rollback"] = code_deploy

    def _alarm(
        self,
        name: str,
        description: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        *,
        comparison: cloudwatch.ComparisonOperator = GTE,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            name.title().replace("-", ""),
            alarm_name=self.config.resource_name(name),
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=comparison,
            treat_missing_data=NOT_BREACHING,
        )
        alarm.add_alarm_action(self.action)
        self.alarms[name] = alarm
        return alarm
