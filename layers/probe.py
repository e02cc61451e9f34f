"""Child process run by the target Python (3.12) over the built layer: checks the build, or serves one cold request.

Run it as a script, never import it: ``python3.12 -P -S -s layers/probe.py MODE ...`` with ``PYTHONPATH``
set to the function code, the layer's ``python/`` and the runtime stand-in (boto3/botocore), in that
order, as Lambda orders ``/var/task``, ``/opt/python`` and its runtime. ``-P -S -s`` keep the current
directory and every site-packages off ``sys.path``, so the only third-party code reachable is the build's.
The last line on stdout is one JSON object; logs and EMF metrics go to stderr.

Modes:
    verify DATA_DIR    import every deployed module and every scikit-learn module, train, save, load and
                       predict each estimator kind on the shipped data sets, and run the drift statistics.
    invoke EVENT_FILE  import the predict handler, then answer the event through ``lambda_handler`` (which
                       loads the model from the registry): one cold start, timed.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # before any import this process makes on its own behalf

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
from typing import Any  # noqa: E402

# (data set, task, target, categorical columns, estimator kinds): every kind the project trains.
ESTIMATOR_CASES: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "breast_cancer.csv",
        "binary_classification",
        "target",
        (),
        ("logistic_regression", "random_forest", "hist_gradient_boosting"),
    ),
    ("iris.csv", "multiclass_classification", "species", (), ("logistic_regression",)),
    ("diabetes.csv", "regression", "progression", ("sex",), ("ridge", "linear_regression")),
)


# Imported on top of every module of ``functions`` and ``sklearn``: the scipy the functions use directly and
# the Powertools parts only Lambda reaches (the tracer is created only where X-Ray runs).
EXTRA_IMPORTS = (
    "scipy.stats",
    "scipy.optimize",
    "scipy.sparse",
    "scipy.special",
    "scipy.linalg",
    "scipy.spatial",
    "aws_lambda_powertools.tracing",
    "aws_xray_sdk.core",
    "pydantic_settings",
    "threadpoolctl",
)


class LambdaContextStub:
    """The attributes of the Lambda context object that the handler and Powertools read."""

    function_name = "mlops-local-predict"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/mlops-local-predict"
    log_stream_name = "2026/11/23/[$LATEST]layer-probe"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlops-local-predict:live"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def allowed_roots() -> list[str]:
    """Where imports may come from: the ``PYTHONPATH`` entries and the interpreter's standard library."""
    roots = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = sysconfig.get_paths()
    roots += [paths["stdlib"], paths["platstdlib"]]
    return [os.path.realpath(r) for r in roots]


def imports_outside() -> list[str]:
    """Modules loaded from a file outside the allowed roots (the stdlib's site-packages is outside)."""
    roots = allowed_roots()
    site = os.path.realpath(sysconfig.get_paths()["purelib"])
    outside = []
    for name, module in sorted(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path:
            continue  # built-in, frozen or namespace package
        real = os.path.realpath(path)
        if real == os.path.realpath(__file__):
            continue  # this script, as __main__ (and __mp_main__ once joblib's workers are set up)
        within = any(real == r or real.startswith(r + os.sep) for r in roots)
        if not within or real.startswith(site + os.sep):
            outside.append(f"{name}: {path}")
    return outside


def walk_imports(package: str, skip: tuple[str, ...] = ()) -> dict[str, dict[str, str | None]]:
    """Import every module of ``package`` (tests excluded).

    Returns:
        Module name -> {"error": the exception, "missing": the module not found, if that was the error}.
    """
    import importlib
    import pkgutil

    failures: dict[str, dict[str, str | None]] = {}
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + ".", onerror=lambda _name: None):
        name = info.name
        if ".tests" in name or name.endswith(".conftest") or name.startswith(skip):
            continue
        failure = try_import(name)
        if failure:
            failures[name] = failure
    return failures


