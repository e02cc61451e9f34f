"""The built layers and function code: pinned versions, what each layer leaves out, bytecode, budgets, and
read-only cold starts under Python 3.12.

The smoke tests run handlers as Lambda would: Python 3.12, only the function code and the function's
layers (merged into one ``opt/python``, as Lambda merges them) on ``sys.path``, a read-only copy, no
bytecode writing, the function's environment, against moto on 127.0.0.1: predict serves the registered
model without scikit-learn; retrain trains, converts, checks and registers a candidate.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.adapters.datasets import S3DatasetStore
from functions.adapters.registry import S3ModelRegistry
from functions.bootstrap import AwsClients
from functions.config import function_environment, stage_config
from functions.local.runtime import MotoServer, ensure_resources
from functions.services.training import train_and_register
from layers import build as layer_build
from tests.events import EVENTS_DIR

pytestmark = pytest.mark.infra

CFG = stage_config("local")
ROOT = Path(__file__).resolve().parents[2]
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": CFG.region,
    "AWS_REGION": CFG.region,
}
UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source not checked


@dataclass(frozen=True)
class ReadOnlyBuild:
    """A read-only copy of one function's build: what Lambda mounts at /var/task and /opt/python."""

    function: Path
    layers: Path

    @property
    def roots(self) -> list[Path]:
        return [self.function, self.layers]


@dataclass(frozen=True)
class Registered:
    endpoint: str
    model_version: int


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    """``python -m layers.build``, which skips the work when the pins and the function code are unchanged."""
    try:
        return layer_build.build()
    except layer_build.BuildError as exc:
        pytest.fail(f"layer build failed: {exc}")


@pytest.fixture(scope="module")
def python312(manifest: dict[str, Any]) -> Path:
    """The target Python; its absence fails the test (a skipped smoke test would prove nothing)."""
    try:
        return layer_build.find_python312()
    except layer_build.BuildError as exc:
        pytest.fail(str(exc))


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _snapshot(roots: list[Path]) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in root.rglob("*") if p.is_file()}


def readonly_copy(base: Path, function: str) -> ReadOnlyBuild:
    """``function``'s code and layers copied under ``base`` (layers merged, in order) and made read-only."""
    copy = ReadOnlyBuild(function=base / "task", layers=base / "opt" / "python")
    shutil.copytree(layer_build.FUNCTION_DIR, copy.function, symlinks=True)
    for layer in layer_build.FUNCTION_LAYERS[function]:
        shutil.copytree(layer_build.layer_python(layer), copy.layers, symlinks=True, dirs_exist_ok=True)
    _set_writable(base, writable=False)
    return copy


@pytest.fixture(scope="module")
def readonly(manifest: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ReadOnlyBuild]]:
    """Read-only copies (``chmod -R a-w``) of predict's and retrain's builds."""
    bases = {name: tmp_path_factory.mktemp(f"lambda-{name}") for name in ("predict", "retrain")}
    yield {name: readonly_copy(base, name) for name, base in bases.items()}
    for base in bases.values():
        _set_writable(base, writable=True)  # so the temporary directory can be removed


@pytest.fixture(scope="module")
def registered() -> Iterator[Registered]:
    """moto in server mode on 127.0.0.1 with the local stage's buckets and the demo model trained and registered."""
    server = MotoServer()
    endpoint = server.start()
    try:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=CFG.region
        )
        clients = {name: session.client(name, endpoint_url=endpoint) for name in ("s3", "events", "lambda", "iam")}
        ensure_resources(AwsClients(**clients), CFG)
        s3 = clients["s3"]
        datasets = S3DatasetStore(s3, CFG.data_bucket, CFG.datasets_prefix)
        uri = datasets.upload(CFG.demo.file, (ROOT / "data" / CFG.demo.file).read_bytes())
        registry = S3ModelRegistry(s3, CFG.registry_bucket)
        card = train_and_register(
            registry, datasets, model_name=CFG.model_name, dataset_uri=uri, spec=CFG.demo.training
        )
        yield Registered(endpoint=endpoint, model_version=card.version)
    finally:
        server.stop()


def test_each_layer_has_the_locked_versions_of_its_packages(manifest: dict[str, Any]) -> None:
    lock = layer_build.read_lock()
    for layer, names in layer_build.LAYER_PACKAGES.items():
        installed = layer_build.installed_versions(layer_build.layer_python(layer))
        assert installed == manifest["layers"][layer]["packages"]
        for name in names:
            assert installed[name] == lock[name], (layer, name)
        assert all(installed[name] == lock[name] for name in installed if name in lock)
    serving = manifest["layers"]["serving"]["packages"]
    assert serving["boto3"] == lock["boto3"] and serving["botocore"] == lock["botocore"]  # bundled, not the runtime's


