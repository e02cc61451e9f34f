"""Where the predict handler's time goes beyond predict_proba: stage timings, cProfile, measured alternatives."""

from __future__ import annotations

import cProfile
import gc
import io
import itertools
import json
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmarks.harness import (
    BENCH_DIR,
    InProcess,
    LambdaContextStub,
    MotoServer,
    api_gateway_event,
    build_in_process,
    dataset_rows,
    predict_body,
    progress,
    quiet_stdout,
    register_models,
    wait_capture_idle,
)

PROFILE_DIR = BENCH_DIR / "profile"
ROUNDS = {1: 800, 100: 400, 1000: 120}
FORMS = ("rows", "columns")

# Stages, outermost first. "self" rows are derived: a parent minus the children measured inside it.
STAGE_ORDER = (
    "handler",
    "  logger.inject_lambda_context + metrics.log_metrics wrappers (self)",
    "  metrics flush (EMF serialise + json.dumps + print)",
    "  resolver: _to_proxy_event",
    "  resolver: route matching, middleware, exception plumbing (self)",
    "  resolver: _build_response",
    "    route: metrics.add_*, dimensions, capture bookkeeping (self)",
    "    read_body",
    "    parse: pydantic_core.from_json",
    "    parse: validate_rows / validate_columns",
    "    parse: form dispatch (self)",
    "    infer: predict_proba",
    "    infer: isfinite, argmax, class labels (self)",
    "    response: request_ids, tolist, dict (self)",
    "    response: pydantic_core.to_json",
    "    capture.add (CaptureRecord, buffer, hand-off)",
    "    json_response (bytes -> str, Response)",
)


class Stages:
    """Accumulates wall time per named stage over one handler call."""

    def __init__(self) -> None:
        self.acc: defaultdict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        acc, clock = self.acc, time.perf_counter_ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[name] += clock() - started

        return timed


def install_stage_timers(proc: InProcess) -> Stages:
    """Wrap the handler's collaborators in timers (instance and module attributes only; no source is changed)."""
    import pydantic_core

    import functions.domain.requests as requests_mod
    import functions.handlers.predict as handler_mod
    import functions.services.predict as service_mod
    from functions.observability import metrics

    stages = Stages()
    fn, app = proc.function, proc.function.app
    fn.handle = stages.wrap("resolve", fn.handle)
    app._to_proxy_event = stages.wrap("to_proxy_event", app._to_proxy_event)
    app._build_response = stages.wrap("build_response", app._build_response)
    for route in app._static_routes + app._dynamic_routes:
        if route.func.__name__ == "predict":
            if route._middleware_stack_built:
                raise RuntimeError("install the stage timers before the first request")
            route.func = route._middleware_stack = stages.wrap("route", route.func)  # the stack starts at func
    metrics.provider.flush_metrics = stages.wrap("flush", metrics.provider.flush_metrics)
    handler_mod.read_body = stages.wrap("read_body", handler_mod.read_body)
    handler_mod.json_response = stages.wrap("json_response", handler_mod.json_response)
    service = fn.env.service()
    service.predict = stages.wrap("service", service.predict)
    service_mod.parse_predict_request = stages.wrap("parse", service_mod.parse_predict_request)
    service_mod.infer = stages.wrap("infer", service_mod.infer)
    service_mod.pydantic_core = SimpleNamespace(to_json=stages.wrap("to_json", pydantic_core.to_json))  # type: ignore[assignment]
    requests_mod.decode_object = stages.wrap("decode", requests_mod.decode_object)
    requests_mod.validate_rows = stages.wrap("validate", requests_mod.validate_rows)
    requests_mod.validate_columns = stages.wrap("validate", requests_mod.validate_columns)
    service.loaded.model.predict_proba = stages.wrap("proba", service.loaded.model.predict_proba)
    capture = fn.env.capture
    capture.add = stages.wrap("capture_add", capture.add)
    return stages


