"""The ``mlops`` command: serve the API locally, train, list models, invoke a handler, run the demo."""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

from functions.config import STAGES, StageConfig, stage_config
from functions.domain.card import Task, TrainingSpec
from functions.domain.estimators import ESTIMATOR_KINDS

DEFAULT_MOTO_PORT = 4567
DEFAULT_API_PORT = 8080
FUNCTIONS = {
    name.replace("_", "-"): name for name in ("predict", "log_outcome", "drift_check", "retrain", "rollout")
} | {name: name for name in ("log_outcome", "drift_check")}


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def aws_target(args: argparse.Namespace, config: StageConfig) -> Iterator[Any]:
    """AWS clients for the chosen target: real AWS, an endpoint, a running ``mlops serve``, or a throw-away moto."""
    from functions.local.runtime import MotoServer, ensure_resources, use_endpoint

    embedded: MotoServer | None = None
    endpoint = args.endpoint_url or os.environ.get("MLOPS_ENDPOINT_URL")
    if args.aws:
        _say(f"target: AWS (credentials from the environment), stage {config.stage}")
    elif endpoint:
        use_endpoint(endpoint, config.region)
        _say(f"target: {endpoint}")
    elif _port_open(DEFAULT_MOTO_PORT):
        use_endpoint(f"http://127.0.0.1:{DEFAULT_MOTO_PORT}", config.region)
        _say(f"target: the local runtime of `mlops serve` at http://127.0.0.1:{DEFAULT_MOTO_PORT}")
    else:
        embedded = MotoServer()
        use_endpoint(embedded.start(), config.region)
        _say("target: a throw-away in-process moto (no `mlops serve` running); nothing is kept after this command")
    from functions.bootstrap import AwsClients

    clients = AwsClients()
    try:
        if embedded is not None:
            ensure_resources(clients, config)
        yield clients, (deployed_config(clients, config) if args.aws else config)
    finally:
        if embedded is not None:
            embedded.stop()


def find_deployed(clients: Any, config: StageConfig) -> StageConfig | None:
    """The stage's configuration with the bucket names its storage stack created (its exports), or None
    when the stage's storage stack is not deployed in this account and region."""
    wanted = {
        config.export_name("registry-bucket-name"): "registry_bucket",
        config.export_name("data-bucket-name"): "data_bucket",
    }
    found: dict[str, str] = {}
    for page in clients.client("cloudformation").get_paginator("list_exports").paginate():
        for export in page.get("Exports", []):
            if export["Name"] in wanted:
                found[wanted[export["Name"]]] = export["Value"]
    return config.model_copy(update=found) if len(found) == len(wanted) else None


def deployed_config(clients: Any, config: StageConfig) -> StageConfig:
    """``find_deployed``, or a stop naming the exports it looked for."""
    deployed = find_deployed(clients, config)
    if deployed is None:
        names = ", ".join(sorted((config.export_name("registry-bucket-name"), config.export_name("data-bucket-name"))))
        raise SystemExit(f"error: exports {names} not found: is the {config.stage} stage deployed here?")
    return deployed


def _say(message: str) -> None:
    print(message, file=sys.stderr)


