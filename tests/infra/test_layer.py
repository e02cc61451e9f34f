"""The built layer and function code: pinned versions, bytecode for 3.12, sizes, and a read-only cold request.

The smoke test runs the predict handler as Lambda would: Python 3.12, only the function code, the layer
and a stand-in for the runtime's boto3 on ``sys.path``, a read-only copy, no bytecode writing, the
function's environment, against moto on 127.0.0.1 serving a model trained and registered here.
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
from functions.config import function_environment, stage_config
from functions.local.runtime import MotoServer, ensure_buckets
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
    """A read-only copy of the build: what Lambda mounts at /var/task, /opt/python, and its runtime."""

    function: Path
    layer: Path
    runtime: Path

    @property
    def roots(self) -> list[Path]:
        return [self.function, self.layer, self.runtime]


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


@pytest.fixture(scope="module")
def readonly(manifest: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadOnlyBuild]:
    """The layer, the function code and the runtime stand-in copied and made read-only (``chmod -R a-w``)."""
    base = tmp_path_factory.mktemp("lambda")
    copy = ReadOnlyBuild(function=base / "task", layer=base / "opt" / "python", runtime=base / "runtime")
    shutil.copytree(layer_build.FUNCTION_DIR, copy.function, symlinks=True)
    shutil.copytree(layer_build.LAYER_PYTHON, copy.layer, symlinks=True)
    shutil.copytree(layer_build.RUNTIME_DIR, copy.runtime, symlinks=True)
    _set_writable(base, writable=False)
    yield copy
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
        s3 = session.client("s3", endpoint_url=endpoint)
        ensure_buckets(s3, CFG)
        datasets = S3DatasetStore(s3, CFG.data_bucket, CFG.datasets_prefix)
        uri = datasets.upload(CFG.demo.file, (ROOT / "data" / CFG.demo.file).read_bytes())
        registry = S3ModelRegistry(s3, CFG.registry_bucket)
        card = train_and_register(
            registry, datasets, model_name=CFG.model_name, dataset_uri=uri, spec=CFG.demo.training
        )
        yield Registered(endpoint=endpoint, model_version=card.version)
    finally:
        server.stop()


def test_layer_has_the_locked_versions_of_the_pinned_libraries(manifest: dict[str, Any]) -> None:
    lock = layer_build.read_lock()
    installed = layer_build.installed_versions(layer_build.LAYER_PYTHON)
    for name in ("numpy", "scipy", "scikit-learn", "joblib"):
        assert installed[name] == lock[name] == manifest["packages"][name]


def test_layer_leaves_out_pandas_and_what_the_runtime_provides() -> None:
    installed = layer_build.installed_versions(layer_build.LAYER_PYTHON)
    for name in ("pandas", "pyarrow", "boto3", "botocore", "s3transfer", "urllib3", "python-dateutil", "six"):
        assert name not in installed
        assert not (layer_build.LAYER_PYTHON / name).exists()
    assert "jmespath" in installed  # Powertools requires it, not only botocore
    assert not (layer_build.LAYER_PYTHON / "numpy" / "_core" / "tests").exists()
    assert (layer_build.LAYER_PYTHON / "numpy" / "testing").is_dir()  # scikit-learn imports it


def test_function_code_is_the_functions_package_without_the_local_runtime() -> None:
    package = layer_build.FUNCTION_DIR / "functions"
    assert (package / "handlers" / "predict.py").is_file()
    assert not (package / "local").exists()
    assert sorted(p.name for p in layer_build.FUNCTION_DIR.iterdir()) == ["functions"]


def test_every_module_has_unchecked_hash_bytecode_for_python312(python312: Path) -> None:
    magic = subprocess.run(
        [str(python312), "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    sources = [p for root in (layer_build.LAYER_PYTHON, layer_build.FUNCTION_DIR) for p in root.rglob("*.py")]
    assert len(sources) > 1000
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


def test_each_function_fits_the_budget(manifest: dict[str, Any]) -> None:
    sizes = manifest["sizes_bytes"]
    assert sizes["layer"] == layer_build.tree_bytes(layer_build.LAYER_DIR)
    assert sizes["function"] == layer_build.tree_bytes(layer_build.FUNCTION_DIR)
    assert set(sizes["per_function_total"]) == {"predict", "log_outcome", "drift_check", "retrain", "rollout"}
    for total in sizes["per_function_total"].values():
        assert total == sizes["layer"] + sizes["function"]
        assert total < manifest["budget_bytes"] == 200 * 1024 * 1024


def test_a_second_build_reuses_the_first(manifest: dict[str, Any]) -> None:
    assert layer_build.build() == manifest  # same build_seconds: read back, not rebuilt


def test_the_build_refuses_versions_other_than_the_locks() -> None:
    lock = layer_build.read_lock()
    layered = {name: lock[name] for name in ("numpy", "scipy", "scikit-learn", "joblib")}
    with pytest.raises(layer_build.BuildError, match=r"scikit-learn 1\.8\.0 \(requirements.lock: 1\.9\.1\)"):
        layer_build.check_versions({**layered, "scikit-learn": "1.8.0"}, lock)
    with pytest.raises(layer_build.BuildError, match="joblib missing"):
        layer_build.check_versions({k: v for k, v in layered.items() if k != "joblib"}, lock)


def test_the_build_fails_past_the_budget(capsys: pytest.CaptureFixture[str]) -> None:
    totals = dict.fromkeys(layer_build.FUNCTIONS, 1024)
    totals["retrain"] = layer_build.BUDGET_BYTES
    with pytest.raises(layer_build.BuildError, match="retrain 209,715,200 bytes"):
        layer_build.check_budget({"layer": 1000, "function": 24, "per_function_total": totals})
    assert "OVER BUDGET" in capsys.readouterr().out


def test_predict_answers_from_a_read_only_copy_under_python312(
    python312: Path, readonly: ReadOnlyBuild, registered: Registered
) -> None:
    env = layer_build.probe_env(
        {
            **function_environment(CFG, "predict"),
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": registered.endpoint,
        },
        roots=readonly.roots,
    )
    before = _snapshot(readonly.roots)
    result = subprocess.run(
        layer_build.probe_command(python312, "invoke", str(EVENTS_DIR / "predict_single.json")),
        env=env,
        cwd=readonly.function,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    child = json.loads(result.stdout.strip().splitlines()[-1])

    response = child["response"]
    assert response["statusCode"] == 200, response.get("body")
    body = json.loads(response["body"])
    assert len(body["predictions"]) == 1
    assert body["predictions"][0] in (0, 1)
    assert body["model_version"] == registered.model_version

    assert child["python"].startswith("3.12.")
    assert child["dont_write_bytecode"] is True
    assert child["imports_outside"] == []
    assert child["sys_path"][:3] == [str(r) for r in readonly.roots]
    assert not any("site-packages" in p for p in child["sys_path"])
    assert _snapshot(readonly.roots) == before, "the handler wrote into the read-only copy"
    assert not [p for root in readonly.roots for p in root.rglob("*.pyc") if str(p) not in before]