def test_the_serving_layer_carries_no_scikit_learn_and_only_what_serving_loads() -> None:
    root = layer_build.layer_python("serving")
    installed = layer_build.installed_versions(root)
    for name in ("scikit-learn", "scipy", "joblib", "skops", "onnx", "skl2onnx", "pandas", "sympy", "protobuf"):
        assert name not in installed
    for folder in ("sklearn", "scipy", "joblib", "skops", "onnx", "skl2onnx", "pandas", "google"):
        assert not (root / folder).exists()
    assert not list((root / "onnxruntime" / "capi").glob("libonnxruntime.so*"))
    assert list((root / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state*.so"))
    assert not (root / "onnxruntime" / "transformers").exists()
    services = sorted(p.name for p in (root / "botocore" / "data").iterdir() if p.is_dir())
    assert services == sorted(layer_build.AWS_SERVICES)
    assert (root / "numpy.libs").is_dir() and not (root / "numpy" / "_core" / "tests").exists()


def test_the_science_layer_holds_the_loop_and_nothing_of_the_serving_layer() -> None:
    science = layer_build.installed_versions(layer_build.layer_python("science"))
    serving = layer_build.installed_versions(layer_build.layer_python("serving"))
    assert {"scikit-learn", "scipy", "joblib", "skops", "onnx", "skl2onnx", "threadpoolctl"} <= set(science)
    assert not set(science) & set(serving)
    assert "pandas" not in science and not (layer_build.layer_python("science") / "pandas").exists()
    assert (layer_build.layer_python("science") / "numpy").exists() is False  # numpy comes from the serving layer


def test_every_offered_estimator_kind_was_trained_with_both_layers_and_served_by_the_serving_layer(
    manifest: dict[str, Any],
) -> None:
    from functions.domain.estimators import ESTIMATOR_KINDS

    trained = manifest["verified"]["science"]
    assert {key.split(":")[1] for key in trained} == set(ESTIMATOR_KINDS)
    assert set(manifest["verified"]["serving"]) == set(trained)
    assert all(entry["max_scaled_difference"] <= 1e-6 for entry in trained.values())


def test_function_code_is_the_functions_package_without_the_local_runtime() -> None:
    package = layer_build.FUNCTION_DIR / "functions"
    assert (package / "handlers" / "predict.py").is_file()
    assert not (package / "local").exists()
    assert sorted(p.name for p in layer_build.FUNCTION_DIR.iterdir()) == ["functions"]


def test_serving_layer_and_code_have_unchecked_hash_bytecode_for_python312(python312: Path) -> None:
    magic = subprocess.run(
        [str(python312), "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    roots = [layer_build.layer_python(n) for n, compiled in layer_build.BYTECODE.items() if compiled]
    sources = [p for root in (*roots, layer_build.FUNCTION_DIR) for p in root.rglob("*.py")]
    assert len(sources) > 500  # a sanity floor: the walk found the packages
    missing, wrong = [], []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        if not pyc.is_file():
            missing.append(str(source))
            continue
        header = pyc.read_bytes()[:8]
        if header[:4].hex() != magic or int.from_bytes(header[4:8], "little") != UNCHECKED_HASH:
            wrong.append(str(pyc))
    assert not missing, f"{len(missing)} modules without bytecode, e.g. {missing[:3]}"
    assert not wrong, f"{len(wrong)} .pyc not unchecked-hash for 3.12, e.g. {wrong[:3]}"
    uncompiled = [n for n, compiled in layer_build.BYTECODE.items() if not compiled]
    assert not [p for n in uncompiled for p in layer_build.layer_python(n).rglob("*.pyc")]


def test_each_function_fits_its_budget(manifest: dict[str, Any]) -> None:
    sizes = manifest["sizes_bytes"]
    assert sizes["function"] == layer_build.tree_bytes(layer_build.FUNCTION_DIR)
    for layer in layer_build.LAYER_PACKAGES:
        assert sizes["layers"][layer] == layer_build.tree_bytes(layer_build.LAYERS_DIR / layer)
    assert set(sizes["per_function_total"]) == {"predict", "log_outcome", "drift_check", "retrain", "rollout"}
    for name, total in sizes["per_function_total"].items():
        layers = manifest["function_layers"][name]
        assert total == sizes["function"] + sum(sizes["layers"][layer] for layer in layers)
        assert total <= manifest["budgets_bytes"][name]
    assert manifest["function_layers"]["predict"] == manifest["function_layers"]["log_outcome"] == ["serving"]
    assert manifest["budgets_bytes"]["predict"] == manifest["budgets_bytes"]["log_outcome"] == 150_000_000
    assert max(manifest["budgets_bytes"].values()) == 250_000_000


def test_a_second_build_reuses_the_first(manifest: dict[str, Any]) -> None:
    assert layer_build.build() == manifest  # same build_seconds: read back, not rebuilt


def test_the_build_refuses_versions_other_than_the_locks() -> None:
    lock = layer_build.read_lock()
    required = layer_build.LAYER_PACKAGES["science"]
    layered = {name: lock[name] for name in required}
    with pytest.raises(layer_build.BuildError, match=r"scikit-learn 1\.8\.0 \(requirements.lock: 1\.9\.1\)"):
        layer_build.check_versions({**layered, "scikit-learn": "1.8.0"}, lock, required)
    with pytest.raises(layer_build.BuildError, match="joblib missing"):
        layer_build.check_versions({k: v for k, v in layered.items() if k != "joblib"}, lock, required)


def test_the_build_fails_past_a_budget(capsys: pytest.CaptureFixture[str]) -> None:
    totals = dict.fromkeys(layer_build.FUNCTIONS, 1024)
    totals["predict"] = 150_000_001
    with pytest.raises(layer_build.BuildError, match=r"predict 150,000,001 bytes \(budget 150,000,000\)"):
        layer_build.check_budget({"layers": {"serving": 1000}, "function": 24, "per_function_total": totals})
    assert "OVER BUDGET" in capsys.readouterr().out
    totals["predict"], totals["retrain"] = 150_000_000, 250_000_001
    with pytest.raises(layer_build.BuildError, match="retrain 250,000,001"):
        layer_build.check_budget({"layers": {"serving": 1000}, "function": 24, "per_function_total": totals})


def test_a_dependency_placed_in_no_layer_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        layer_build,
        "LAYER_PACKAGES",
        {k: tuple(n for n in v if n != "skops") for k, v in layer_build.LAYER_PACKAGES.items()},
    )
    with pytest.raises(layer_build.BuildError, match="skops, which no layer holds"):
        layer_build.layer_requirements("serving")


def test_a_client_of_a_service_whose_data_is_pruned_fails_the_build(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text('clients.client("sqs")\nnew_client( "s3")\n')
    assert layer_build.called_services([source]) == {"sqs", "s3"}
    assert layer_build.called_services(layer_build.function_sources()) <= set(layer_build.AWS_SERVICES)


def _run_handler(
    python312: Path, build: ReadOnlyBuild, function: str, event: Path, registered: Registered
) -> dict[str, Any]:
    """Run ``function``'s handler on ``event`` in the probe from the read-only copy; check nothing was written."""
    env = layer_build.probe_env(
        {**function_environment(CFG, function), **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": registered.endpoint},
        roots=build.roots,
    )
    before = _snapshot(build.roots)
    result = subprocess.run(
        layer_build.probe_command(python312, "invoke", function, str(event)),
        env=env,
        cwd=build.function,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    child: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert child["python"].startswith("3.12.")
    assert child["dont_write_bytecode"] is True
    assert child["imports_outside"] == []
    assert child["sys_path"][:2] == [str(r) for r in build.roots]
    assert not any("site-packages" in p for p in child["sys_path"])
    assert _snapshot(build.roots) == before, "the handler wrote into the read-only copy"
    assert not [p for root in build.roots for p in root.rglob("*.pyc") if str(p) not in before]
    return child


def test_predict_answers_from_a_read_only_copy_under_python312_without_scikit_learn(
    python312: Path, readonly: dict[str, ReadOnlyBuild], registered: Registered
) -> None:
    child = _run_handler(python312, readonly["predict"], "predict", EVENTS_DIR / "predict_single.json", registered)

    response = child["response"]
    assert response["statusCode"] == 200, response.get("body")
    body = json.loads(response["body"])
    assert len(body["predictions"]) == 1
    assert body["predictions"][0] in (0, 1)
    assert body["model_version"] == registered.model_version
    assert "onnxruntime" in child["loaded"]
    assert not {"sklearn", "scipy", "joblib", "skops", "pandas", "onnx", "skl2onnx"} & set(child["loaded"])


def test_retrain_registers_a_candidate_from_a_read_only_copy_under_python312(
    python312: Path, readonly: dict[str, ReadOnlyBuild], registered: Registered, tmp_path: Path
) -> None:
    forced = tmp_path / "retrain_forced.json"  # the operator event, forced past the cooldown of the first model
    forced.write_text(json.dumps({**json.loads((EVENTS_DIR / "retrain_operator.json").read_text()), "force": True}))

    child = _run_handler(python312, readonly["retrain"], "retrain", forced, registered)

    result = child["response"]
    assert result["status"] == "registered", result.get("reasons")
    assert result["candidate_version"] == registered.model_version + 1
    assert {"sklearn", "onnxruntime", "skl2onnx", "skops"} <= set(child["loaded"])