def derive(t: dict[str, int]) -> dict[str, float]:
    """Per-stage microseconds of one call, with the derived "self" stages."""
    g = defaultdict(int, t)
    resolver_self = g["resolve"] - g["to_proxy_event"] - g["build_response"] - g["route"]
    route_self = g["route"] - g["read_body"] - g["service"] - g["json_response"]
    service_self = g["service"] - g["parse"] - g["infer"] - g["to_json"] - g["capture_add"]
    values = {
        "handler": g["handler"],
        "  logger.inject_lambda_context + metrics.log_metrics wrappers (self)": g["handler"]
        - g["resolve"]
        - g["flush"],
        "  metrics flush (EMF serialise + json.dumps + print)": g["flush"],
        "  resolver: _to_proxy_event": g["to_proxy_event"],
        "  resolver: route matching, middleware, exception plumbing (self)": resolver_self,
        "  resolver: _build_response": g["build_response"],
        "    route: metrics.add_*, dimensions, capture bookkeeping (self)": route_self,
        "    read_body": g["read_body"],
        "    parse: pydantic_core.from_json": g["decode"],
        "    parse: validate_rows / validate_columns": g["validate"],
        "    parse: form dispatch (self)": g["parse"] - g["decode"] - g["validate"],
        "    infer: predict_proba": g["proba"],
        "    infer: isfinite, argmax, class labels (self)": g["infer"] - g["proba"],
        "    response: request_ids, tolist, dict (self)": service_self,
        "    response: pydantic_core.to_json": g["to_json"],
        "    capture.add (CaptureRecord, buffer, hand-off)": g["capture_add"],
        "    json_response (bytes -> str, Response)": g["json_response"],
    }
    return {k: v / 1000.0 for k, v in values.items()}


def stage_table(proc: InProcess, stages: Stages, n_rows: int, form: str, rounds: int) -> dict[str, float]:
    """Median microseconds per stage over ``rounds`` calls of the instrumented handler."""
    names, rows = dataset_rows(n_rows)
    body = predict_body(names, rows, form)
    events = [api_gateway_event("POST", "/predict", body) for _ in range(rounds + 10)]
    context = LambdaContextStub()
    per_call: list[dict[str, float]] = []
    clock = time.perf_counter_ns
    gc.collect()
    with quiet_stdout():
        for i, event in enumerate(events):
            wait_capture_idle(proc.function.env.capture)
            stages.acc.clear()
            started = clock()
            response = proc.handler(event, context)
            stages.acc["handler"] = clock() - started
            if response["statusCode"] != 200:
                raise RuntimeError(f"handler answered {response['statusCode']}: {response['body'][:300]}")
            if i >= 10:
                per_call.append(derive(stages.acc))
        proc.function.env.capture.flush()
    return {k: float(np.median([c[k] for c in per_call])) for k in STAGE_ORDER}


def cprofile_cell(proc: InProcess, n_rows: int, form: str, calls: int) -> str:
    """cProfile of ``calls`` handler calls, top functions by own time; also saved under .bench/profile/."""
    names, rows = dataset_rows(n_rows)
    body = predict_body(names, rows, form)
    events = [api_gateway_event("POST", "/predict", body) for _ in range(calls)]
    context = LambdaContextStub()
    profiler = cProfile.Profile()
    with quiet_stdout():
        profiler.enable()
        for event in events:
            proc.handler(event, context)
        profiler.disable()
        proc.function.env.capture.flush()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(25)
    text = out.getvalue()
    (PROFILE_DIR / f"lr_rows{n_rows}_{form}.txt").write_text(text)
    profiler.dump_stats(PROFILE_DIR / f"lr_rows{n_rows}_{form}.prof")
    return text