# -- commands ----------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from functions.local.runtime import LocalRuntime, LocalScheduler

    config = _serving(stage_config(args.stage), args.model_name)
    for port, what in ((args.port, "API"), (args.moto_port, "moto")):
        if port and _port_open(port):
            _say(f"error: port {port} ({what}) is already in use on 127.0.0.1; pick another with --port/--moto-port")
            return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    access = _say if not args.quiet else None
    runtime = LocalRuntime(config, port=args.port, moto_port=args.moto_port, log_stream=sys.stderr, access_log=access)
    runtime.start()
    scheduler = LocalScheduler(runtime, on_run=_say)
    scheduler.start()
    try:
        print(f"API       {runtime.api_url}  serving {config.model_name} (POST /predict, GET /model, GET /health,"
              " GET /openapi.json, POST /outcomes)")  # fmt: skip
        print(f"moto      {runtime.moto.endpoint_url}  (S3 buckets {config.registry_bucket}, {config.data_bucket})")
        print(f"try       curl -s {runtime.api_url}/model")
        print(f"other commands use it: MLOPS_ENDPOINT_URL={runtime.moto.endpoint_url} mlops models")
        print(f"schedules {scheduler.describe()}")
        print("stop with Ctrl-C", flush=True)
        stop.wait()
    finally:
        print("stopping: schedules, capture, the API and moto", flush=True)
        scheduler.stop()
        runtime.stop()
    return 0


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    """``--param key=value`` pairs: a value is a Python literal (``None``, ``True``, ``3``, ``0.5``,
    ``'gini'``, ``[1, 2]``), else JSON (``null``, ``true``), else the text as it is (``gini``)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --param takes key=value, got {pair!r}")
        try:
            params[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            try:
                params[key] = json.loads(raw)
            except json.JSONDecodeError:
                params[key] = raw
    return params


def _training_spec(args: argparse.Namespace, config: StageConfig, text: str) -> TrainingSpec:
    """The spec ``mlops train`` runs, every default filled in from the data, checked against the data.

    Raises ``TrainingError`` for anything that would fail later, before anything is uploaded.
    """
    from functions.domain.card import CLASSIFICATION_TASKS, EstimatorSpec, TrainingSpec
    from functions.domain.dataset import infer_task, parse_csv, target_values
    from functions.domain.estimators import default_kind
    from functions.domain.training import check_spec

    demo = config.demo.training
    shipped = args.data is None
    target = args.target or demo.target
    if args.target is None and not shipped:
        _say(f"target: {target!r} (the demo's; pass --target to name another)")
    task = args.task
    if task is None:
        task, reason = infer_task(target_values(text, target), target)
        _say(f"task: {task} (inferred: {reason}; pass --task to choose)")
    classification = task in CLASSIFICATION_TASKS
    if args.estimator:
        kind = args.estimator
    elif shipped and task == demo.task:
        kind = demo.estimator.kind
    else:
        kind = default_kind(classification)
        _say(f"estimator: {kind} (the default for {'classification' if classification else 'regression'})")
    if args.param or args.estimator or kind != demo.estimator.kind:
        params = _parse_params(args.param)
    else:
        params = demo.estimator.params
    spec = TrainingSpec(
        task=task,
        target=target,
        categorical=args.categorical if args.categorical is not None else ([] if not shipped else demo.categorical),
        estimator=EstimatorSpec(kind=kind, params=params),
    )
    dataset = parse_csv(text, spec.target, set(spec.categorical), regression=spec.task == "regression")
    check_spec(dataset, spec)
    return spec


def cmd_train(args: argparse.Namespace) -> int:
    from functions.adapters.datasets import S3DatasetStore
    from functions.adapters.registry import S3ModelRegistry, validate_model_name
    from functions.local.runtime import DATA_DIR
    from functions.services.training import train_and_register

    config = stage_config(args.stage)
    name = validate_model_name(args.model_name or config.model_name)
    source = args.data or str(DATA_DIR / config.demo.file)
    path = None if source.startswith("s3://") else Path(source)
    if path is not None and not path.is_file():
        _say(f"error: dataset {source} not found")
        return 2
    with aws_target(args, config) as (clients, config):
        registry = S3ModelRegistry(clients.s3, config.registry_bucket)
        datasets = S3DatasetStore(clients.s3, config.data_bucket, config.datasets_prefix)
        text = path.read_text() if path is not None else datasets.read(source)[0]
        spec = _training_spec(args, config, text)  # everything checked before anything is stored
        if path is None:
            uri = source
        else:
            uri = datasets.upload(path.name, path.read_bytes())
            _say(f"uploaded {path} to {uri}")
        champion = registry.get_aliases(name).get("champion")
        card = train_and_register(
            registry,
            datasets,
            model_name=name,
            dataset_uri=uri,
            spec=spec,
            parent_version=champion,
            description=args.description or "",
            progress=_say,
        )
        now_champion = registry.get_aliases(name).get("champion")
        first = champion is None and now_champion == card.version  # a model's first version is its champion
        if first or (args.champion and now_champion != card.version):
            if name == config.model_name:  # the stage's served model: the controller changes what serves
                from functions.services import rollout

                done = rollout.make_champion(
                    rollout_function(config, clients).ports,
                    name,
                    card.version,
                    "first version of the model" if first else "mlops train --champion",
                )
                _say(f"{done.action}: {done.reason}; the live alias now serves v{card.version}")
            elif not first:
                registry.set_aliases(
                    name, {"champion": card.version, "previous": champion}, reason="mlops train --champion"
                )
        print(json.dumps({**card.summary(), "aliases": registry.get_aliases(name)}, indent=2, default=str))
    return 0


def cmd_champion(args: argparse.Namespace) -> int:
    """Print the registry's champion version of the stage's model, or ``none``: what a deploy pins predict to."""
    from functions.adapters.registry import S3ModelRegistry
    from functions.config import NO_CHAMPION

    config = stage_config(args.stage)
    with aws_target(args, config) as (clients, config):
        name = args.model_name or config.model_name
        champion = S3ModelRegistry(clients.s3, config.registry_bucket).get_aliases(name).get("champion")
    print(NO_CHAMPION if champion is None else champion)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from functions.adapters.registry import S3ModelRegistry

    config = stage_config(args.stage)
    with aws_target(args, config) as (clients, config):
        registry = S3ModelRegistry(clients.s3, config.registry_bucket)
        names = [args.model_name] if args.model_name else registry.list_models()
        if not names:
            print("the registry is empty: run `mlops train` (or `mlops serve`, which trains a first model)")
        for name in names:
            aliases = registry.get_aliases(name)
            by_version: dict[int, list[str]] = {}
            for alias, version in aliases.items():
                by_version.setdefault(version, []).append(alias)
            print(f"{name}")
            print(f"  {'version':>7}  {'created (UTC)':19}  {'estimator':22}  {'metric':18}  {'sha256':12}  aliases")
            for card in registry.list_versions(name):
                metric = f"{card.primary_metric}={card.metrics[card.primary_metric]:.4f}"
                print(
                    f"  {card.version:>7}  {card.created_at:%Y-%m-%d %H:%M:%S}  {card.estimator.kind:22}  "
                    f"{metric:18}  {card.artifact_sha256[:12]}  {', '.join(sorted(by_version.get(card.version, [])))}"
                )
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    from functions.adapters.datasets import S3DatasetStore
    from functions.adapters.registry import S3ModelRegistry
    from functions.services.upgrade import upgrade_registry

    config = stage_config(args.stage)
    with aws_target(args, config) as (clients, config):
        registry = S3ModelRegistry(clients.s3, config.registry_bucket)
        datasets = S3DatasetStore(clients.s3, config.data_bucket, config.datasets_prefix)
        names = [args.model_name] if args.model_name else None
        results = upgrade_registry(registry, datasets, names, progress=_say)
        print(json.dumps([r.as_dict() for r in results], indent=2))
    return 1 if any(r.outcome == "failed" for r in results) else 0


def _serving(config: StageConfig, model_name: str | None) -> StageConfig:
    """The stage's configuration serving ``model_name`` instead of the stage's model (if given)."""
    if not model_name:
        return config
    from functions.adapters.registry import validate_model_name

    return config.model_copy(update={"model_name": validate_model_name(model_name)})


def cmd_invoke(args: argparse.Namespace) -> int:
    from functions.local.events import load_event
    from functions.local.host import FunctionHost
    from functions.local.runtime import bootstrap_model

    function = FUNCTIONS.get(args.function)
    if function is None:
        _say(
            f"error: unknown function {args.function!r}; "
            "choose from predict, log-outcome, drift-check, retrain, rollout"
        )
        return 2
    try:
        event = load_event(args.event)
    except (OSError, json.JSONDecodeError) as exc:
        _say(f"error: cannot read event {args.event}: {exc}")
        return 2
    config = stage_config(args.stage)
    with aws_target(args, config) as (clients, target):
        config = _serving(target, args.model_name)
        if not args.aws:
            bootstrap_model(clients.s3, config, _say)
        host = FunctionHost(config, clients)
        with contextlib.redirect_stdout(sys.stderr):  # the function's logs and EMF metrics, as Lambda's log stream
            response = host.invoke(function, event)
            host.flush()
    if "statusCode" not in response:  # a scheduled function's result
        print(json.dumps(response, indent=2, default=str))
        return 1 if response.get("status") == "failed" else 0
    body = response.get("body")
    try:
        response["body"] = json.loads(body) if isinstance(body, str) else body
    except json.JSONDecodeError:
        pass
    print(json.dumps(response, indent=2))
    return 0 if int(response["statusCode"]) < 400 else 1


def rollout_function(config: StageConfig, clients: Any) -> Any:
    """The rollout function of ``config``'s stage as its stack configures it, run in this process."""
    from functions.handlers.rollout import RolloutFunction
    from functions.local.host import settings_values
    from functions.settings import RolloutSettings

    settings = RolloutSettings.model_validate(settings_values(config, "rollout"))
    return RolloutFunction(settings, clients, config.metrics_namespace)


