"""The predict hot path's prepared EMF line says exactly what Powertools would print for the same metrics."""

from __future__ import annotations

import json

import pytest

from functions.observability import MetricLine, metrics

UNITS = {"Predictions": "Count", "PredictedRows": "Count", "PredictLatency": "Milliseconds"}


@pytest.mark.parametrize("values", [[1.0, 1, 0.123456789], [1.0, 1000, 12.5]])
def test_the_line_matches_powertools(capsys: pytest.CaptureFixture[str], values: list[float]):
    dimensions = {"model_name": "breast-cancer", "model_version": "3"}
    for name, value in dimensions.items():
        metrics.add_dimension(name=name, value=value)
    for (name, unit), value in zip(UNITS.items(), values, strict=True):
        metrics.add_metric(name=name, unit=unit, value=value)
    metrics.flush_metrics()
    expected = json.loads(capsys.readouterr().out)

    ours = json.loads(
        MetricLine(metrics.namespace or "", dimensions, UNITS).format(values, expected["_aws"]["Timestamp"])
    )

    assert ours == expected


def test_identity_outside_an_invocation_comes_from_lambdas_environment(monkeypatch) -> None:
    from functions.observability import identity_keys, logger

    logger.thread_safe_clear_keys()
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert identity_keys() == {}
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "mlops-prod-predict")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    assert identity_keys() == {"function_name": "mlops-prod-predict", "function_memory_size": "1024"}
    logger.thread_safe_append_keys(function_name="mlops-local-predict", correlation_id="x")
    assert identity_keys() == {"function_name": "mlops-local-predict"}, "an invocation's own keys win"
    logger.thread_safe_clear_keys()
