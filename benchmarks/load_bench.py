"""`python -m benchmarks.load_bench`: the local server (what `mlops serve` runs) under 32 keep-alive clients.

A child process starts the local runtime (moto on 127.0.0.1, the first model, the HTTP API) and
waits. This process drives it with one asyncio event loop holding 32 keep-alive connections (no
thread per client: the client must not take the CPU the server needs), each sending a bounded
number of ``POST /predict`` requests back to back, first with 1-row bodies, then with 100-row
bodies. It records each request's latency and status. It then asks the child to write its capture,
and counts the rows of the answered requests (by their request ids) found in the capture objects.

Printed and merged into ``.bench/latest.json``: ``load_rps``, ``load_p50_ms``, ``load_p99_ms``,
``load_errors``, ``load_capture_missing_rows`` for the 1-row run, the same with ``load_rows100_``
for the 100-row run, plus ``load_clients`` and ``load_requests_per_client``. A third run sends the
1-row requests while a rollout invocation is held inside the server: ``load_rollout_held_rps``,
``_p99_ms``, ``_max_ms``, ``_errors`` and ``_seconds`` (how long it was held). Last, the rows
per second one capture writer alone writes to the moto S3, fed 1-, 100- and 1000-row records as
fast as it takes them: ``capture_writer_rows{1,100,1000}_rows_per_s``, the rate of captured rows
up to which nothing is dropped. The targets on a
2-core machine for the 1-row run are printed beside the figures (they are not assertions).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import boto3
import numpy as np

from benchmarks.harness import AWS_ENV, BENCH_DIR, ROOT, dataset_rows, predict_body, progress

RESULTS = BENCH_DIR / "latest.json"
TARGETS = {"load_rps": 1000.0, "load_p99_ms": 50.0}
CAPTURE_RECORD_ROWS = (1, 100, 1000)


# -- the server ---------------------------------------------------------------------------------------------
def serve() -> None:
    """Child process: the local runtime; prints its URLs, writes capture on "flush", stops on EOF."""
    from functions.config import stage_config
    from functions.local.runtime import LocalRuntime

    out = sys.stdout
    runtime = LocalRuntime(stage_config("local"), progress=lambda _m: None)
    runtime.start()
    held = HeldRollout(runtime)
    try:
        out.write(json.dumps({"api": runtime.api_url, "moto": runtime.moto.endpoint_url}) + "\n")
        out.flush()
        for line in sys.stdin:
            command = line.strip()
            if command == "flush":
                runtime.sync_cloudwatch()  # writes every buffered capture record
                out.write("flushed\n")
            elif command == "hold":
                held.start()
                out.write("held\n")
            elif command == "release":
                out.write(f"released {held.release():.3f}\n")
            elif command.startswith("capture-throughput "):
                out.write(f"{writer_throughput(runtime, int(command.split()[1])):.1f}\n")
            out.flush()
    finally:
        runtime.stop()


def writer_throughput(runtime: Any, rows: int, seconds: float = 3.0) -> float:
    """Rows per second one capture writer (as predict configures it) writes to the moto S3, fed
    ``rows``-row records as fast as it takes them (never more than two batches waiting)."""
    from functions.adapters.capture import CaptureRecord, CaptureWriter

    config = runtime.config
    names, data = dataset_rows(rows)
    matrix = np.asarray(data)
    columns = {name: matrix[:, j].copy() for j, name in enumerate(names)}
    probabilities = np.tile([0.3, 0.7], (rows, 1))
    writer = CaptureWriter(
        runtime.clients.s3,
        config.data_bucket,
        "bench-capture",
        config.model_name,
        max_rows=config.capture_max_rows,
        max_age_seconds=config.capture_max_age_seconds,
        max_pending_batches=1_000_000,
    )
    started = time.perf_counter()
    added = 0
    while time.perf_counter() - started < seconds:
        if writer.pending_batches() >= 2:  # keep the writer busy, not a backlog that outlives the clock
            time.sleep(0.0005)
            continue
        for _ in range(max(1, config.capture_max_rows // rows)):
            writer.add(CaptureRecord(f"r{added}", time.time(), 1, columns, np.ones(rows), probabilities, rows))
            added += 1
    writer.flush(timeout=600)
    elapsed = time.perf_counter() - started
    assert writer.stats.written_rows == added * rows and writer.stats.dropped_rows == 0
    return writer.stats.written_rows / elapsed


class HeldRollout:
    """A rollout invocation held on an event inside the local host (as a slow tick would be), on a thread."""

    def __init__(self, runtime: Any) -> None:
        from functions.handlers.scheduled import instrument_scheduled

        self._runtime = runtime
        self._entered, self._release = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self._since = 0.0
        runtime.host.add_handler("rollout", instrument_scheduled(self._tick))

    def _tick(self, _event: dict[str, Any], _context: Any) -> dict[str, Any]:
        self._since = time.perf_counter()
        self._entered.set()
        self._release.wait(300)
        return {"held_seconds": time.perf_counter() - self._since}

    def start(self) -> None:
        from functions.local.runtime import scheduled_event

        event = scheduled_event(self._runtime.config, "rollout")
        self._thread = threading.Thread(target=self._runtime.invoke, args=("rollout", event), daemon=True)
        self._thread.start()
        self._entered.wait(60)

    def release(self) -> float:
        """Seconds the invocation was held (it was still running when this was called)."""
        held = time.perf_counter() - self._since
        self._release.set()
        if self._thread is not None:
            self._thread.join(60)
        return held


# -- the clients --------------------------------------------------------------------------------------------
def request_bytes(host: str, body: str) -> bytes:
    data = body.encode()
    head = f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(data)}\r\n\r\n").encode() + data


@dataclass
class Outcomes:
    """What the clients saw: each request's latency, the statuses that were not 200, the ids answered."""

    latencies: list[float] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


