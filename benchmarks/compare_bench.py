"""The predict handler next to other ways of serving the same model; merges ``compare_*`` into .bench/latest.json.

Every contender serves the same registered version (its skops pipeline, or for ours its ONNX graph)
and answers the same request body (``{"rows": [...]}``, the dataset's first 1 or 100 rows):

* ``ours``: the project's instrumented predict handler, in process, called with an API Gateway REST
  event (logging context, EMF metric line, capture on and 100% sampled, stdout to /dev/null), each
  call starting with the capture writer idle, as in ``predict_bench``.
* ``powertools_sklearn``: what a user writes by hand: a plain Powertools ``APIGatewayRestResolver``
  whose POST /predict validates the body with a pydantic model (one float field per schema feature,
  extra fields forbidden; ``model_validate_json``) and answers with the pipeline's ``predict_proba``;
  ``resolver.resolve(event, context)`` in process, same events.
* ``powertools_validation``: the same, with Powertools' own pydantic validation
  (``enable_validation=True``, the request model as the route's parameter, the response model returned).
* ``fastapi_uvicorn``: FastAPI with the same request and response models and pipeline (an ``async def``
  route: no threadpool hop), behind uvicorn (asyncio + h11: uvloop and httptools are not installed)
  in a child process on 127.0.0.1, called over loopback with one keep-alive ``http.client.HTTPConnection``.
* ``ours_http``: the handler behind the local gateway (``functions.local.gateway.ApiServer``, what
  ``mlops serve`` runs; the alias-weight routing of ``FunctionHost`` left out) in a child process,
  with the same keep-alive client. The gateway answers in one write with TCP_NODELAY; a short probe
  still checks for the delayed-ACK stall (~40 ms per keep-alive request) an answer in two writes
  would cause, and if it finds one, ``ours_http`` is left out of the timed rounds (the probe's p50
  is reported).
* ``*_newconn``: both HTTP servers with a new connection per request (connect time included), to
  compare with keep-alive (the issue's target: keep-alive p50 within 1 ms of a new connection).

One round calls every contender once, in an order rotated round by round, after warm-up rounds.
Each contender's first answer must carry scikit-learn's probabilities (to the handler's fidelity
tolerance) and every timed answer must be a 200, so a broken contender cannot look fast.
"""

import argparse
import gc
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from operator import attrgetter
from typing import Any, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from benchmarks.harness import (
    AWS_ENV,
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
    progress,
    quiet_stdout,
    register_models,
    wait_capture_idle,
)

RESULTS = BENCH_DIR / "latest.json"
SIZES = (1, 100)
NAGLE_PROBE_CALLS = 30
NAGLE_MS = 20.0  # a keep-alive p50 above this is the delayed-ACK stall, not serving
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class PredictResponse(BaseModel):
    predictions: list[Any]
    classes: list[Any]
    probabilities: list[list[float]]


def sklearn_service(pipeline: Any, names: list[str]) -> tuple[type[BaseModel], Callable[[Any], PredictResponse]]:
    """The request model and the answer a user writes by hand: validated rows in, ``predict_proba`` out."""
    fields: dict[str, Any] = dict.fromkeys(names, (float, ...))
    row = create_model("Row", __config__=ConfigDict(extra="forbid"), **fields)
    request = create_model("PredictRequest", rows=(list[row], ...))
    features, classes = attrgetter(*names), pipeline.classes_

    def answer(req: Any) -> PredictResponse:
        proba = pipeline.predict_proba(np.array([features(r) for r in req.rows], dtype=np.float64))
        return PredictResponse(
            predictions=classes[proba.argmax(axis=1)].tolist(), classes=classes.tolist(), probabilities=proba.tolist()
        )

    return request, answer


def powertools_resolver(request: type[BaseModel], answer: Callable[[Any], PredictResponse], validation: bool) -> Any:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

    app = APIGatewayRestResolver(enable_validation=validation)
    if validation:

        @app.post("/predict")
        def predict(req: request) -> PredictResponse:  # type: ignore[valid-type]
            return answer(req)

    else:

        @app.post("/predict")
        def predict_by_hand() -> Response[str]:
            try:
                req = request.model_validate_json(app.current_event.body or "")
            except ValidationError as exc:
                return Response(422, "application/json", exc.json(include_url=False))
            return Response(200, "application/json", answer(req).model_dump_json())

    return app


def fastapi_app(request: type[BaseModel], answer: Callable[[Any], PredictResponse]) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/predict")
    async def predict(req: request) -> PredictResponse:  # type: ignore[valid-type]
        return answer(req)

    return app


