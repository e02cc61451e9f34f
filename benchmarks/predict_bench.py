"""`make bench`: predict handler latency and cold start next to bare scikit-learn; writes .bench/latest.json.

The handler answers from the version's ONNX graph (onnxruntime); "bare" is scikit-learn's
``predict_proba`` of the same fitted pipeline on the same rows (what serving with scikit-learn costs
before any request handling), and "onnx" the bare ``InferenceSession.run`` the handler wraps. The
three are timed interleaved, round by round, in one process.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.harness import (
    BENCH_DIR,
    ROOT,
    InProcess,
    LambdaContextStub,
    ModelUnderTest,
    MotoServer,
    api_gateway_event,
    build_in_process,
    check_response,
    dataset_rows,
    predict_body,
    predict_env,
    progress,
    publish_pickle,
    quiet_stdout,
    register_models,
    wait_capture_idle,
)

# rows per request -> (timed rounds, warm-up rounds). One round times every form and bare predict_proba once.
SIZES: dict[int, tuple[int, int]] = {1: (600, 40), 100: (400, 20), 1000: (150, 10)}
SIZES_SLOW_MODEL: dict[int, tuple[int, int]] = {1: (300, 20), 100: (300, 10), 1000: (100, 5)}
SUSTAINED = (1000,)  # batch sizes also timed back to back, capture writer running alongside
SUSTAINED_CALLS = 60
FORMS: dict[int, tuple[str, ...]] = {
    1: ("features", "rows", "columns"),
    100: ("rows", "columns"),
    1000: ("rows", "columns"),
}
# handler p50 / bare scikit-learn p50, where the project sets a target (issue "Serve without scikit-learn")
RATIO_TARGETS: dict[tuple[str, int, str], float] = {
    ("lr", 1, "features"): 0.3,
    ("rf", 1, "features"): 0.06,
    ("lr", 100, "rows"): 1.2,
    ("lr", 1000, "columns"): 1.3,
    ("lr", 1000, "rows"): 5.0,
}
COLD_TARGET = 0.5
COLD_RUNS = 5
RESULTS = BENCH_DIR / "latest.json"
PREVIOUS = BENCH_DIR / "previous.json"


@dataclass
class Cell:
    """Latency samples (nanoseconds) of one model and batch size: each request form, bare scikit-learn, bare ONNX."""

    model: ModelUnderTest
    rows: int
    handler_ns: dict[str, np.ndarray]
    bare_ns: np.ndarray
    onnx_ns: np.ndarray
    sustained_ns: dict[str, np.ndarray]
    dropped_capture_rows: int


def _p(samples: np.ndarray, q: float) -> float:
    return float(np.percentile(samples, q)) / 1e6


def body_for(names: list[str], rows: list[list[float]], form: str) -> str:
    if form == "features":
        return json.dumps({"features": dict(zip(names, rows[0], strict=True))})
    return predict_body(names, rows, form)


def measure_cell(proc: InProcess, model: ModelUnderTest, n_rows: int, rounds: int, warmup: int) -> Cell:
    """Time the handler (each form) and bare predict_proba on the same rows, interleaved round by round.

    Each timed call starts with the capture writer idle, so a call never pays for the previous call's
    capture write; the sustained figures (``sustained``) then measure the same handler back to back.
    """
    names, rows = dataset_rows(n_rows)
    if names != proc.names:
        raise RuntimeError("dataset columns are not in the model card's feature order")
    X = np.ascontiguousarray(np.array(rows, dtype=np.float64))
    forms = FORMS[n_rows]
    total = rounds + warmup
    # One real-shape event per request (own request id), all sharing the same JSON body string.
    bodies = {form: body_for(names, rows, form) for form in forms}
    events = {form: [api_gateway_event("POST", "/predict", bodies[form]) for _ in range(total)] for form in forms}
    context = LambdaContextStub()
    handler, predict_proba, graph = proc.handler, proc.pipeline.predict_proba, proc.graph
    expected = predict_proba(X)
    with quiet_stdout():
        for form in forms:
            check_response(handler(events[form][0], context), expected[:1] if form == "features" else expected)

    def serve(form_events: list[dict[str, Any]]) -> Callable[[int], Any]:
        return lambda i: handler(form_events[i], context)

    calls: dict[str, Callable[[int], Any]] = {form: serve(events[form]) for form in forms}
    calls["bare"] = lambda _i: predict_proba(X)
    calls["onnx"] = lambda _i: graph.run(X, {})
    order = [*forms, "bare", "onnx"]
    samples = {name: np.empty(rounds, dtype=np.int64) for name in order}
    capture = proc.function.env.capture
    failed_before = capture.stats.dropped_rows + capture.stats.failed_rows
    gc.collect()
    clock = time.perf_counter_ns
    with quiet_stdout():
        for i in range(total):
            k = i % len(order)  # rotate who goes first, so neither side always runs on warm caches
            for name in order[k:] + order[:k]:
                call = calls[name]
                wait_capture_idle(capture)
                started = clock()
                call(i)
                elapsed = clock() - started
                if i >= warmup:
                    samples[name][i - warmup] = elapsed
        capture.flush()
    sustained = measure_sustained(proc, events, context) if n_rows in SUSTAINED else {}
    dropped = capture.stats.dropped_rows + capture.stats.failed_rows - failed_before
    return Cell(
        model=model,
        rows=n_rows,
        handler_ns={f: samples[f] for f in forms},
        bare_ns=samples["bare"],
        onnx_ns=samples["onnx"],
        sustained_ns=sustained,
        dropped_capture_rows=dropped,
    )


def measure_sustained(proc: InProcess, events: dict[str, list[dict[str, Any]]], context: Any) -> dict[str, np.ndarray]:
    """Back-to-back handler calls, the capture writer running alongside as it does in a busy environment."""
    capture = proc.function.env.capture
    out = {}
    with quiet_stdout():
        for form, form_events in events.items():
            times = np.empty(min(SUSTAINED_CALLS, len(form_events)), dtype=np.int64)
            wait_capture_idle(capture)
            for i in range(times.size):
                started = time.perf_counter_ns()
                proc.handler(form_events[i], context)
                times[i] = time.perf_counter_ns() - started
            out[form] = times
            capture.flush()
    return out


def _median_ms(values: list[float]) -> float:
    return float(statistics.median(values))


def _child_env(model: ModelUnderTest, moto_env: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")}
    return {**keep, **predict_env(model.model_name, moto_env)}


def _run_child(args: list[str], env: dict[str, str]) -> dict[str, float]:
    spawned = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    ended = time.perf_counter()
    if done.returncode != 0:
        raise RuntimeError(f"cold-start child {args} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != 200:
        raise RuntimeError(f"cold-start child {args} answered {result['status']}")
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable across processes on one machine.
    result["startup_ms"] = (result["t0"] - spawned) * 1000.0
    result["wall_ms"] = (ended - spawned) * 1000.0
    return result


def measure_cold(
    model: ModelUnderTest, moto_env: dict[str, str], pickle_key: str, runs: int, *, warm_up: bool
) -> dict[str, float]:
    """Median cold start of the handler (import + model load + first 1-row request) and of the bare baseline.

    The baseline imports scikit-learn, joblib and boto3 and unpickles the same pipeline from S3
    (``pickle_key``): serving by hand, before any request handling.
    """
    from functions.config import stage_config

    cfg = stage_config("local")
    names, rows = dataset_rows(1)
    event_file = BENCH_DIR / f"cold_event_{model.key}.json"
    event_file.write_text(json.dumps(api_gateway_event("POST", "/predict", body_for(names, rows, "features"))))
    artifact = pickle_key
    env = _child_env(model, moto_env)
    kinds = {
        "handler": ["-m", "benchmarks.cold_child", "handler", str(event_file)],
        "baseline": ["-m", "benchmarks.cold_child", "baseline", cfg.registry_bucket, artifact],
    }
    if warm_up:  # once untimed: bytecode caches and the page cache are warm for every timed run
        for args in kinds.values():
            _run_child(args, env)
    got: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(runs):  # alternate, so machine noise hits both alike
        for kind, args in kinds.items():
            got[kind].append(_run_child(args, env))
    out: dict[str, float] = {}
    for kind, results in got.items():
        for field in ("total_ms", "import_ms", "first_request_ms", "startup_ms", "wall_ms"):
            out[f"{kind}_{field}"] = _median_ms([r[field] for r in results])
        out[f"{kind}_total_ms_min"] = min(r["total_ms"] for r in results)
        out[f"{kind}_total_ms_max"] = max(r["total_ms"] for r in results)
    return out


def interpreter_startup_ms(runs: int) -> float:
    """Median wall time of ``python -c pass`` in the venv (site and the editable-install hook included)."""
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        if i:
            times.append((time.perf_counter() - started) * 1000.0)
    return _median_ms(times)


def figures(cells: list[Cell], cold: dict[str, dict[str, float]], startup_ms: float) -> dict[str, float]:
    """The flat JSON object of named numbers."""
    out: dict[str, float] = {}
    for cell in cells:
        base = f"{cell.model.key}_rows{cell.rows}"
        bare50, bare99 = _p(cell.bare_ns, 50), _p(cell.bare_ns, 99)
        out[f"{base}_bare_p50_ms"], out[f"{base}_bare_p99_ms"] = bare50, bare99
        out[f"{base}_onnx_p50_ms"], out[f"{base}_onnx_p99_ms"] = _p(cell.onnx_ns, 50), _p(cell.onnx_ns, 99)
        for form, ns in cell.handler_ns.items():
            h50, h99 = _p(ns, 50), _p(ns, 99)
            out[f"{base}_{form}_handler_p50_ms"] = h50
            out[f"{base}_{form}_handler_p99_ms"] = h99
            out[f"{base}_{form}_ratio_p50"] = h50 / bare50
            out[f"{base}_{form}_ratio_p99"] = h99 / bare99
            out[f"{base}_{form}_overhead_p50_ms"] = h50 - bare50
        for form, ns in cell.sustained_ns.items():
            out[f"{base}_{form}_sustained_p50_ms"] = _p(ns, 50)
            out[f"{base}_{form}_sustained_p99_ms"] = _p(ns, 99)
            out[f"{base}_{form}_sustained_ratio_p50"] = _p(ns, 50) / bare50
        out[f"{base}_samples"] = float(cell.bare_ns.size)
        out[f"{base}_capture_dropped_rows"] = float(cell.dropped_capture_rows)
    for key, c in cold.items():
        out[f"{key}_cold_start_ms"] = c["handler_total_ms"]
        out[f"{key}_cold_import_ms"] = c["handler_import_ms"]
        out[f"{key}_cold_first_request_ms"] = c["handler_first_request_ms"]
        out[f"{key}_baseline_cold_start_ms"] = c["baseline_total_ms"]
        out[f"{key}_baseline_import_ms"] = c["baseline_import_ms"]
        out[f"{key}_baseline_load_ms"] = c["baseline_first_request_ms"]
        out[f"{key}_cold_ratio"] = c["handler_total_ms"] / c["baseline_total_ms"]
        out[f"{key}_cold_wall_ms"] = c["handler_wall_ms"]
        out[f"{key}_baseline_cold_wall_ms"] = c["baseline_wall_ms"]
    if "lr" in cold:
        out["baseline_cold_start_ms"] = cold["lr"]["baseline_total_ms"]
    out["interpreter_startup_ms"] = startup_ms
    out["loadavg_1m_at_end"] = os.getloadavg()[0]
    out["cold_runs"] = float(COLD_RUNS)
    return {k: round(v, 4) for k, v in out.items()}


def _verdict(value: float, target: float) -> str:
    return "ok  " if value <= target else "MISS"


def print_report(
    cells: list[Cell], cold: dict[str, dict[str, float]], startup_ms: float, labels: dict[str, str]
) -> None:
    head = (
        f"{'model':<6}{'rows':>5}  {'form':<9}{'handler p50':>12}{'p99':>9}{'sklearn p50':>12}{'p99':>9}"
        f"{'onnx p50':>9}{'ratio p50':>10}{'p99':>7}  {'target':<12}"
    )
    print()
    print("Warm latency, ms: predict handler in process (ONNX graph; capture on, 100% sampled; stdout to /dev/null),")
    print("each call starting with the capture writer idle; sklearn = the same pipeline's predict_proba, onnx = the")
    print("bare InferenceSession.run, on the same float64 rows, interleaved. ratio = handler / sklearn.")
    for key, label in labels.items():
        print(f"  {key} = {label}")
    print(head)
    print("-" * len(head))
    for cell in cells:
        bare50, bare99 = _p(cell.bare_ns, 50), _p(cell.bare_ns, 99)
        onnx50 = _p(cell.onnx_ns, 50)
        for form, ns in cell.handler_ns.items():
            h50, h99 = _p(ns, 50), _p(ns, 99)
            target = RATIO_TARGETS.get((cell.model.key, cell.rows, form))
            verdict = f"<= {target:.2f}x {_verdict(h50 / bare50, target)}" if target is not None else ""
            print(
                f"{cell.model.key:<6}{cell.rows:>5}  {form:<9}{h50:>12.3f}{h99:>9.3f}{bare50:>12.3f}{bare99:>9.3f}"
                f"{onnx50:>9.3f}{h50 / bare50:>9.2f}x{h99 / bare99:>6.2f}x  {verdict}"
            )
        for form, ns in cell.sustained_ns.items():
            s50, s99 = _p(ns, 50), _p(ns, 99)
            print(
                f"{'':13}{form + ', sustained':<20}{s50:>9.3f}{s99:>9.3f}{'':>28}{s50 / bare50:>9.2f}x"
                f"{s99 / bare99:>6.2f}x  (back to back, capture writer running)"
            )
        if cell.dropped_capture_rows:
            print(f"{'':13}capture dropped or failed {cell.dropped_capture_rows} rows in this cell (writer queue full)")
    print()
    print(
        f"Cold start, ms (median of {COLD_RUNS} fresh processes; from the first line of the script, "
        f"interpreter start-up excluded)"
    )
    print(f"  interpreter start-up alone (python -c pass, wall): {startup_ms:.1f}")
    for key, c in cold.items():
        ratio = c["handler_total_ms"] / c["baseline_total_ms"]
        print(
            f"  {key}: handler {c['handler_total_ms']:.1f} (import {c['handler_import_ms']:.1f}"
            f" + load & first request {c['handler_first_request_ms']:.1f};"
            f" range {c['handler_total_ms_min']:.1f}-{c['handler_total_ms_max']:.1f})"
        )
        print(
            f"  {'':{len(key)}}  baseline {c['baseline_total_ms']:.1f} (import sklearn/joblib/boto3"
            f" {c['baseline_import_ms']:.1f} + get_object & joblib.load {c['baseline_first_request_ms']:.1f};"
            f" range {c['baseline_total_ms_min']:.1f}-{c['baseline_total_ms_max']:.1f})"
        )
        print(
            f"  {'':{len(key)}}  ratio {ratio:.2f}x  <= {COLD_TARGET:.2f}x {_verdict(ratio, COLD_TARGET)}"
            f"   (wall incl. start-up: handler {c['handler_wall_ms']:.1f}, baseline {c['baseline_wall_ms']:.1f})"
        )


def fidelity_figures(fidelity: dict[str, Any]) -> dict[str, float]:
    """The registered graphs' fidelity, from their cards: worst differences and label mismatches."""
    out: dict[str, float] = {}
    for key, f in fidelity.items():
        out[f"{key}_fidelity_max_abs_difference"] = f.max_abs_difference
        out[f"{key}_fidelity_max_scaled_difference"] = f.max_scaled_difference
        out[f"{key}_fidelity_label_mismatches"] = float(f.label_mismatches)
        out[f"{key}_fidelity_rows_checked"] = float(sum(f.rows.values()))
    return out


