"""`python -m benchmarks.layer_bench`: each function's unzipped size; predict's cold start with and without bytecode.

A cold start is a fresh Python 3.12 process with only predict's function code and its layer (the
serving layer: numpy, onnxruntime, pydantic, Powertools, botocore) on ``sys.path``, from a read-only
copy, without bytecode writing: it imports the predict handler, loads the model's ONNX graph from moto
S3 and answers one request (``layers/probe.py invoke predict``). The same packages with every ``.pyc``
deleted are timed alternately. Merges its figures into .bench/latest.json.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from benchmarks.harness import AWS_ENV, BENCH_DIR, ROOT, MotoServer, predict_env, progress
from functions.config import stage_config
from layers import build as layer_build

RUNS = 7  # timed runs per variant, alternating, after one untimed run of each
TARGET_RATIO = 0.4
RESULTS = BENCH_DIR / "latest.json"
EVENT = ROOT / "events" / "predict_single.json"


def register_model(endpoint: str) -> int:
    """Create the local stage's buckets on moto and train and register the demo model; returns its version."""
    from functions.adapters.datasets import S3DatasetStore
    from functions.adapters.registry import S3ModelRegistry
    from functions.local.runtime import ensure_buckets
    from functions.services.training import train_and_register

    cfg = stage_config("local")
    session = boto3.session.Session(
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=cfg.region,
    )
    s3 = session.client("s3", endpoint_url=endpoint)
    ensure_buckets(s3, cfg)
    datasets = S3DatasetStore(s3, cfg.data_bucket, cfg.datasets_prefix)
    uri = datasets.upload(cfg.demo.file, (ROOT / "data" / cfg.demo.file).read_bytes())
    registry = S3ModelRegistry(s3, cfg.registry_bucket)
    return train_and_register(
        registry, datasets, model_name=cfg.model_name, dataset_uri=uri, spec=cfg.demo.training
    ).version


def readonly_copy(base: Path, *, bytecode: bool) -> list[Path]:
    """Predict's code and layers copied under ``base`` (layers merged, as Lambda does), read-only; sys.path order."""
    roots = [base / "task", base / "opt" / "python"]
    shutil.copytree(layer_build.FUNCTION_DIR, roots[0], symlinks=True)
    for layer in layer_build.FUNCTION_LAYERS["predict"]:
        shutil.copytree(layer_build.layer_python(layer), roots[1], symlinks=True, dirs_exist_ok=True)
    if not bytecode:
        for root in roots:
            layer_build.remove_bytecode(root)
    subprocess.run(["chmod", "-R", "a-w", str(base)], check=True)
    return roots


def cold_start(python312: Path, roots: list[Path], env: dict[str, str]) -> dict[str, float]:
    """One cold start in a fresh process; the child's own timings and the parent's wall clock."""
    started = time.perf_counter()
    child = layer_build.run_probe(python312, "invoke", ["predict", str(EVENT)], layer_build.probe_env(env, roots=roots))
    wall_ms = (time.perf_counter() - started) * 1000.0
    status = child["response"]["statusCode"]
    if status != 200:
        raise RuntimeError(f"predict answered {status}: {child['response'].get('body')}")
    if child["imports_outside"]:
        raise RuntimeError(f"imports from outside the build: {child['imports_outside'][:5]}")
    return {
        "total_ms": child["total_ms"],
        "import_ms": child["import_ms"],
        "first_request_ms": child["first_request_ms"],
        "wall_ms": wall_ms,
    }


def merge_results(figures: dict[str, float]) -> None:
    """Add these figures to .bench/latest.json, keeping every other key (read-modify-write)."""
    BENCH_DIR.mkdir(exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(figures)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def _median(samples: list[dict[str, float]], key: str) -> float:
    return statistics.median(s[key] for s in samples)


def report(manifest: dict[str, Any], samples: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Print the sizes and the cold-start table; return the flat figures."""
    sizes = manifest["sizes_bytes"]
    budgets = manifest["budgets_bytes"]
    print()
    print("unzipped sizes, decimal bytes (code + the function's layers, against its budget):")
    for name, size in sizes["layers"].items():
        print(f"  {name + ' layer':<16}{size / 1e6:8.1f} MB")
    print(f"  {'function code':<16}{sizes['function'] / 1e6:8.1f} MB")
    for name, total in sizes["per_function_total"].items():
        layers = " + ".join(manifest["function_layers"][name])
        print(f"  {name:<16}{total / 1e6:8.1f} MB of {budgets[name] / 1e6:.0f} MB  code + {layers}")
    print()
    print(f"predict cold start, Python {layer_build.PYTHON_VERSION}, read-only, no bytecode writing, median of {RUNS}:")
    print(f"  {'':<22}{'total':>9}{'import':>9}{'1st req':>9}{'wall':>9}   (ms; total = import + model load + request)")
    for label, key in (("with bytecode", "bytecode"), ("without bytecode", "no_bytecode")):
        runs = samples[key]
        row = "".join(f"{_median(runs, k):9.0f}" for k in ("total_ms", "import_ms", "first_request_ms", "wall_ms"))
        print(f"  {label:<22}{row}")
    with_pyc, without = _median(samples["bytecode"], "total_ms"), _median(samples["no_bytecode"], "total_ms")
    ratio = with_pyc / without
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(
        f"  ratio {ratio:.2f}x ({verdict} the target of at most {TARGET_RATIO}x); load average {os.getloadavg()[0]:.2f}"
    )
    return {
        "layer_bytes": sum(sizes["layers"][layer] for layer in manifest["function_layers"]["predict"]),
        **{f"{name}_layer_bytes": size for name, size in sizes["layers"].items()},
        "function_bytes": sizes["function"],
        **{f"{name}_total_bytes": total for name, total in sizes["per_function_total"].items()},
        "cold_start_bytecode_ms": round(with_pyc, 1),
        "cold_start_no_bytecode_ms": round(without, 1),
        "cold_start_bytecode_ratio": round(ratio, 3),
    }


def main() -> None:
    started = time.perf_counter()
    progress(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work here slows both variants)")
    progress("building the layers (cached when the pins and the function code are unchanged)")
    manifest = layer_build.build()
    python312 = layer_build.find_python312()
    progress("starting moto S3 on 127.0.0.1")
    moto = MotoServer()
    tmp = Path(tempfile.mkdtemp(prefix="layer-bench-"))
    try:
        version = register_model(moto.endpoint)
        progress(f"model version {version} registered; copying the build read-only, with and without bytecode")
        variants = {
            "bytecode": readonly_copy(tmp / "bytecode", bytecode=True),
            "no_bytecode": readonly_copy(tmp / "no_bytecode", bytecode=False),
        }
        env = predict_env(stage_config("local").model_name, moto.env)
        samples: dict[str, list[dict[str, float]]] = {key: [] for key in variants}
        for roots in variants.values():
            cold_start(python312, roots, env)  # untimed: warms the page cache for both alike
        for run in range(RUNS):
            progress(f"cold start run {run + 1}/{RUNS}: with and without bytecode")
            for key, roots in variants.items():
                samples[key].append(cold_start(python312, roots, env))
    finally:
        moto.stop()
        subprocess.run(["chmod", "-R", "u+w", str(tmp)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    figures = report(manifest, samples)
    merge_results(figures)
    print()
    print(f"merged {len(figures)} figures into {RESULTS.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