def compare_us(today: Callable[[], Any], alternative: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """Median microseconds of ``today()`` and ``alternative()``, interleaved call by call so noise hits both."""
    for _ in range(min(20, rounds)):
        today()
        alternative()
    clock = time.perf_counter_ns
    a, b = np.empty(rounds, dtype=np.int64), np.empty(rounds, dtype=np.int64)
    for i in range(rounds):
        first, second = (today, alternative) if i % 2 == 0 else (alternative, today)
        t0 = clock()
        first()
        t1 = clock()
        second()
        t2 = clock()
        a[i], b[i] = (t1 - t0, t2 - t1) if i % 2 == 0 else (t2 - t1, t1 - t0)
    return float(np.median(a)) / 1000.0, float(np.median(b)) / 1000.0


# -- alternatives, measured beside what the code does today ------------------------------------
def _bounds(schema: Any) -> tuple[np.ndarray, np.ndarray]:
    lo = np.array([-np.inf if f.minimum is None else f.minimum for f in schema.features])
    hi = np.array([np.inf if f.maximum is None else f.maximum for f in schema.features])
    return lo, hi


def alt_validate_rows(schema: Any, rows: list[dict[str, Any]]) -> np.ndarray:
    """Rows form: one itemgetter pass, one strict type pass, one np.array, one vectorised range check."""
    names = schema.names
    expected = set(names)
    for row in rows:
        if type(row) is not dict or row.keys() != expected:
            raise ValueError("slow path: report field errors")
    table = list(map(itemgetter(*names), rows))
    kinds = set(map(type, itertools.chain.from_iterable(table)))
    if not kinds <= {float, int}:
        raise ValueError("slow path: report field errors")
    matrix = np.array(table, dtype=np.float64)
    if not np.isfinite(matrix).all():
        raise ValueError("slow path")
    lo, hi = _bounds(schema)
    np.flatnonzero(((matrix < lo) | (matrix > hi)).any(axis=1))
    return matrix


def alt_validate_columns(schema: Any, columns: dict[str, list[Any]]) -> np.ndarray:
    """Columns form: one strict type pass over all values, one np.array, one vectorised range check."""
    names = schema.names
    if columns.keys() != set(names):
        raise ValueError("slow path")
    cols = [columns[n] for n in names]
    if len({len(c) for c in cols}) != 1:
        raise ValueError("slow path")
    kinds = set(map(type, itertools.chain.from_iterable(cols)))
    if not kinds <= {float, int}:
        raise ValueError("slow path")
    matrix = np.array(cols, dtype=np.float64).T
    if not np.isfinite(matrix).all():
        raise ValueError("slow path")
    lo, hi = _bounds(schema)
    np.flatnonzero(((matrix < lo) | (matrix > hi)).any(axis=1))
    return matrix


def strict_validators(schema: Any, max_rows: int) -> tuple[Any, Any]:
    """pydantic-core validators that parse and type-check a whole request in one pass (fast path only)."""
    from pydantic_core import SchemaValidator
    from pydantic_core import core_schema as cs

    num = cs.float_schema(strict=True, allow_inf_nan=False)  # ints accepted; bool, str, null, inf rejected
    row = cs.typed_dict_schema({n: cs.typed_dict_field(num) for n in schema.names}, extra_behavior="forbid")
    rows = cs.typed_dict_schema(
        {"rows": cs.typed_dict_field(cs.list_schema(row, min_length=1, max_length=max_rows))}, extra_behavior="forbid"
    )
    col = cs.list_schema(num, min_length=1, max_length=max_rows)
    columns = cs.typed_dict_schema(
        {
            "columns": cs.typed_dict_field(
                cs.typed_dict_schema({n: cs.typed_dict_field(col) for n in schema.names}, extra_behavior="forbid")
            )
        },
        extra_behavior="forbid",
    )
    return SchemaValidator(rows), SchemaValidator(columns)


@dataclass
class Sample:
    """One batch size's inputs and today's intermediate values, shared by the alternative measurements."""

    proc: InProcess
    n_rows: int
    schema: Any
    names: list[str]
    rows_body: str
    cols_body: str
    rows_doc: list[dict[str, Any]]
    cols_doc: dict[str, list[Any]]
    batch: Any
    proba: np.ndarray
    preds: np.ndarray
    reps: int
    rid: str = "c0ffee00-1234-4abc-9def-0123456789ab"


def make_sample(proc: InProcess, n_rows: int) -> Sample:
    import pydantic_core

    from functions.domain.schema import validate_rows

    service = proc.function.env.service()
    schema = service.loaded.card.feature_schema
    names, rows = dataset_rows(n_rows)
    rows_body, cols_body = predict_body(names, rows, "rows"), predict_body(names, rows, "columns")
    rows_doc = pydantic_core.from_json(rows_body)["rows"]
    batch = validate_rows(schema, rows_doc, 1000)
    proba = proc.model.predict_proba(batch.matrix)
    return Sample(
        proc=proc,
        n_rows=n_rows,
        schema=schema,
        names=names,
        rows_body=rows_body,
        cols_body=cols_body,
        rows_doc=rows_doc,
        cols_doc=pydantic_core.from_json(cols_body)["columns"],
        batch=batch,
        proba=proba,
        preds=service._classes[proba.argmax(axis=1)],
        reps={1: 600, 100: 300, 1000: 60}[n_rows],
    )


def alt_parsing(s: Sample) -> dict[str, tuple[float, float]]:
    from functions.domain.requests import parse_predict_request
    from functions.domain.schema import validate_columns, validate_rows

    strict_rows, strict_cols = strict_validators(s.schema, 1000)
    getter = itemgetter(*s.names)
    return {
        "validate_rows -> itemgetter + 1 type pass + 1 np.array + vector range check": compare_us(
            lambda: validate_rows(s.schema, s.rows_doc, 1000), lambda: alt_validate_rows(s.schema, s.rows_doc), s.reps
        ),
        "validate_columns -> 1 type pass + 1 np.array + vector range check": compare_us(
            lambda: validate_columns(s.schema, s.cols_doc, 1000),
            lambda: alt_validate_columns(s.schema, s.cols_doc),
            s.reps,
        ),
        "parse_predict_request(rows) -> SchemaValidator.validate_json + itemgetter + np.array": compare_us(
            lambda: parse_predict_request(s.rows_body, s.schema, 1000),
            lambda: np.array(list(map(getter, strict_rows.validate_json(s.rows_body)["rows"])), dtype=np.float64),
            s.reps,
        ),
        "parse_predict_request(columns) -> SchemaValidator.validate_json + np.array": compare_us(
            lambda: parse_predict_request(s.cols_body, s.schema, 1000),
            lambda: np.array(list(strict_cols.validate_json(s.cols_body)["columns"].values()), dtype=np.float64).T,
            s.reps,
        ),
    }


def alt_response_and_capture(s: Sample) -> dict[str, tuple[float, float]]:
    import gzip

    import pydantic_core

    from functions.adapters.capture import CaptureRecord, encode_batch

    rid, n = s.rid, s.n_rows
    suffixes = [f"-{i}" for i in range(1000)]
    record = CaptureRecord(
        request_id=rid,
        timestamp=time.time(),
        model_version=1,
        columns=s.batch.columns,
        predictions=s.preds,
        probabilities=s.proba,
        n_rows=n,
    )
    lines = pydantic_core.to_json(record.as_json()) + b"\n"
    small = max(20, s.reps // 4)
    matrix = s.batch.matrix
    return {
        "request_ids f-string list -> rid + precomputed suffixes": compare_us(
            lambda: [f"{rid}-{i}" for i in range(n)], lambda: [rid + x for x in suffixes[:n]], s.reps
        ),
        "capture writer, GIL held: as_json + to_json (today) -> matrix.tobytes()": compare_us(
            lambda: pydantic_core.to_json(record.as_json()), matrix.tobytes, small
        ),
        "capture writer, GIL released: gzip level 5 (today) -> level 1": compare_us(
            lambda: gzip.compress(lines, compresslevel=5), lambda: gzip.compress(lines, compresslevel=1), small
        ),
        "capture writer: encode_batch total (today) -> JSON + gzip level 1": compare_us(
            lambda: encode_batch([record]),
            lambda: gzip.compress(pydantic_core.to_json(record.as_json()) + b"\n", 1),
            small,
        ),
    }


def alt_metrics(s: Sample) -> dict[str, tuple[float, float]]:
    import pydantic_core

    from functions.observability import metrics

    n = s.n_rows
    dims = [["service", "model_name", "model_version"]]
    names = ("Predictions", "PredictedRows", "OutOfRangeValues", "PredictLatency")
    emf_metrics = [{"Name": m, "Unit": "Milliseconds" if m == "PredictLatency" else "Count"} for m in names]

    def powertools_metrics() -> None:
        metrics.add_dimension(name="model_name", value="breast-cancer")
        metrics.add_dimension(name="model_version", value="1")
        metrics.add_metric(name="Predictions", unit="Count", value=1)
        metrics.add_metric(name="PredictedRows", unit="Count", value=n)
        metrics.add_metric(name="OutOfRangeValues", unit="Count", value=0)
        metrics.add_metric(name="PredictLatency", unit="Milliseconds", value=1.234)
        metrics.flush_metrics()

    def hand_emf() -> None:
        doc = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [{"Namespace": "ServerlessMLOps", "Dimensions": dims, "Metrics": emf_metrics}],
            },
            "service": "mlops-predict",
            "model_name": "breast-cancer",
            "model_version": "1",
            "Predictions": 1,
            "PredictedRows": n,
            "OutOfRangeValues": 0,
            "PredictLatency": 1.234,
        }
        sys.stdout.write(pydantic_core.to_json(doc).decode() + "\n")

    with quiet_stdout():
        return {
            "metrics: 2 add_dimension + 4 add_metric + flush_metrics -> one hand-built EMF line": compare_us(
                powertools_metrics, hand_emf, s.reps
            )
        }