def print_status(config: StageConfig, function: Any) -> None:
    """Aliases, the live alias's weights, the rollout state and every rollback's timings."""
    ports = function.ports
    name = config.model_name
    state = ports.store.load(name)[0]
    aliases = ports.registry.get_aliases(name)
    named = ", ".join(f"{k}=v{v}" for k, v in sorted(aliases.items())) or "no aliases"
    print(f"model     {name}: {named}")
    routing = ports.deployer.routing()
    split = ", ".join(f"Lambda version {v} {w:.0%}" for v, w in routing.weights.items())
    stable = 1.0 - sum(routing.weights.values())
    print(
        f"alias     {ports.deployer.function_name}:{ports.deployer.alias_name} -> Lambda version "
        f"{routing.stable_version} {stable:.0%}" + (f", {split}" if split else "")
    )
    paused = " (paused)" if state.paused else ""
    if state.status == "idle":
        print("rollout   idle")
    elif state.status == "canary":
        print(
            f"rollout   canary{paused}: challenger v{state.challenger_version}, weight {state.weight:.0%}, "
            f"stage {state.stage_index + 1}/{len(function.policy.stages)}"
        )
    else:
        print(f"rollout   {state.status.replace('_', ' ')}{paused}: challenger v{state.challenger_version}")
    for figures in state.stage_figures:
        print(f"  {figures.describe()}")
    if state.status == "canary" and not state.paused:
        live = _live_stage(function, state)
        if live is not None:
            print(f"  {live.describe()}")
    for event in state.history[-8:]:
        weight = "" if event.weight is None else f" [{event.weight:.0%}]"
        print(f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.what}{weight}")
    for rb in state.rollbacks:
        print(
            f"rollback  v{rb.challenger_version} at {rb.weight_at_detection:.0%}: {rb.reason}; "
            f"time to detect {rb.time_to_detect_seconds:.1f} s, time to revert {rb.time_to_revert_seconds:.2f} s"
        )


