"""Child process run by the target Python (3.12) over the built layer: checks the build, or serves one cold request.

Run it as a script, never import it: ``python3.12 -P -S -s layers/probe.py MODE ...`` with ``PYTHONPATH``
set to the function code and then the function's layers' ``python/`` folders, as Lambda orders
``/var/task`` and ``/opt/python``. ``-P -S -s`` keep the current directory and every site-packages off
``sys.path``, so the only third-party code reachable is the build's. The last line on stdout is one JSON
object; logs and EMF metrics go to stderr.

Modes:
    verify DATA_DIR OUT_DIR   (both layers) import every deployed module and every scikit-learn module; train
                              each estimator kind the project offers on the shipped data set of each task,
                              convert it to ONNX through the fidelity check, save and reload its pipeline with
                              skops, run the drift statistics; write each graph and its canned prediction to
                              OUT_DIR.
    serve-check GRAPH_DIR     (serving layer only) import the predict and log-outcome handlers and all of
                              onnxruntime, serve every graph in GRAPH_DIR and compare it with the answer
                              recorded at registration; report any scikit-learn, scipy, joblib, skops, onnx
                              or pandas module that got loaded.
    invoke HANDLER EVENT_FILE import ``functions.handlers.HANDLER``, then answer the event through its
                              ``lambda_handler`` (predict loads the model from the registry; retrain trains):
                              one cold start, timed.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # before any import this process makes on its own behalf

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
from typing import Any  # noqa: E402

# The shipped data set of each task: (file, target, categorical columns). Every estimator kind the project
# offers for the task is trained on it (functions.domain.estimators.kinds_for).
DATA_SETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "binary_classification": ("breast_cancer.csv", "target", ()),
    "multiclass_classification": ("iris.csv", "species", ()),
    "regression": ("diabetes.csv", "progression", ("sex",)),
}

# Imported on top of every module of ``functions`` and ``sklearn``: the scipy the functions use directly,
# the converter, and the Powertools parts only Lambda reaches (the tracer is created only where X-Ray runs).
EXTRA_IMPORTS = (
    "scipy.stats",
    "scipy.optimize",
    "scipy.sparse",
    "scipy.special",
    "scipy.linalg",
    "scipy.spatial",
    "skl2onnx",
    "onnx",
    "skops.io",
    "aws_lambda_powertools.tracing",
    "aws_xray_sdk.core",
    "threadpoolctl",
)
# What the serving layer's functions must never load.
NOT_IN_SERVING = ("sklearn", "scipy", "joblib", "skops", "pandas", "onnx", "skl2onnx")
SERVING_HANDLERS = ("functions.handlers.predict", "functions.handlers.log_outcome")


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


def exercise_estimators(data_dir: str, out_dir: str) -> dict[str, Any]:
    """Train, convert (fidelity-checked), save and reload every offered estimator kind; run the drift statistics."""
    import numpy as np
    import skops.io

    from functions.domain.card import CLASSIFICATION_TASKS, TrainingSpec
    from functions.domain.dataset import parse_csv
    from functions.domain.drift import evaluate_drift, live_metrics
    from functions.domain.estimators import kinds_for
    from functions.domain.packaging import package_model
    from functions.domain.pipeline_io import ALLOWED_TYPES
    from functions.domain.training import train

    results: dict[str, Any] = {}
    for task, (file, target, categorical) in DATA_SETS.items():
        with open(os.path.join(data_dir, file), encoding="utf-8") as fh:
            text = fh.read()
        classification = task in CLASSIFICATION_TASKS
        dataset = parse_csv(text, target, set(categorical), regression=not classification)
        for kind in kinds_for(classification):
            spec = TrainingSpec.model_validate(
                {"task": task, "target": target, "categorical": list(categorical), "estimator": {"kind": kind}}
            )
            trained = train(dataset, spec)
            packaged = package_model(trained, spec.task)
            stored = packaged.files[packaged.refs["pipeline"].file]
            model = skops.io.loads(
                stored, trusted=[t for t in skops.io.get_untrusted_types(data=stored) if t in ALLOWED_TYPES]
            )
            X = dataset.matrix(trained.schema.names)
            outputs = model.predict_proba(X) if classification else model.predict(X)
            report = evaluate_drift(trained.baseline, dataset.columns, outputs, task, dataset.n_rows)  # type: ignore[arg-type]
            if classification:
                classes = list(model.classes_)
                y_true = np.array([classes.index(v) for v in dataset.target])
                quality = live_metrics(task, len(classes), y_true, outputs.argmax(axis=1), outputs)  # type: ignore[arg-type]
            else:
                quality = live_metrics(task, 0, dataset.target, outputs, None)  # type: ignore[arg-type]
            key = f"{file}:{kind}"
            info = packaged.serving_graph
            with open(os.path.join(out_dir, f"{len(results)}.onnx"), "wb") as fh:
                fh.write(packaged.graph)
            with open(os.path.join(out_dir, f"{len(results)}.json"), "w", encoding="utf-8") as fh:
                json.dump(
                    {
                        "key": key,
                        "schema": trained.schema.model_dump(mode="json"),
                        "output": info.output,
                        "canned": info.canned.model_dump(mode="json"),
                    },
                    fh,
                )
            results[key] = {
                "validation": trained.metrics[trained.primary_metric],
                "max_scaled_difference": info.fidelity.max_scaled_difference,
                "drift_verdict": report.verdict,
                "live_metrics": sorted(quality),
            }
    return results


def verify(data_dir: str, out_dir: str) -> dict[str, Any]:
    """The build's check of both layers (see the module docstring)."""
    failures = walk_imports("functions", skip=("functions.local",))
    failures.update(walk_imports("sklearn"))
    for name in EXTRA_IMPORTS:
        failure = try_import(name)
        if failure:
            failures[name] = failure
    import numpy
    import onnxruntime
    import scipy
    import sklearn

    return {
        "failed_imports": failures,
        "estimators": exercise_estimators(data_dir, out_dir),
        "versions": {
            "numpy": numpy.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "python": sys.version.split()[0],
        "imports_outside": imports_outside(),
        "modules": len(sys.modules),
    }


def serve_check(graph_dir: str) -> dict[str, Any]:
    """The serving layer alone: the serving handlers import, every graph answers its canned prediction."""
    failures: dict[str, dict[str, str | None]] = {}
    for name in SERVING_HANDLERS:
        failure = try_import(name)
        if failure:
            failures[name] = failure
    # Shared libraries next to the binding are listed as modules by pkgutil; they are loaded, not imported.
    failures.update(walk_imports("onnxruntime", skip=("onnxruntime.capi.libonnxruntime",)))

    from functions.domain.card import CannedPrediction
    from functions.domain.inference import ServingGraph
    from functions.domain.schema import FeatureSchema

    served: dict[str, str] = {}
    graph_failures: dict[str, str] = {}
    for meta_file in sorted(f for f in os.listdir(graph_dir) if f.endswith(".json")):
        with open(os.path.join(graph_dir, meta_file), encoding="utf-8") as fh:
            meta = json.load(fh)
        with open(os.path.join(graph_dir, meta_file.replace(".json", ".onnx")), "rb") as fh:
            graph = fh.read()
        try:
            session = ServingGraph(graph, FeatureSchema.model_validate(meta["schema"]), meta["output"])
            session.run_canned(CannedPrediction.model_validate(meta["canned"]))
        except Exception as exc:  # noqa: BLE001 - every failure is reported, the parent judges it
            graph_failures[meta["key"]] = f"{type(exc).__name__}: {exc}"
        else:
            served[meta["key"]] = "answered its canned prediction"
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(NOT_IN_SERVING))
    return {
        "failed_imports": failures,
        "graphs": served,
        "graph_failures": graph_failures,
        "forbidden_loaded": loaded,
        "imports_outside": imports_outside(),
        "modules": len(sys.modules),
    }


def invoke(handler: str, event_file: str) -> dict[str, Any]:
    """Import a handler and serve one event with it; times measured from process start."""
    import importlib

    real_stdout, sys.stdout = sys.stdout, sys.stderr  # JSON logs and EMF to stderr, the result alone to stdout
    try:
        module = importlib.import_module(f"functions.handlers.{handler}")
        imported = time.perf_counter()
        with open(event_file, encoding="utf-8") as fh:
            event = json.load(fh)
        context = LambdaContextStub()
        context.function_name = f"mlops-local-{handler}"
        response = module.lambda_handler(event, context)
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
        "loaded": sorted({m.split(".")[0] for m in sys.modules}),
    }


def main() -> None:
    mode, arguments = sys.argv[1], sys.argv[2:]
    if mode == "verify":
        result = verify(*arguments)
    elif mode == "serve-check":
        result = serve_check(*arguments)
    elif mode == "invoke":
        result = invoke(*arguments)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
