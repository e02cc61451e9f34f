"""CloudWatch: the canary's alarms and the metric sums the rollout controller reads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.errors import StorageError


def dimensions(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v} for k, v in sorted(values.items())]


class CloudWatchAdapter:
    """Metric alarms and statistics for one namespace."""

    def __init__(self, cloudwatch: Any, namespace: str) -> None:
        self._cw = cloudwatch
        self.namespace = namespace

    def _call(self, what: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._cw, what)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cloudwatch {what} failed: {type(exc).__name__}") from exc

    def put_alarm(
        self,
        name: str,
        metric: str,
        dims: Mapping[str, str],
        threshold: float,
        *,
        statistic: str = "Sum",
        period: int = 60,
        evaluation_periods: int = 1,
        description: str = "",
        actions: list[str] | None = None,
    ) -> None:
        """Create or replace an alarm on ``metric > threshold`` (missing data is not breaching)."""
        kwargs: dict[str, Any] = {
            "AlarmName": name,
            "AlarmDescription": description,
            "Namespace": self.namespace,
            "MetricName": metric,
            "Dimensions": dimensions(dims),
            "Period": period,
            "EvaluationPeriods": evaluation_periods,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": actions or [],
        }
        if statistic.startswith("p"):
            kwargs["ExtendedStatistic"] = statistic
        else:
            kwargs["Statistic"] = statistic
        self._call("put_metric_alarm", **kwargs)

    def delete_alarms(self, names: list[str]) -> None:
        if names:
            self._call("delete_alarms", AlarmNames=names)

    def alarms_in_alarm(self, names: list[str]) -> list[str]:
        if not names:
            return []
        response = self._call("describe_alarms", AlarmNames=names)
        return [a["AlarmName"] for a in response.get("MetricAlarms", []) if a.get("StateValue") == "ALARM"]

    def _datapoints(
        self, metric: str, dims: Mapping[str, str], start: datetime, end: datetime, **statistics: list[str]
    ) -> list[dict[str, Any]] | None:
        """The datapoints of ``metric`` with exactly ``dims``, one period covering the interval (None if empty)."""
        start = start.replace(microsecond=0)
        if end.microsecond:
            end = end.replace(microsecond=0) + timedelta(seconds=1)
        if end <= start:
            return None
        seconds = max(60, int((end - start).total_seconds()))
        period = max(60, (seconds // 60 + 1) * 60)
        response = self._call(
            "get_metric_statistics",
            Namespace=self.namespace,
            MetricName=metric,
            Dimensions=dimensions(dims),
            StartTime=start,
            EndTime=end,
            Period=period,
            **statistics,
        )
        return list(response.get("Datapoints", []))

    def total(self, metric: str, dims: Mapping[str, str], start: datetime, end: datetime) -> float:
        """Sum of ``metric`` with exactly ``dims`` between ``start`` and ``end`` (0 for an empty interval)."""
        points = self._datapoints(metric, dims, start, end, Statistics=["Sum"]) or []
        return float(sum(point.get("Sum", 0.0) for point in points))

    def maximum(self, metric: str, dims: Mapping[str, str], start: datetime, end: datetime) -> float | None:
        """Largest value of ``metric`` in the interval (None without data)."""
        values = [p["Maximum"] for p in self._datapoints(metric, dims, start, end, Statistics=["Maximum"]) or []]
        return float(max(values)) if values else None

    def percentile(
        self, metric: str, dims: Mapping[str, str], start: datetime, end: datetime, percent: float
    ) -> float | None:
        """The ``percent`` percentile of ``metric`` in the interval, as CloudWatch computes it (None when it gives
        none: no data, or a CloudWatch without percentiles such as moto). Of two periods, the larger."""
        name = f"p{percent:g}"
        points = self._datapoints(metric, dims, start, end, ExtendedStatistics=[name]) or []
        values = [p["ExtendedStatistics"][name] for p in points if name in (p.get("ExtendedStatistics") or {})]
        return float(max(values)) if values else None