async def client(host: str, port: int, request: bytes, count: int, seen: Outcomes) -> None:
    """One keep-alive connection sending ``count`` requests back to back."""
    latencies, failures, ids = seen.latencies, seen.failures, seen.ids
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            await reader.readexactly(int(headers.get("content-length", "0")))
            latencies.append(time.perf_counter() - started)
            if status == 200:
                ids.append(headers.get("x-amzn-requestid", ""))
            else:
                failures.append(status)
    finally:
        writer.close()


async def drive(url: str, body: str, clients: int, per_client: int) -> tuple[float, Outcomes]:
    host, port = url.removeprefix("http://").split(":")
    request = request_bytes(host, body)
    seen = Outcomes()
    started = time.perf_counter()
    await asyncio.gather(*(client(host, int(port), request, per_client, seen) for _ in range(clients)))
    return time.perf_counter() - started, seen


def captured_rows(moto: str, ids: set[str]) -> int:
    """Rows of the captured requests whose ids are in ``ids``."""
    from functions.config import stage_config

    cfg = stage_config("local")
    s3 = boto3.client("s3", endpoint_url=moto, region_name=cfg.region, **_credentials())
    rows = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=cfg.data_bucket, Prefix=f"{cfg.capture_prefix}/{cfg.model_name}/"):
        for obj in page.get("Contents", []):
            data = gzip.decompress(s3.get_object(Bucket=cfg.data_bucket, Key=obj["Key"])["Body"].read())
            for line in data.splitlines():
                record = json.loads(line)
                if record["request_id"] in ids:
                    rows += int(record["n"])
    return rows


def _credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    }


def run(
    rows: int, clients: int, per_client: int, server: subprocess.Popen[str], urls: dict[str, str]
) -> dict[str, float]:
    names, data = dataset_rows(rows)
    body = predict_body(names, data, "rows")
    asyncio.run(drive(urls["api"], body, clients, 5))  # warm-up: connections, model, code paths
    elapsed, seen = asyncio.run(drive(urls["api"], body, clients, per_client))
    latencies, failures, ids = seen.latencies, seen.failures, seen.ids
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("flush\n")
    server.stdin.flush()
    assert server.stdout.readline().strip() == "flushed"
    found = captured_rows(urls["moto"], set(ids))
    ms = np.asarray(latencies) * 1000.0
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": float(len(failures)),
        "capture_missing_rows": float(len(ids) * rows - found),
    }


def _command(server: subprocess.Popen[str], command: str) -> str:
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(command + "\n")
    server.stdin.flush()
    return server.stdout.readline().strip()