def alt_http(s: Sample) -> dict[str, tuple[float, float]]:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    from functions.handlers.http import json_response, read_body
    from functions.observability import logger

    context = LambdaContextStub()
    event = api_gateway_event("POST", "/predict", "{}")

    @logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
    def with_logger(_event: dict[str, Any], _context: Any) -> None:
        return None

    def with_append_keys(e: dict[str, Any], c: Any) -> None:
        logger.append_keys(correlation_id=e["requestContext"]["requestId"], function_request_id=c.aws_request_id)

    app = APIGatewayRestResolver()
    ready = json_response(200, b'{"ok":true}')
    app.post("/predict")(lambda: ready)

    def direct(e: dict[str, Any]) -> dict[str, Any]:
        if e["httpMethod"] == "POST" and e["path"] == "/predict":
            return {
                "statusCode": ready.status_code,
                "headers": {"Content-Type": "application/json"},
                "body": ready.body,
                "isBase64Encoded": False,
            }
        return app.resolve(e, context)

    def raw_content_type(e: dict[str, Any]) -> str | None:
        return next((v for k, v in (e.get("headers") or {}).items() if k.lower() == "content-type"), None)

    out = {
        "logger.inject_lambda_context (no-op handler) -> logger.append_keys of the two keys": compare_us(
            lambda: with_logger(event, context), lambda: with_append_keys(event, context), s.reps
        ),
        "APIGatewayRestResolver.resolve (ready Response) -> direct dispatch of POST /predict": compare_us(
            lambda: app.resolve(event, context), lambda: direct(event), s.reps
        ),
    }
    app.current_event = app._to_proxy_event(event)  # type: ignore[misc]
    out["read_body via event.headers (multi-value merge) -> raw event['headers']"] = compare_us(
        lambda: read_body(app, 6 * 1024 * 1024), lambda: raw_content_type(event), s.reps
    )
    return out