def try_import(name: str) -> dict[str, str | None] | None:
    """Import ``name``; None, or what went wrong (every failure is reported, the parent judges it)."""
    import importlib

    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        return {"error": f"{type(exc).__name__}: {exc}", "missing": missing}
    return None


def exercise_estimators(data_dir: str) -> dict[str, Any]:
    """Train, save, load and predict every estimator kind; run the drift statistics on each."""
    import io

    import joblib
    import numpy as np

    from functions.domain.artifacts import dump_model, sha256_hex
    from functions.domain.card import EstimatorSpec, TrainingSpec
    from functions.domain.dataset import parse_csv
    from functions.domain.drift import evaluate_drift, live_metrics
    from functions.domain.training import train

    results: dict[str, Any] = {}
    for file, task, target, categorical, kinds in ESTIMATOR_CASES:
        with open(os.path.join(data_dir, file), encoding="utf-8") as fh:
            text = fh.read()
        dataset = parse_csv(text, target, set(categorical), regression=task == "regression")
        for kind in kinds:
            spec = TrainingSpec(
                task=task,
                target=target,
                categorical=list(categorical),
                estimator=EstimatorSpec(kind=kind),
            )
            trained = train(dataset, spec)
            artifact = dump_model(trained.model)
            model = joblib.load(io.BytesIO(artifact))
            X = dataset.matrix(trained.schema.names)
            classification = task != "regression"
            outputs = model.predict_proba(X) if classification else model.predict(X)
            report = evaluate_drift(trained.baseline, dataset.columns, outputs, task, dataset.n_rows)  # type: ignore[arg-type]
            if classification:
                classes = list(model.classes_)
                y_true = np.array([classes.index(v) for v in dataset.target])
                quality = live_metrics(
                    task,  # type: ignore[arg-type]
                    len(classes),
                    y_true,
                    outputs.argmax(axis=1),
                    outputs,
                )
            else:
                quality = live_metrics(task, 0, dataset.target, outputs, None)  # type: ignore[arg-type]
            results[f"{file}:{kind}"] = {
                "sha256": sha256_hex(artifact)[:12],
                "validation": trained.metrics[trained.primary_metric],
                "drift_verdict": report.verdict,
                "live_metrics": sorted(quality),
            }
    return results


def verify(data_dir: str) -> dict[str, Any]:
    """The build's check of the pruned, stripped, compiled layer (see the module docstring)."""
    failures = walk_imports("functions", skip=("functions.local",))
    failures.update(walk_imports("sklearn"))
    for name in EXTRA_IMPORTS:
        failure = try_import(name)
        if failure:
            failures[name] = failure
    import numpy
    import scipy
    import sklearn

    return {
        "failed_imports": failures,
        "estimators": exercise_estimators(data_dir),
        "versions": {"numpy": numpy.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__},
        "python": sys.version.split()[0],
        "imports_outside": imports_outside(),
        "modules": len(sys.modules),
    }


def invoke(event_file: str) -> dict[str, Any]:
    """Import the predict handler and serve one request with it; times measured from process start."""
    real_stdout, sys.stdout = sys.stdout, sys.stderr  # JSON logs and EMF to stderr, the result alone to stdout
    try:
        from functions.handlers import predict

        imported = time.perf_counter()
        with open(event_file, encoding="utf-8") as fh:
            event = json.load(fh)
        response = predict.lambda_handler(event, LambdaContextStub())  # type: ignore[arg-type]
        done = time.perf_counter()
    finally:
        sys.stdout = real_stdout
    return {
        "response": response,
        "import_ms": (imported - T0) * 1000.0,
        "first_request_ms": (done - imported) * 1000.0,
        "total_ms": (done - T0) * 1000.0,
        "python": sys.version.split()[0],
        "dont_write_bytecode": sys.dont_write_bytecode,
        "sys_path": sys.path,
        "imports_outside": imports_outside(),
    }


def main() -> None:
    mode, argument = sys.argv[1], sys.argv[2]
    result = verify(argument) if mode == "verify" else invoke(argument)
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