class _Host:
    """What ``ApiServer`` needs of a ``FunctionHost``: every route goes to the one predict handler."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> None:
        self.handler, self.context = handler, LambdaContextStub()

    def invoke(self, _function: str, event: dict[str, Any]) -> dict[str, Any]:
        return self.handler(event, self.context)


def serve(kind: str, model_name: str, endpoint: str) -> None:
    """Child process: serve ``model_name`` over HTTP, print the port, serve until stdin closes."""
    proc = build_in_process(ModelUnderTest(model_name, "", model_name, 0), {**AWS_ENV, "AWS_ENDPOINT_URL": endpoint})
    if kind == "fastapi":
        import uvicorn

        # proto given, else asyncio leaves TCP_NODELAY off (uvicorn binding its own port gets it on)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(fastapi_app(*sklearn_service(proc.pipeline, proc.names)), log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started and thread.is_alive():
            time.sleep(0.01)
        port = sock.getsockname()[1]

        def stop() -> None:
            server.should_exit = True
            thread.join(10)

    else:
        from functions.local.gateway import ApiServer
        from functions.local.host import FunctionHost

        api = ApiServer(0, cast(FunctionHost, _Host(proc.handler)), None)
        api.start()
        port, stop = api.server_address[1], api.stop
    print(port, flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # logs and EMF lines must not fill the parent's pipe
    with quiet_stdout():
        sys.stdin.read()  # EOF when the parent closes our stdin or exits
        stop()


class Child:
    """A ``serve`` child process on 127.0.0.1."""

    def __init__(self, kind: str, model_name: str, endpoint: str) -> None:
        args = ["-m", "benchmarks.compare_bench", "--serve", kind, "--model-name", model_name, "--endpoint", endpoint]
        self._proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"{kind} server did not start (got {line!r})")
        self.port = int(line)

    def stop(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


class Client:
    """POST /predict to a loopback server: one keep-alive connection, or a new one per request."""

    def __init__(self, port: int, body: str, keep_alive: bool) -> None:
        self.port, self.body, self.keep_alive = port, body.encode(), keep_alive
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self) -> tuple[int, bytes]:
        conn = self.conn if self.keep_alive else http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("POST", "/predict", body=self.body, headers=HEADERS)
        response = conn.getresponse()
        data = response.read()
        if not self.keep_alive or response.will_close:
            conn.close()
        return response.status, data

    def status(self, _i: int) -> int:
        return self.post()[0]

    def check(self, expected: np.ndarray) -> None:
        status, data = self.post()
        check_response({"statusCode": status, "body": data}, expected)


def measure(
    proc: InProcess, ports: dict[str, int], n_rows: int, rounds: int, warmup: int
) -> tuple[dict[str, np.ndarray], float]:
    """Samples (ns) of every contender on the same rows, interleaved; and the ours_http keep-alive probe p50 (ms)."""
    names, rows = dataset_rows(n_rows)
    if names != proc.names:
        raise RuntimeError("dataset columns are not in the model card's feature order")
    expected = proc.pipeline.predict_proba(np.array(rows, dtype=np.float64))
    body = predict_body(names, rows, "rows")
    total = rounds + warmup
    events = [api_gateway_event("POST", "/predict", body) for _ in range(total)]
    context: Any = LambdaContextStub()
    service = sklearn_service(proc.pipeline, names)
    in_process = {
        "ours": proc.handler,
        "powertools_sklearn": powertools_resolver(*service, validation=False).resolve,
        "powertools_validation": powertools_resolver(*service, validation=True).resolve,
    }
    clients = {
        "fastapi_uvicorn": Client(ports["fastapi"], body, keep_alive=True),
        "ours_http": Client(ports["ours"], body, keep_alive=True),
        "fastapi_uvicorn_newconn": Client(ports["fastapi"], body, keep_alive=False),
        "ours_http_newconn": Client(ports["ours"], body, keep_alive=False),
    }
    with quiet_stdout():
        for fn in in_process.values():
            check_response(fn(events[0], context), expected)
        for client in clients.values():
            client.check(expected)
        probe = []
        for _ in range(NAGLE_PROBE_CALLS):
            started = time.perf_counter_ns()
            clients["ours_http"].post()
            probe.append(time.perf_counter_ns() - started)
    probe_ms = float(np.median(probe)) / 1e6
    if probe_ms > NAGLE_MS:
        progress(f"ours_http keep-alive p50 {probe_ms:.1f} ms (delayed-ACK stall): left out of the timed rounds")
        del clients["ours_http"]

    def call(fn: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Callable[[int], int]:
        return lambda i: int(fn(events[i], context)["statusCode"])

    calls = {**{name: call(fn) for name, fn in in_process.items()}, **{n: c.status for n, c in clients.items()}}
    order = list(calls)
    samples = {name: np.empty(rounds, dtype=np.int64) for name in order}
    statuses: dict[str, set[int]] = {name: set() for name in order}
    capture = proc.function.env.capture
    clock = time.perf_counter_ns
    gc.collect()
    with quiet_stdout():
        for i in range(total):
            k = i % len(order)
            for name in order[k:] + order[:k]:
                fn = calls[name]
                wait_capture_idle(capture)
                started = clock()
                status = fn(i)
                elapsed = clock() - started
                statuses[name].add(status)
                if i >= warmup:
                    samples[name][i - warmup] = elapsed
        capture.flush()
    bad = {name: s for name, s in statuses.items() if s != {200}}
    if bad:
        raise RuntimeError(f"contenders answered other than 200: {bad}")
    return samples, probe_ms


def _ms(samples: np.ndarray, q: float) -> float:
    return float(np.percentile(samples, q)) / 1e6


def report(cells: dict[tuple[str, int], tuple[dict[str, np.ndarray], float]], labels: dict[str, str]) -> None:
    print()
    print("Warm latency, ms: the same model version and request body ({'rows': [...]}) served by each contender,")
    print("interleaved round by round; see the module docstring for what each contender is. ratio = p50 / ours p50.")
    for key, label in labels.items():
        print(f"  {key} = {label}")
    head = f"{'model':<6}{'rows':>5}  {'contender':<25}{'p50':>9}{'p99':>9}{'ratio':>9}"
    print(head)
    print("-" * len(head))
    for (key, n_rows), (samples, probe_ms) in cells.items():
        ours50 = _ms(samples["ours"], 50)
        for name, ns in samples.items():
            p50 = _ms(ns, 50)
            print(f"{key:<6}{n_rows:>5}  {name:<25}{p50:>9.3f}{_ms(ns, 99):>9.3f}{p50 / ours50:>8.2f}x")
        if "ours_http" not in samples:
            note = f"probe p50 of {NAGLE_PROBE_CALLS} keep-alive calls: delayed-ACK stall"
            print(f"{key:<6}{n_rows:>5}  {'ours_http':<25}{probe_ms:>9.3f}{'':>9}{probe_ms / ours50:>8.2f}x  ({note})")


def figures(cells: dict[tuple[str, int], tuple[dict[str, np.ndarray], float]], rounds: int) -> dict[str, float]:
    out: dict[str, float] = {"compare_rounds": float(rounds)}
    for (key, n_rows), (samples, probe_ms) in cells.items():
        base = f"compare_{key}_rows{n_rows}"
        for name, ns in samples.items():
            out[f"{base}_{name}_p50_ms"], out[f"{base}_{name}_p99_ms"] = _ms(ns, 50), _ms(ns, 99)
        out[f"{base}_ours_http_keepalive_probe_p50_ms"] = probe_ms
    return {k: round(v, 4) for k, v in out.items()}


def merge_results(results: dict[str, float]) -> None:
    """Add these figures to .bench/latest.json, keeping every other key (read-modify-write)."""
    BENCH_DIR.mkdir(exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(results)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=500, help="timed rounds per model and size (default 500)")
    parser.add_argument("--models", default="lr,rf", help="comma-separated model keys: lr, rf (default lr,rf)")
    parser.add_argument("--serve", choices=("fastapi", "ours"), help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--model-name", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.model_name, args.endpoint)
        return
    started, warmup = time.perf_counter(), max(20, args.rounds // 10)
    wanted = args.models.split(",")
    progress(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; starting moto S3 on 127.0.0.1")
    moto = MotoServer()
    children: list[Child] = []
    cells: dict[tuple[str, int], tuple[dict[str, np.ndarray], float]] = {}
    try:
        progress(f"moto at {moto.endpoint}; training and registering the models")
        models = [m for m in register_models(moto.env) if m.key in wanted]
        for model in models:
            proc = build_in_process(model, moto.env)
            progress(f"{model.key}: starting FastAPI/uvicorn and the local gateway in child processes")
            children = []
            for kind in ("fastapi", "ours"):
                children.append(Child(kind, model.model_name, moto.endpoint))
            ports = {"fastapi": children[0].port, "ours": children[1].port}
            for n_rows in SIZES:
                progress(f"{model.key}, {n_rows} row(s): {args.rounds} rounds after {warmup} warm-up")
                cells[(model.key, n_rows)] = measure(proc, ports, n_rows, args.rounds, warmup)
            for child in children:
                child.stop()
    finally:
        for child in children:
            child.stop()
        moto.stop()
    report(cells, {m.key: m.label for m in models})
    results = figures(cells, args.rounds)
    merge_results(results)
    print()
    print(f"merged {len(results)} figures into {RESULTS.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