def alt_model(s: Sample) -> dict[str, tuple[float, float]]:
    """Changes to the model call itself: they lower bare predict_proba too, so latency drops but the ratio does not."""
    from sklearn.pipeline import Pipeline

    model, X = s.proc.model, s.batch.matrix
    out = {
        "predict_proba -> under sklearn.config_context(assume_finite, skip_parameter_validation)": compare_us(
            lambda: model.predict_proba(X), lambda: _fast_config(model, X), s.reps
        )
    }
    steps = model.named_steps
    numeric = steps["preprocess"].named_transformers_.get("numeric")
    if s.schema.all_numeric and numeric is not None:  # the ColumnTransformer only routes every column to one step
        flat = (
            steps["estimator"]
            if numeric == "passthrough"
            else Pipeline([("scale", numeric), ("estimator", steps["estimator"])])
        )
        out["predict_proba -> same fitted steps without the ColumnTransformer"] = compare_us(
            lambda: model.predict_proba(X), lambda: flat.predict_proba(X), s.reps
        )
    if "pandas" not in sys.modules:

        def failed_import() -> None:
            try:
                import pandas  # noqa: F401
            except ImportError:
                pass

        out["part of it: the failed 'import pandas' ColumnTransformer retries on every call -> none"] = compare_us(
            failed_import, lambda: None, s.reps
        )
    return out