def _live_stage(function: Any, state: Any) -> Any:
    """The running stage's figures so far (not stored: the controller stores a stage when it judges it)."""
    from functions.domain.rollout import StageFigures
    from functions.services.rollout import observe

    now = function.ports.clock()
    try:
        checks = observe(function.ports, state, function.policy, now)
    except Exception as exc:  # noqa: BLE001 - status shows what it can
        _say(f"(the running stage's figures are unavailable: {exc})")
        return None
    return StageFigures.of(state, checks, function.policy, now, "running")


def cmd_rollout(args: argparse.Namespace) -> int:
    config = stage_config(args.stage)
    with aws_target(args, config) as (clients, config):
        function = rollout_function(config, clients)
        if args.command != "status":
            from functions.services import rollout

            name = config.model_name
            if args.command == "promote":
                result = rollout.promote(function.ports, name, function.policy, canary=args.canary)
            elif args.command == "rollback":
                result = rollout.rollback(function.ports, name, args.reason)
            elif args.command == "restore":
                result = rollout.restore_previous(function.ports, name, args.reason)
            else:
                result = rollout.pause(function.ports, name, args.command == "pause")
            print(f"{result.action}: {result.reason}")
        print_status(config, function)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from functions.local.lifecycle import demo_config, run_lifecycle

    checks = run_lifecycle(demo_config(stage_config(args.stage)), seed=args.seed)
    return 0 if all(checks.values()) else 1


