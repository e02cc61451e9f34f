"""What CloudWatch does for the deployed system, done locally: collect EMF, store metrics, judge alarms.

moto stores metric data and alarms but never moves an alarm's state, so the local runtime
evaluates each alarm from the metrics the handlers printed and sets its state with
``set_alarm_state``; the rollout controller then reads alarms exactly as it does on AWS.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import numpy as np

_COMPARE = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


@dataclass
class MetricPoint:
    namespace: str
    name: str
    dimensions: dict[str, str]
    value: float
    unit: str
    timestamp: datetime


@dataclass
class LocalMetrics:
    """Every metric value the handlers emitted as EMF, kept in memory and forwarded to (moto) CloudWatch."""

    points: list[MetricPoint] = field(default_factory=list)
    _forwarded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, emf: dict[str, Any]) -> None:
        meta = emf.get("_aws", {})
        stamp = datetime.fromtimestamp(meta.get("Timestamp", 0) / 1000.0, UTC)
        new: list[MetricPoint] = []
        for directive in meta.get("CloudWatchMetrics", []):
            for dimension_set in directive.get("Dimensions", [[]]):
                dims = {d: str(emf[d]) for d in dimension_set if d in emf}
                for metric in directive.get("Metrics", []):
                    raw = emf.get(metric["Name"])
                    values = raw if isinstance(raw, list) else [raw]
                    new.extend(
                        MetricPoint(
                            directive["Namespace"], metric["Name"], dims, float(v), metric.get("Unit", "None"), stamp
                        )
                        for v in values
                        if v is not None
                    )
        with self._lock:
            self.points.extend(new)

    def total(self, name: str, **dimensions: str) -> float:
        """Sum of ``name`` over points whose dimensions include ``dimensions``."""
        with self._lock:
            points = list(self.points)
        return float(
            sum(
                p.value
                for p in points
                if p.name == name and all(p.dimensions.get(k) == v for k, v in dimensions.items())
            )
        )

    def forward(self, cloudwatch: Any) -> int:
        """Put the points not yet forwarded into CloudWatch; returns how many."""
        with self._lock:
            pending, self._forwarded = self.points[self._forwarded :], len(self.points)
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for p in pending:
            by_namespace.setdefault(p.namespace, []).append(
                {
                    "MetricName": p.name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(p.dimensions.items())],
                    "Value": p.value,
                    "Unit": p.unit,
                    "Timestamp": p.timestamp,
                }
            )
        for namespace, data in by_namespace.items():
            for start in range(0, len(data), 500):
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 500])
        return len(pending)

    def _values(self, alarm: dict[str, Any], start: datetime, end: datetime) -> list[float]:
        dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        with self._lock:
            return [
                p.value
                for p in self.points
                if p.namespace == alarm.get("Namespace")
                and p.name == alarm.get("MetricName")
                and p.dimensions == dims
                and start <= p.timestamp <= end
            ]

    def evaluate_alarms(self, cloudwatch: Any, now: datetime | None = None) -> dict[str, str]:
        """Judge every metric alarm from the recorded points and set its state; returns name -> state."""
        now = now or datetime.now(UTC)
        states: dict[str, str] = {}
        for page in cloudwatch.get_paginator("describe_alarms").paginate():
            for alarm in page.get("MetricAlarms", []):
                window = timedelta(seconds=alarm.get("Period", 60) * alarm.get("EvaluationPeriods", 1))
                value = statistic(self._values(alarm, now - window, now), alarm)
                compare = _COMPARE.get(alarm.get("ComparisonOperator", ""), _COMPARE["GreaterThanThreshold"])
                breaching = value is not None and compare(value, alarm.get("Threshold", 0.0))
                state = "ALARM" if breaching else "OK"
                states[alarm["AlarmName"]] = state
                if alarm.get("StateValue") != state:
                    reason = (
                        "no data (not breaching)" if value is None else f"{value:g} vs threshold {alarm['Threshold']:g}"
                    )
                    cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue=state, StateReason=reason)
        return states


def statistic(values: list[float], alarm: dict[str, Any]) -> float | None:
    """The alarm's statistic (Sum, Average, SampleCount, Minimum, Maximum or pNN) of ``values``."""
    if not values:
        return None
    extended = alarm.get("ExtendedStatistic")
    if extended and extended.startswith("p"):
        return float(np.percentile(values, float(extended[1:])))
    stat = alarm.get("Statistic", "Sum")
    table = {
        "Sum": math.fsum(values),
        "SampleCount": float(len(values)),
        "Average": math.fsum(values) / len(values),
        "Minimum": min(values),
        "Maximum": max(values),
    }
    return float(table.get(stat, table["Sum"]))


class OutputRouter:
    """Stands in for ``sys.stdout``: EMF lines go to metrics, JSON log lines to ``logs``, the rest through."""

    def __init__(self, passthrough: IO[str], metrics: LocalMetrics, logs: IO[str] | None) -> None:
        self._passthrough = passthrough
        self._metrics = metrics
        self._logs = logs
        self._pending = threading.local()

    def write(self, text: str) -> int:
        buf = getattr(self._pending, "buf", "") + text
        *lines, rest = buf.split("\n")
        self._pending.buf = rest
        for line in lines:
            self._route(line)
        return len(text)

    def _route(self, line: str) -> None:
        if line.startswith('{"_aws"'):
            self._metrics.record(json.loads(line))
        elif line.startswith('{"level"'):
            if self._logs is not None:
                self._logs.write(line + "\n")
                self._logs.flush()
        else:
            self._passthrough.write(line + "\n")

    def flush(self) -> None:
        self._passthrough.flush()

    def isatty(self) -> bool:
        return self._passthrough.isatty()
