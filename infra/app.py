"""The CDK app: ``python -m infra.app --stage dev|prod`` synthesizes every stack of a stage into cdk.out/.

Through the CDK CLI (``cdk.json``) the stage is the context ``stage`` and must be given: the app
never picks one, so no command (``cdk bootstrap`` included) synthesizes another stage than the
operator's. Lambda assets missing from layers/build are built first (as ``make layer``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_cdk import App, Environment, Stack

from functions.config import NO_CHAMPION
from infra.access import StorageRefs
from infra.assets import REPO, AssetDirs, MissingAssetsError, asset_dirs
from infra.nag import add_rule_packs
from infra.settings import infra_settings
from infra.stacks.monitoring import MonitoringStack
from infra.stacks.serving import ServingStack
from infra.stacks.storage import StorageStack

CHAMPION_CONTEXT = "champion"
STAGES = ("dev", "prod")


def champion_pin(value: Any) -> str:
    """The predict version's MODEL_VERSION from the context ``champion``: the registry's champion, which
    ``make deploy`` reads and passes in, or ``none`` (no champion yet: that version answers 503)."""
    text = str(NO_CHAMPION if value is None else value).strip().lower()
    if text != NO_CHAMPION and not (text.isdigit() and int(text) >= 1):
        raise ValueError(
            f"context {CHAMPION_CONTEXT!r} must be the registry's champion version (an integer >= 1) or "
            f"{NO_CHAMPION!r}, got {value!r}"
        )
    return text


def feature_flags() -> dict[str, Any]:
    """The context of cdk.json (CDK's recommended feature flags), which the CLI would pass too."""
    return dict(json.loads((REPO / "cdk.json").read_text()).get("context", {}))


def add_stage(app: App, stage: str, assets: AssetDirs) -> dict[str, Stack]:
    """Add the storage, serving and monitoring stacks of ``stage`` to ``app``; returns them by role."""
    config, settings = infra_settings(stage)
    env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=config.region)
    tags = {"app": config.app_name, "stage": config.stage}
    storage = StorageStack(
        app,
        config.resource_name("storage"),
        config=config,
        settings=settings,
        env=env,
        tags=tags,
        description=f"{config.app_name} {stage}: model registry and data buckets (retained on destroy)",
    )
    refs = StorageRefs.imported(config)
    pin = champion_pin(app.node.try_get_context(CHAMPION_CONTEXT))
    serving = ServingStack(
        app,
        config.resource_name("serving"),
        config=config,
        settings=settings,
        assets=assets,
        storage=refs,
        model_version=pin,
        env=env,
        tags=tags,
        description=f"{config.app_name} {stage}: predict and log-outcome behind the API",
    )
    monitoring = MonitoringStack(
        app,
        config.resource_name("monitoring"),
        config=config,
        settings=settings,
        assets=assets,
        storage=refs,
        serving_layer=serving.layer,
        env=env,
        tags=tags,
        description=f"{config.app_name} {stage}: drift-check, retrain, rollout, alarms and dashboard",
    )
    serving.add_stack_dependency(storage, "reads the storage stack's exports")
    monitoring.add_stack_dependency(serving, "addresses the predict function, alias and CodeDeploy group by name")
    return {"storage": storage, "serving": serving, "monitoring": monitoring}


def build_app(
    stages: Sequence[str], assets: AssetDirs, *, outdir: str | None = None, context: Mapping[str, Any] | None = None
) -> App:
    """An app with the stacks of ``stages``; the cdk-nag packs run at its synthesis (a finding fails it)."""
    app = App(outdir=outdir, context={**feature_flags(), **(context or {})})
    for stage in stages:
        add_stage(app, stage, assets)
    add_rule_packs(app)
    return app


def _build_layers() -> int:
    """``python -m layers.build`` (what ``make layer`` runs), its output on stderr; returns its exit status."""
    return subprocess.run([sys.executable, "-m", "layers.build"], cwd=REPO, stdout=sys.stderr, check=False).returncode


def ensure_assets(context_value: object | None, build: Callable[[], int] | None = None) -> AssetDirs:
    """The Lambda asset directories; layers/build is built first when it is missing (never a directory named
    by the context ``asset_dirs``).

    Raises:
        MissingAssetsError: a named directory lacks the layout, or the build failed.
    """
    try:
        return asset_dirs(context_value)
    except MissingAssetsError:
        if context_value:
            raise
    print(
        "Lambda assets not found in layers/build: building them now (python -m layers.build, as `make layer`;"
        " a few minutes the first time)",
        file=sys.stderr,
    )
    if (build or _build_layers)() != 0:
        raise MissingAssetsError("building the Lambda assets failed (see above); fix it, then run `make layer`")
    return asset_dirs(None)


def _context(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"context must be key=value, got {pair!r}")
        out[key] = value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", choices=STAGES, help="stage (else context 'stage'; required)")
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE", help="as cdk -c")
    parser.add_argument("--outdir", help="cloud assembly directory (default: the CDK CLI's, else ./cdk.out)")
    args = parser.parse_args(argv)
    context = {**App().node.get_all_context(), **_context(args.context)}  # App() reads what the CDK CLI passes
    stage = args.stage or context.get("stage")
    if stage not in STAGES:
        raise SystemExit(
            f"error: say which stage to synthesize: -c stage=dev or -c stage=prod (got {stage!r}); `make synth`,"
            " `make bootstrap` and `make deploy` pass STAGE (default dev). The app never picks one for you."
        )
    try:
        pin = champion_pin(context.get(CHAMPION_CONTEXT))
        assets = ensure_assets(context.get("asset_dirs"))
    except (MissingAssetsError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    if pin == NO_CHAMPION:
        print(
            f"note: no champion given (-c {CHAMPION_CONTEXT}=N): the predict version synthesized here serves no model"
            " and answers 503 until the first promotion; `make synth CHAMPION=N` pins it to the registry's champion",
            file=sys.stderr,
        )
    outdir = args.outdir or (None if os.environ.get("CDK_OUTDIR") else str(REPO / "cdk.out"))
    assembly = build_app([stage], assets, outdir=outdir, context={**context, "stage": stage}).synth()
    names = ", ".join(stack.stack_name for stack in assembly.stacks)
    print(f"synthesized {names} (stage {stage}) into {assembly.directory}", file=sys.stderr)


if __name__ == "__main__":
    main()