def generic_openapi_text(config: StageConfig) -> str:
    """The generic OpenAPI document (no model's features), as committed in docs/openapi.json."""
    from functions.domain.openapi import openapi_document

    document = openapi_document(max_rows=config.max_batch_rows)
    return json.dumps(document, indent=2) + "\n"


def cmd_openapi(args: argparse.Namespace) -> int:
    text = generic_openapi_text(stage_config(args.stage))
    if args.out is None:
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
        _say(f"wrote {args.out}; `GET /openapi.json` answers the same contract with the serving model's features")
    return 0


# -- parser ------------------------------------------------------------------------------------
def _target_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("target (default: a running `mlops serve`, else a throw-away moto)")
    group.add_argument(
        "--endpoint-url", help="an S3-compatible endpoint, e.g. the moto of `mlops serve` (env MLOPS_ENDPOINT_URL)"
    )
    group.add_argument("--aws", action="store_true", help="use real AWS with credentials from the environment")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlops",
        description="Serverless model operations for scikit-learn on AWS Lambda. Runs locally against moto "
        "on 127.0.0.1 by default; no AWS account, no Docker.",
    )
    parser.add_argument("--stage", default="local", choices=sorted(STAGES), help="configuration stage (default: local)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the HTTP API on 127.0.0.1 against moto (trains a first model if none)")
    serve.add_argument("--port", type=int, default=DEFAULT_API_PORT, help=f"API port (default {DEFAULT_API_PORT})")
    serve.add_argument(
        "--moto-port", type=int, default=DEFAULT_MOTO_PORT, help=f"moto S3 port (default {DEFAULT_MOTO_PORT})"
    )
    serve.add_argument("--quiet", action="store_true", help="no access log")
    serve.add_argument(
        "--model-name",
        help="the model to serve (default: the stage's, which is trained from the shipped data set when the registry"
        " has none; another model waits for `mlops train --model-name NAME`)",
    )
    serve.set_defaults(func=cmd_serve)

    train = sub.add_parser("train", help="train a model from a CSV data set and register it as a new version")
    train.add_argument("--data", help="CSV file or s3:// URI in the data bucket (default: the shipped demo data set)")
    train.add_argument("--target", help="label column (default: the demo's)")
    train.add_argument(
        "--task",
        choices=list(get_args(Task)),
        help="default: inferred from the target (labels, or integers with at most 20 distinct values, are classes;"
        " other numbers are a regression target) and printed",
    )
    train.add_argument("--categorical", nargs="*", default=None, help="columns holding categories")
    train.add_argument(
        "--estimator",
        choices=list(ESTIMATOR_KINDS),
        help="estimator kind (default: the demo's on the demo data; else logistic_regression for classification,"
        " ridge for regression)",
    )
    train.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="estimator parameter, a Python literal (max_depth=None, C=0.5, class_weight='balanced'); repeatable",
    )
    train.add_argument("--model-name", help="registry name (default: from the stage configuration)")
    train.add_argument("--champion", action="store_true", help="make the new version the champion")
    train.add_argument("--description", help="free text stored in the model card")
    _target_options(train)
    train.set_defaults(func=cmd_train)

    upgrade = sub.add_parser(
        "upgrade-registry",
        help="convert versions registered with a pickle (joblib) to an ONNX graph and a skops file",
        description="Convert every version registered before ONNX serving: its joblib pickle is opened (the "
        "only place one ever is: you vouch for the registry's pickles by running this), after its SHA-256 "
        "matched its card, then converted to ONNX through the same fidelity check as a new registration and "
        "stored as skops. Until then predict answers 503 for such a version.",
    )
    upgrade.add_argument("--model-name", help="only this model (default: every model in the registry)")
    _target_options(upgrade)
    upgrade.set_defaults(func=cmd_upgrade)

    models = sub.add_parser("models", help="list registered versions and aliases")
    models.add_argument("--model-name", help="only this model")
    _target_options(models)
    models.set_defaults(func=cmd_models)

    _add_champion(sub)

    invoke = sub.add_parser("invoke", help="run a handler on an event file (e.g. events/predict_single.json)")
    invoke.add_argument("function", help="predict, log-outcome, drift-check, retrain or rollout")
    invoke.add_argument("event", help="path to an event JSON file, or a name in events/")
    invoke.add_argument(
        "--model-name", help="the model the functions serve (default: the stage's; one served model per stage)"
    )
    _target_options(invoke)
    invoke.set_defaults(func=cmd_invoke)

    status = sub.add_parser("status", help="aliases, the live alias weights, the rollout and its rollbacks")
    _target_options(status)
    status.set_defaults(func=cmd_rollout)
    _add_promote(sub)
    rollback = sub.add_parser("rollback", help="end the running canary now: weight to 0, challenger rejected")
    rollback.add_argument("--reason", default="rolled back by an operator", help="recorded with the rollback")
    _target_options(rollback)
    rollback.set_defaults(func=cmd_rollout)
    _add_restore(sub)
    for name, text in (("pause", "hold the rollout where it is"), ("resume", "let a paused rollout go on")):
        command = sub.add_parser(name, help=text)
        _target_options(command)
        command.set_defaults(func=cmd_rollout)

    _add_demo_and_openapi(sub)
    return parser