def held_run(args: argparse.Namespace, server: subprocess.Popen[str], urls: dict[str, str]) -> dict[str, float]:
    """1-row requests while the host holds a rollout invocation: each function has its own environment,
    so predict answers as fast as without it (one lock for every function made it wait for the tick)."""
    names, data = dataset_rows(1)
    body = predict_body(names, data, "rows")
    assert _command(server, "hold") == "held"
    elapsed, seen = asyncio.run(drive(urls["api"], body, args.clients, args.requests))
    held = float(_command(server, "release").split()[1])
    ms = np.asarray(seen.latencies) * 1000.0
    return {
        "rps": len(seen.latencies) / elapsed,
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "errors": float(len(seen.failures)),
        "seconds": held,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--requests", type=int, default=100, help="requests per connection per run (default 100)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    started = time.perf_counter()
    progress(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; starting the local runtime")
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.load_bench", "--serve"],
        cwd=ROOT,
        env={**os.environ, **AWS_ENV},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        urls: dict[str, str] = json.loads(server.stdout.readline())
        figures: dict[str, float] = {
            "load_clients": float(args.clients),
            "load_requests_per_client": float(args.requests),
        }
        for rows, prefix in ((1, "load_"), (100, "load_rows100_")):
            progress(f"{args.clients} clients x {args.requests} requests of {rows} row(s)")
            result = run(rows, args.clients, args.requests, server, urls)
            figures.update({f"{prefix}{key}": round(value, 3) for key, value in result.items()})
        progress(f"{args.clients} clients x {args.requests} requests of 1 row while a rollout invocation is held")
        figures.update({f"load_rollout_held_{k}": round(v, 3) for k, v in held_run(args, server, urls).items()})
        for rows in CAPTURE_RECORD_ROWS:
            progress(f"capture writer throughput, {rows}-row records")
            figures[f"capture_writer_rows{rows}_rows_per_s"] = float(_command(server, f"capture-throughput {rows}"))
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    report(figures)
    BENCH_DIR.mkdir(exist_ok=True)
    current: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(figures)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    print(f"merged {len(figures)} figures into {RESULTS.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s")


def report(figures: dict[str, float]) -> None:
    clients, per_client = int(figures["load_clients"]), int(figures["load_requests_per_client"])
    print(f"\nLoad on the local server: {clients} keep-alive clients x {per_client} requests, one asyncio client loop")
    print(f"  {'run':<10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'capture missing rows':>22}")
    for label, prefix in (("1 row", "load_"), ("100 rows", "load_rows100_")):
        values = [figures[f"{prefix}{k}"] for k in ("rps", "p50_ms", "p99_ms", "errors", "capture_missing_rows")]
        print(f"  {label:<10}{values[0]:9.0f}{values[1]:9.2f}{values[2]:9.2f}{values[3]:8.0f}{values[4]:22.0f}")
    verdicts = [
        f"req/s {figures['load_rps']:.0f} {'>=' if figures['load_rps'] >= TARGETS['load_rps'] else '<'} 1000",
        f"p99 {figures['load_p99_ms']:.1f} ms {'<' if figures['load_p99_ms'] < TARGETS['load_p99_ms'] else '>='} 50",
        f"errors {figures['load_errors']:.0f}",
        f"missing {figures['load_capture_missing_rows']:.0f}",
    ]
    print("  1-row targets (>= 1000 req/s, p99 < 50 ms, 0 errors, 0 missing): " + "; ".join(verdicts))
    held = {k: figures[f"load_rollout_held_{k}"] for k in ("rps", "p99_ms", "max_ms", "errors", "seconds")}
    print(
        f"  1 row while a rollout invocation was held for {held['seconds']:.1f} s: {held['rps']:.0f} req/s,"
        f" p99 {held['p99_ms']:.2f} ms, max {held['max_ms']:.2f} ms, {held['errors']:.0f} errors"
        " (predict never waits for another function)"
    )
    rates = ", ".join(
        f"{figures[f'capture_writer_rows{rows}_rows_per_s']:,.0f} rows/s in {rows}-row records"
        for rows in CAPTURE_RECORD_ROWS
    )
    print(f"  One capture writer alone writes {rates}; captured rows beyond that rate fill its queue and are dropped")


if __name__ == "__main__":
    main()
