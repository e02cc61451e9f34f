"""The app's inputs: stage settings checked against functions/config.py, and the Lambda assets."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.config import stage_config
from infra import app as infra_app
from infra import assets
from infra.assets import AssetDirs, MissingAssetsError
from infra.settings import INFRA_STAGES, FunctionSizing, infra_settings, rate_seconds

from .synthesis import make_asset_dirs


def test_missing_assets_say_to_run_make_layer(tmp_path: Path):
    with pytest.raises(MissingAssetsError, match="make layer"):
        AssetDirs.under(tmp_path).checked()


def test_without_layers_build_the_app_builds_the_assets_first_and_says_so(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(assets, "BUILD", tmp_path / "build")
    builds: list[Path] = []

    def build() -> int:  # what layers.build writes, quickly
        builds.append(make_asset_dirs(tmp_path / "build").function)
        return 0

    monkeypatch.setattr(infra_app, "_build_layers", build)
    made = infra_app.ensure_assets(None)

    assert builds == [made.function] and "building them now" in capsys.readouterr().err
    assert infra_app.ensure_assets(None) == made and len(builds) == 1  # built once, then found


def test_a_failed_asset_build_stops_the_app_with_what_to_do(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(assets, "BUILD", tmp_path / "nothing")
    monkeypatch.setattr(infra_app, "_build_layers", lambda: 1)
    with pytest.raises(SystemExit, match="building the Lambda assets failed .* run `make layer`"):
        infra_app.main(["--stage", "prod", "--outdir", str(tmp_path / "out")])


def test_a_named_asset_directory_is_never_built_into(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(infra_app, "_build_layers", lambda: pytest.fail("built"))
    with pytest.raises(MissingAssetsError, match="make layer"):
        infra_app.ensure_assets(str(tmp_path))


@pytest.mark.parametrize("stage", [None, "local", "staging"])
def test_the_app_never_picks_a_stage_for_the_operator(stage, tmp_path: Path):
    argv = ["-c", f"asset_dirs={tmp_path}", "--outdir", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="say which stage to synthesize: -c stage=dev or -c stage=prod"):
        infra_app.main(argv + ([] if stage is None else ["-c", f"stage={stage}"]))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("given", "pin"), [(None, "none"), ("none", "none"), ("3", "3"), (7, "7"), (" 12 ", "12")])
def test_the_champion_context_pins_the_predict_version(given, pin):
    assert infra_app.champion_pin(given) == pin


@pytest.mark.parametrize("given", ["0", "-1", "v3", "latest", "", "1.5"])
def test_a_champion_context_that_is_no_version_stops_the_app_naming_it(given, tmp_path: Path):
    with pytest.raises(ValueError, match="'champion' must be the registry's champion version"):
        infra_app.champion_pin(given)
    made = make_asset_dirs(tmp_path)
    argv = ["--stage", "dev", "-c", f"asset_dirs={tmp_path}", "-c", f"champion={given}", "--outdir", str(tmp_path)]
    with pytest.raises(SystemExit, match="'champion' must be"):
        infra_app.main(argv)
    assert made.function.is_dir() and not (tmp_path / "manifest.json").exists()


def test_a_champion_given_at_synthesis_is_the_predict_versions_model_version(asset_dirs: AssetDirs):
    from aws_cdk import App
    from aws_cdk.assertions import Match, Template

    stacks = infra_app.add_stage(App(context={**infra_app.feature_flags(), "champion": "3"}), "dev", asset_dirs)
    template = Template.from_stack(stacks["serving"])

    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "functions.handlers.predict.lambda_handler",
            "Environment": {"Variables": Match.object_like({"MODEL_VERSION": "3"})},
        },
    )


def test_asset_dirs_context_points_elsewhere(tmp_path: Path):
    made = make_asset_dirs(tmp_path)
    assert assets.asset_dirs(str(tmp_path)) == made


def test_unknown_stage_names_the_deployable_ones():
    with pytest.raises(KeyError, match="dev, prod"):
        infra_settings("local")


def test_retrain_timeout_cannot_exceed_its_lock():
    config = stage_config("prod")
    functions = {**INFRA_STAGES["prod"].functions, "retrain": FunctionSizing(memory_mb=3008, timeout_seconds=900)}
    too_long = INFRA_STAGES["prod"].model_copy(update={"functions": functions})
    short_lock = config.model_copy(update={"retrain": config.retrain.model_copy(update={"lock_ttl_seconds": 600})})
    with pytest.raises(ValueError, match="lock TTL"):
        too_long.check_against(short_lock)


def test_capture_cannot_expire_before_retrain_reads_it():
    config = stage_config("prod")
    storage = INFRA_STAGES["prod"].storage.model_copy(update={"capture_expiration_days": 20})
    with pytest.raises(ValueError, match="capture expires"):
        INFRA_STAGES["prod"].model_copy(update={"storage": storage}).check_against(config)


def test_rate_expressions():
    assert rate_seconds("rate(2 minutes)") == 120
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("rate(7 days)") == 7 * 86400
    with pytest.raises(ValueError):
        rate_seconds("cron(0 * * * ? *)")
