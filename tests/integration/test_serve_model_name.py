"""`mlops serve --model-name N` serves model N; only the demo model is trained from the shipped data."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request

import pytest

from functions.adapters.datasets import S3DatasetStore
from functions.adapters.registry import S3ModelRegistry
from functions.config import stage_config
from functions.local.runtime import LocalRuntime
from functions.services.training import train_and_register
from tests.conftest import DATA, TRAINABLE


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - loopback
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


@pytest.mark.usefixtures("isolated_process_state")
def test_a_named_model_is_served_once_it_is_trained_and_nothing_else_is_trained_for_it() -> None:
    said: list[str] = []
    config = stage_config("local").model_copy(update={"model_name": "iris"})
    with LocalRuntime(config, log_stream=io.StringIO(), progress=said.append) as runtime:
        registry = S3ModelRegistry(runtime.s3, config.registry_bucket)
        assert registry.list_versions("iris") == [] and registry.list_versions(stage_config("local").model_name) == []
        assert any("registry has no champion of 'iris'" in line for line in said)
        status, body = _get(f"{runtime.api_url}/health")
        assert (status, body["model_name"]) == (503, "iris")

        iris = TRAINABLE["iris"]
        datasets = S3DatasetStore(runtime.s3, config.data_bucket, config.datasets_prefix)
        uri = datasets.upload(iris.file, (DATA / iris.file).read_bytes())
        train_and_register(registry, datasets, model_name="iris", dataset_uri=uri, spec=iris.spec)
        for _ in range(40):  # a failed load is retried after a few seconds
            status, body = _get(f"{runtime.api_url}/health")
            if status == 200:
                break
            time.sleep(0.25)
        assert (status, body["model_name"], body["model_version"]) == (200, "iris", 1)


@pytest.mark.usefixtures("isolated_process_state")
def test_a_running_server_answers_with_the_new_champion_right_after_train_champion() -> None:
    from functions.local.cli import main

    config = stage_config("local")
    with LocalRuntime(config, log_stream=io.StringIO(), progress=lambda _m: None) as runtime:
        assert _get(f"{runtime.api_url}/health")[1]["model_version"] == 1
        assert main(["train", "--champion", "--endpoint-url", runtime.moto.endpoint_url]) == 0
        for _ in range(20):  # the host reads the alias at most every half second, as Lambda routes it
            status, body = _get(f"{runtime.api_url}/health")
            if body.get("model_version") == 2:
                break
            time.sleep(0.1)
        assert (status, body["model_version"], body["pinned"]) == (200, 2, True)

        assert main(["restore", "--endpoint-url", runtime.moto.endpoint_url]) == 0
        for _ in range(20):
            status, body = _get(f"{runtime.api_url}/health")
            if body.get("model_version") == 1:
                break
            time.sleep(0.1)
        assert (status, body["model_version"]) == (200, 1)