def alternatives(proc: InProcess, n_rows: int) -> dict[str, tuple[float, float]]:
    """Microseconds of pieces of today's path and of a cheaper alternative, measured interleaved on the same rows."""
    s = make_sample(proc, n_rows)
    return {**alt_parsing(s), **alt_response_and_capture(s), **alt_metrics(s), **alt_http(s), **alt_model(s)}


def _fast_config(model: Any, X: np.ndarray) -> Any:
    import sklearn

    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        return model.predict_proba(X)


def _import_times(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Own import time (ms) per module of one fresh ``python -X importtime`` process."""
    import re
    import subprocess

    from benchmarks.harness import ROOT

    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    pattern = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")
    return {m.group(4): int(m.group(1)) / 1000.0 for m in map(pattern.match, done.stderr.splitlines()) if m}


def _import_group(name: str) -> str:
    top = name.split(".", maxsplit=1)[0]
    if top == "aws_xray_sdk":
        return "aws_xray_sdk: Tracer() imports the recorder (outside Lambda it builds 2 X-Ray botocore clients)"
    if name.startswith(("sklearn.", "functions.domain.training", "functions.domain.baseline", "functions.domain.d")):
        return "scikit-learn modules the model does not need (functions.config -> functions.domain.training)"
    if top in ("pydantic", "pydantic_core", "pydantic_settings", "annotated_types", "typing_inspection", "dotenv"):
        return "pydantic, pydantic-settings, python-dotenv"
    if top == "aws_lambda_powertools":
        return "aws_lambda_powertools"
    if top == "functions":
        return "functions.* (own modules: pydantic model classes)"
    return "other modules only the handler imports"


def cold_import_breakdown(moto_env: dict[str, str], model: Any, runs: int = 3) -> dict[str, float]:
    """What the handler's cold start imports beyond the bare baseline (import sklearn, boto3; joblib.load), in ms.

    Own import time (``python -X importtime``) of each module the handler's cold process imports and the
    baseline's does not, grouped, median of ``runs``; plus each process's total own import time.
    """
    import os
    import statistics

    from benchmarks.harness import predict_env
    from functions.config import stage_config

    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        **predict_env(model.model_name, moto_env),
    }
    names, rows = dataset_rows(1)
    event_file = BENCH_DIR / "profile_cold_event.json"
    event_file.write_text(json.dumps(api_gateway_event("POST", "/predict", predict_body(names, rows, "rows"))))
    artifact = f"models/{model.model_name}/versions/{model.version}/model.joblib"
    handler_args = ["-m", "benchmarks.cold_child", "handler", str(event_file)]
    baseline_args = ["-m", "benchmarks.cold_child", "baseline", stage_config("local").registry_bucket, artifact]
    groups: dict[str, list[float]] = defaultdict(list)
    _import_times(handler_args, env)  # bytecode caches warm
    for _ in range(runs):
        handler, baseline = _import_times(handler_args, env), _import_times(baseline_args, env)
        sums: dict[str, float] = defaultdict(float)
        for name, own in handler.items():
            if name not in baseline:
                sums[_import_group(name)] += own
                sums["= all modules only the handler imports"] += own
        sums["handler process, all imports"] = sum(handler.values())
        sums["baseline process, all imports"] = sum(baseline.values())
        for group, value in sums.items():
            groups[group].append(value)
    return {group: statistics.median(values) for group, values in groups.items()}


def capture_ab(
    on: InProcess, off: InProcess, n_rows: int, form: str, *, calls: int = 40, blocks: int = 3
) -> dict[str, float]:
    """Median ms of the handler with capture on and off, isolated (writer idle first) and back to back."""
    names, rows = dataset_rows(n_rows)
    body = predict_body(names, rows, form)
    context = LambdaContextStub()
    got: dict[str, list[int]] = defaultdict(list)
    with quiet_stdout():
        for _ in range(blocks):
            for label, proc in (("on", on), ("off", off)):
                capture = proc.function.env.capture
                for mode in ("isolated", "back to back"):
                    wait_capture_idle(capture)
                    for _ in range(calls):
                        if mode == "isolated":
                            wait_capture_idle(capture)
                        event = api_gateway_event("POST", "/predict", body)
                        started = time.perf_counter_ns()
                        proc.handler(event, context)
                        got[f"capture {label}, {mode}"].append(time.perf_counter_ns() - started)
                capture.flush()
    return {k: float(np.median(v)) / 1e6 for k, v in got.items()}


def main() -> None:
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    progress("starting moto S3 and registering the models")
    moto = MotoServer()
    try:
        models = register_models(moto.env)
        lr = next(m for m in models if m.key == "lr")
        progress("cold import breakdown: handler vs baseline process (python -X importtime, 3 runs each)")
        cold = cold_import_breakdown(moto.env, lr)
        proc = build_in_process(lr, moto.env)

        progress("alternatives (interleaved micro-benchmarks on the same rows)")
        alts = {n: alternatives(proc, n) for n in ROUNDS}

        progress("cProfile, 1/100/1000 rows x rows/columns")
        profiles = {(n, form): cprofile_cell(proc, n, form, max(30, ROUNDS[n] // 4)) for n in ROUNDS for form in FORMS}

        proc = build_in_process(lr, moto.env)  # a fresh environment: timers go in before its first request
        stages = install_stage_timers(proc)
        tables: dict[tuple[int, str], dict[str, float]] = {}
        for n, rounds in ROUNDS.items():
            for form in FORMS:
                progress(f"stage timings: {n} row(s), {form} form, {rounds} calls")
                tables[(n, form)] = stage_table(proc, stages, n, form, rounds)

        progress("capture on vs off, 100 and 1000 rows")
        on = build_in_process(lr, moto.env)
        off = build_in_process(lr, moto.env)
        off.function.env.service().sample_rate = 0.0  # the service draws per request; 0 never captures
        ab = {(n, form): capture_ab(on, off, n, form) for n in (100, 1000) for form in FORMS}
    finally:
        moto.stop()

    cells = list(tables)
    print("\nMedian microseconds per stage of the instrumented predict handler (lr), per request")
    head = f"{'stage':<72}" + "".join(f"{f'{n} {form}':>13}" for n, form in cells)
    print(head)
    print("-" * len(head))
    for stage in STAGE_ORDER:
        print(f"{stage:<72}" + "".join(f"{tables[c][stage]:>13.1f}" for c in cells))
    overhead = {c: tables[c]["handler"] - tables[c]["    infer: predict_proba"] for c in cells}
    print(f"{'handler minus predict_proba':<72}" + "".join(f"{overhead[c]:>13.1f}" for c in cells))

    print("\nToday -> alternative, median microseconds (interleaved), saving")
    for key in alts[1]:
        print(f"  {key}")
        parts = []
        for n in ROUNDS:
            if key in alts[n]:
                today, alt = alts[n][key]
                parts.append(f"{n:>4} rows: {today:>8.1f} -> {alt:>8.1f}  ({today - alt:+.1f})")
        print("     " + "   ".join(parts))

    print("\nCapture on vs off, median ms per request (lr)")
    for (n, form), values in ab.items():
        print(f"  {n:>4} rows {form:<8}" + "  ".join(f"{k}: {v:7.3f}" for k, v in values.items()))

    print("\nCold start imports beyond the bare baseline, ms (own import time, python -X importtime, median of 3)")
    for group, value in sorted(cold.items(), key=lambda kv: -kv[1]):
        print(f"  {value:>8.1f}  {group}")

    for (n, form), text in profiles.items():
        print(f"\ncProfile, {n} row(s), {form} form (top by own time; .bench/profile/lr_rows{n}_{form}.txt)")
        print("\n".join(text.strip().splitlines()[:30]))
    summary = {
        "stages_us": {f"{n}_{form}": t for (n, form), t in tables.items()},
        "alternatives_us": {str(n): a for n, a in alts.items()},
        "capture_ab_ms": {f"{n}_{form}": v for (n, form), v in ab.items()},
        "cold_import_ms": cold,
    }
    (PROFILE_DIR / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nwrote {PROFILE_DIR / 'summary.json'}")


if __name__ == "__main__":
    main()