def print_fidelity(fidelity: dict[str, Any]) -> None:
    """How closely each served graph reproduces its pipeline, as its card records (checked at registration)."""
    print()
    print("Fidelity of the served ONNX graphs (from their cards; checked at registration, tolerance 1e-6 scaled):")
    for key, f in fidelity.items():
        rows = ", ".join(f"{n} {name}" for name, n in f.rows.items())
        print(
            f"  {key}: worst |graph - sklearn| {f.max_abs_difference:.2g} (scaled {f.max_scaled_difference:.2g}), "
            f"label mismatches {f.label_mismatches}, near ties {f.near_ties}; rows checked: {rows}"
        )


def compare_with_previous(current: dict[str, float], previous: dict[str, float]) -> None:
    keys = [k for k in current if k in previous and (k.endswith("_ratio_p50") or k.endswith("_cold_start_ms"))]
    if not keys:
        return
    print()
    print("Change since the previous run (.bench/previous.json)")
    for k in keys:
        old, new = previous[k], current[k]
        change = (new - old) / old * 100.0 if old else 0.0
        print(f"  {k:<40}{old:>10.3f} -> {new:>10.3f}  ({change:+.1f}%)")


def main() -> None:
    started = time.perf_counter()
    BENCH_DIR.mkdir(exist_ok=True)
    load_start = os.getloadavg()[0]
    progress(f"load average {load_start:.2f} on {os.cpu_count()} CPUs (other work on this machine skews every figure)")
    progress("starting moto S3 on 127.0.0.1")
    moto = MotoServer()
    try:
        progress(f"moto at {moto.endpoint}; training and registering the models")
        models = register_models(moto.env)
        labels = {m.key: m.label for m in models}

        procs = {model.key: build_in_process(model, moto.env) for model in models}
        pickles = {model.key: publish_pickle(model, procs[model.key].pipeline) for model in models}

        progress("cold start: interpreter start-up")
        startup_ms = interpreter_startup_ms(COLD_RUNS)
        cold: dict[str, dict[str, float]] = {}
        for model in models:
            progress(f"cold start: {model.key} handler vs bare baseline, {COLD_RUNS} runs each, alternating")
            cold[model.key] = measure_cold(model, moto.env, pickles[model.key], COLD_RUNS, warm_up=model is models[0])

        cells: list[Cell] = []
        for model in models:
            proc = procs[model.key]
            sizes = SIZES if model.key == "lr" else SIZES_SLOW_MODEL
            for n_rows, (rounds, warmup) in sizes.items():
                progress(
                    f"warm: {model.key}, {n_rows} row(s), {'/'.join(FORMS[n_rows])} + bare, "
                    f"{rounds} rounds after {warmup} warm-up"
                )
                cells.append(measure_cell(proc, model, n_rows, rounds, warmup))
    finally:
        moto.stop()

    fidelity = {key: proc.fidelity for key, proc in procs.items()}
    results = {
        **figures(cells, cold, startup_ms),
        **fidelity_figures(fidelity),
        "loadavg_1m_at_start": round(load_start, 2),
    }
    print_report(cells, cold, startup_ms, labels)
    print_fidelity(fidelity)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else None
    if previous is not None:
        RESULTS.replace(PREVIOUS)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    if previous is not None:
        compare_with_previous(results, previous)
    print()
    print(f"wrote {RESULTS.relative_to(ROOT)} ({len(results)} figures) in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