def _add_champion(sub: Any) -> None:
    champion = sub.add_parser(
        "champion",
        help="print the registry's champion version, or 'none' (what `make synth CHAMPION=...` pins predict to)",
    )
    champion.add_argument("--model-name", help="another model than the stage's")
    _target_options(champion)
    champion.set_defaults(func=cmd_champion)


def _add_promote(sub: Any) -> None:
    promote = sub.add_parser(
        "promote", help="finish the running canary now, or make the waiting challenger champion now (or --canary)"
    )
    promote.add_argument(
        "--canary",
        action="store_true",
        help="a waiting challenger: request its stepped canary instead (10%%, 50%%, 100%%)",
    )
    _target_options(promote)
    promote.set_defaults(func=cmd_rollout)


def _add_restore(sub: Any) -> None:
    restore = sub.add_parser(
        "restore", help="after a promotion, make the previous champion champion again (the live alias moves at once)"
    )
    restore.add_argument("--reason", default="restored by an operator", help="recorded in the rollout history")
    _target_options(restore)
    restore.set_defaults(func=cmd_rollout)


def _add_demo_and_openapi(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the local lifecycle end to end and print what happened")
    demo.add_argument("--seed", type=int, default=7, help="seed of the traffic and the canary routing (default 7)")
    demo.set_defaults(func=cmd_demo)

    openapi = sub.add_parser("openapi", help="print the API's generic OpenAPI 3.1 document (docs/openapi.json)")
    openapi.add_argument("--out", metavar="FILE", help="write it to FILE instead of standard output")
    openapi.set_defaults(func=cmd_openapi)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    from functions.errors import MlopsError

    try:
        return func(args)
    except MlopsError as exc:
        _say(f"error: {exc.message}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
