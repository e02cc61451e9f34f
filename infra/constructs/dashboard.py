"""One CloudWatch dashboard: prediction volume, latency, errors by version, drift scores, rollout state."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from functions.config import StageConfig
from infra.naming import api_name
from infra.settings import InfraSettings

PERIOD = Duration.minutes(5)
WIDTH = 12


def search(expression: str, statistic: str, label: str, period: Duration = PERIOD) -> cloudwatch.MathExpression:
    """One line per matching series (e.g. per model version): ``SEARCH`` is for graphs, not alarms."""
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{expression}', '{statistic}', {int(period.to_seconds())})",
        using_metrics={},
        label=label,
        period=period,
    )


class DashboardConstruct(Construct):
    """``<app>-<stage>``: what a model does in production, per model version and per Lambda version."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        settings: InfraSettings,
        alarms: Sequence[cloudwatch.IAlarm],
    ) -> None:
        super().__init__(scope, construct_id)
        ns, model = config.metrics_namespace, config.model_name
        predict = config.predict_function_name
        by_version = f'{{{ns},model_name,model_version}} model_name="{model}"'
        lambda_by_version = f'{{AWS/Lambda,ExecutedVersion,FunctionName,Resource}} FunctionName="{predict}"'

        def model_metric(name: str, statistic: str = "Sum") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=ns,
                metric_name=name,
                dimensions_map={"model_name": model},
                statistic=statistic,
                period=PERIOD,
            )

        def graph(
            title: str, left: Sequence[cloudwatch.IMetric], right: Sequence[cloudwatch.IMetric] = ()
        ) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(left), right=list(right), width=WIDTH, height=6)

        api = {"ApiName": api_name(config), "Stage": settings.api.stage_name}
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=config.resource_name("model"),
            default_interval=Duration.days(1),
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {model} ({config.stage})\nPredictions, latency and errors per model version; drift"
                " per feature; rollout weight of the challenger. Alarms notify the alarms topic.",
                width=24,
                height=2,
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Prediction volume (requests per model version; API requests)",
                [search(f'{by_version} MetricName="Predictions"', "Sum", "")],
                [
                    cloudwatch.Metric(
                        namespace="AWS/ApiGateway",
                        metric_name="Count",
                        dimensions_map=api,
                        statistic="Sum",
                        period=PERIOD,
                        label="API requests",
                    )
                ],
            ),
            graph(
                "Latency (p99 predict ms per model version; p99 Lambda duration)",
                [search(f'{by_version} MetricName="PredictLatency"', "p99", "")],
                [
                    cloudwatch.Metric(
                        namespace="AWS/Lambda",
                        metric_name="Duration",
                        dimensions_map={"FunctionName": predict, "Resource": f"{predict}:{config.rollout.alias_name}"},
                        statistic="p99",
                        period=PERIOD,
                        label="duration p99 (alias)",
                    )
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Errors by model version (5xx of the handler)",
                [search(f'{by_version} MetricName="Errors"', "Sum", "")],
            ),
            graph(
                "Errors and invocations by Lambda version (alias live)",
                [search(f'{lambda_by_version} MetricName="Errors"', "Sum", "errors")],
                [search(f'{lambda_by_version} MetricName="Invocations"', "Sum", "invocations")],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Drift verdict (1 drift, 0 none, -1 too few rows) and prediction PSI",
                [search(f'{by_version} MetricName="DriftVerdict"', "Maximum", "", Duration.hours(1))],
                [search(f'{by_version} MetricName="PredictionPSI"', "Maximum", "", Duration.hours(1))],
            ),
            graph(
                "Feature PSI (per feature)",
                [
                    search(
                        f'{{{ns},feature,model_name,model_version}} model_name="{model}" MetricName="FeaturePSI"',
                        "Maximum",
                        "",
                        Duration.hours(1),
                    )
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Rollout: challenger weight, rollbacks",
                [model_metric("RolloutWeight", "Maximum")],
                [model_metric("Rollbacks")],
            ),
            graph(
                "Retrain: registered, rejected, skipped, failed; capture failures",
                [
                    model_metric(name)
                    for name in ("CandidateRegistered", "CandidateRejected", "RetrainSkipped", "RetrainFailures")
                ],
                [search(f'{by_version} MetricName="CaptureFailures"', "Sum", "")],
            ),
        )
        self.dashboard.add_widgets(cloudwatch.AlarmStatusWidget(alarms=list(alarms), width=24, height=4))
