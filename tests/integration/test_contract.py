"""The OpenAPI contract, tested from outside: schemathesis generates requests from the document the
local server answers at GET /openapi.json and checks every response against it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from functions.bootstrap import AwsClients
from functions.domain.card import ModelCard
from functions.local.gateway import ApiServer
from functions.local.host import FunctionHost
from functions.local.runtime import ensure_resources
from functions.routes import ROUTES
from tests.conftest import CFG
from tests.events import event_body, load_event

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Cases per (operation, generation mode): POST /predict and POST /outcomes, positive and negative,
# give 4 x 130 = 520; the three GETs without parameters add one case each.
EXAMPLES = 130


@pytest.fixture
def api(aws: Any, boto_session: boto3.session.Session, champion: ModelCard) -> Iterator[str]:
    clients = AwsClients(s3=aws, **{s: boto_session.client(s) for s in ("lambda", "cloudwatch", "events", "iam")})
    ensure_resources(clients, CFG)
    host = FunctionHost(CFG, clients, seed=5)
    server = ApiServer(0, host, access_log=None)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        host.flush()


def _validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    """A JSON Schema validator for components/schemas/``name`` of ``document``."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return Draft202012Validator(schema)


def _fuzz(operation: Any, mode: GenerationMode, api: str) -> int:
    """Run ``EXAMPLES`` generated cases of ``operation`` against ``api`` with every check; returns how many ran."""
    ran = 0

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case: schemathesis.Case) -> None:
        nonlocal ran
        case.call_and_validate(base_url=api, checks=CHECKS)
        ran += 1

    call()
    return ran


def test_schemathesis_finds_no_failure_in_the_served_contract(api: str, champion: ModelCard) -> None:
    document = requests.get(f"{api}/openapi.json", timeout=30).json()
    assert document["info"]["title"].endswith(f"{champion.name} version {champion.version}")
    schema = schemathesis.openapi.from_dict(document)
    cases: Counter[str] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        modes = [GenerationMode.POSITIVE]
        if operation.body:
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            label = f"{operation.method.upper()} {operation.path} {mode.value}"
            cases[label] = _fuzz(operation, mode, api)
    assert set(cases) >= {f"{r.method} {r.path} positive" for r in ROUTES}
    assert cases["POST /predict negative"] >= 100 and cases["POST /outcomes negative"] >= 100, cases
    assert sum(cases.values()) >= 500, cases
    print(f"schemathesis: {sum(cases.values())} cases, 0 failures: {dict(cases)}")


def test_the_served_contract_names_each_feature_with_its_type_and_annotates_training_ranges(
    api: str, champion: ModelCard
) -> None:
    document = requests.get(f"{api}/openapi.json", timeout=30).json()
    Draft202012Validator.check_schema(document["components"]["schemas"]["Row"])
    row = document["components"]["schemas"]["Row"]
    assert row["required"] == champion.feature_schema.names and row["additionalProperties"] is False
    for spec in champion.feature_schema.features:
        served = row["properties"][spec.name]
        assert served["type"] == "number"
        assert (served["x-training-minimum"], served["x-training-maximum"]) == (spec.minimum, spec.maximum)
        assert "minimum" not in served and "maximum" not in served, "ranges are annotations: out-of-range is served"
    assert {route.path for route in ROUTES} == set(document["paths"])

    # The sample event's body is a valid request, and the answer to it a valid response.
    body = event_body(load_event("predict_single"))
    _validator(document, "PredictRequest").validate(body)
    answer = requests.post(f"{api}/predict", json=body, timeout=30)
    assert answer.status_code == 200
    _validator(document, "PredictResponse").validate(answer.json())
    rejected = requests.post(f"{api}/predict", json={"features": {}}, timeout=30)
    assert rejected.status_code == 422
    _validator(document, "Error").validate(rejected.json())
