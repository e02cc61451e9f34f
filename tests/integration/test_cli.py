"""The ``mlops`` command against a throw-away moto, and its view of a deployed stage's buckets."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.config import stage_config
from functions.local.cli import build_parser, deployed_config, main


@pytest.mark.usefixtures("isolated_process_state")
def test_invoke_runs_the_predict_handler_on_an_event_file(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["invoke", "predict", "predict_single"])

    out = capsys.readouterr().out
    response = json.loads(out[out.index("{") :])
    assert code == 0
    assert response["statusCode"] == 200
    assert response["body"]["model_version"] == 1 and len(response["body"]["predictions"]) == 1


@pytest.mark.usefixtures("isolated_process_state")
def test_train_registers_a_multiclass_model_and_models_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["train", "--data", "data/iris.csv", "--target", "species", "--task", "multiclass_classification",
         "--estimator", "random_forest", "--param", "n_estimators=20", "--model-name", "iris"]
    )  # fmt: skip

    out = capsys.readouterr().out
    card = json.loads(out[out.index("{") :])
    assert code == 0
    assert (card["name"], card["version"], card["task"]) == ("iris", 1, "multiclass_classification")
    assert card["classes"] == ["setosa", "versicolor", "virginica"]
    assert card["aliases"] == {"champion": 1}


@pytest.mark.usefixtures("isolated_process_state")
def test_status_shows_the_alias_and_an_idle_rollout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 0

    out = capsys.readouterr().out
    assert "mlops-local-predict:live -> Lambda version 1 100%" in out
    assert "rollout   idle" in out


def test_rollback_without_a_canary_is_refused_with_a_clear_message(
    isolated_process_state: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollback"]) == 1
    assert "no canary of breast-cancer is running" in capsys.readouterr().err


def test_every_command_has_help() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) >= {"serve", "train", "models", "invoke", "status", "promote", "rollback", "pause", "resume",
                             "demo", "openapi", "restore"}  # fmt: skip
    assert all(sub.format_help() for sub in commands.values())


def test_a_deployed_stage_is_found_by_its_storage_exports(aws: Any, boto_session: boto3.session.Session) -> None:
    config = stage_config("prod")
    cloudformation = boto_session.client("cloudformation")
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "Registry": {
                "Value": "mlops-prod-storage-registry-1a2b",
                "Export": {"Name": "mlops-prod-registry-bucket-name"},
            },
            "Data": {"Value": "mlops-prod-storage-data-3c4d", "Export": {"Name": "mlops-prod-data-bucket-name"}},
        },
    }
    cloudformation.create_stack(StackName="mlops-prod-storage", TemplateBody=json.dumps(template))

    class Clients:
        def client(self, service: str) -> Any:
            return boto_session.client(service)

    deployed = deployed_config(Clients(), config)

    assert (deployed.registry_bucket, deployed.data_bucket) == (
        "mlops-prod-storage-registry-1a2b",
        "mlops-prod-storage-data-3c4d",
    )


def test_a_stage_that_is_not_deployed_is_named_in_the_error(aws: Any, boto_session: boto3.session.Session) -> None:
    class Clients:
        def client(self, service: str) -> Any:
            return boto_session.client(service)

    with pytest.raises(SystemExit, match="is the prod stage deployed here"):
        deployed_config(Clients(), stage_config("prod"))


def _card(out: str) -> dict[str, Any]:
    return json.loads(out[out.index("{") :])


@pytest.mark.usefixtures("isolated_process_state")
def test_train_infers_regression_and_its_default_estimator_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--data", "data/diabetes.csv", "--target", "progression", "--categorical", "sex",
                 "--model-name", "diabetes"])  # fmt: skip

    captured = capsys.readouterr()
    assert code == 0, captured.err
    card = _card(captured.out)
    assert (card["task"], card["estimator"]) == ("regression", "ridge")
    assert "task: regression (inferred: target 'progression' holds 214 distinct numbers" in captured.err
    assert "estimator: ridge (the default for regression)" in captured.err


@pytest.mark.usefixtures("isolated_process_state")
def test_train_infers_multiclass_from_string_labels_and_takes_python_literal_params(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["train", "--data", "data/iris.csv", "--target", "species", "--estimator", "random_forest",
                 "--param", "max_depth=None", "--param", "n_estimators=15", "--param", "bootstrap=True",
                 "--model-name", "iris"])  # fmt: skip

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert _card(captured.out)["task"] == "multiclass_classification"
    assert "task: multiclass_classification (inferred: target 'species' holds 3 distinct labels" in captured.err


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["--target", "nowhere"], "target column 'nowhere' not in dataset columns"),
        (["--target", "species", "--estimator", "ridge"], "estimator 'ridge' cannot be used for multiclass"),
        (["--target", "species", "--estimator", "random_forest", "--param", "max_depth='deep'"], "max_depth"),
        (["--target", "species", "--estimator", "random_forest", "--param", "depth=3"], "depth"),
        (["--target", "species", "--task", "binary_classification"], "has 3 classes"),
        (["--target", "species", "--model-name", "Not_Valid"], "invalid model name 'Not_Valid'"),
    ],
)
def test_train_checks_everything_before_it_uploads_anything(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str], arguments: list[str], reason: str
) -> None:
    code = main(["train", "--data", "data/iris.csv", "--endpoint-url", moto_endpoint, *arguments])

    assert code == 1
    assert reason in capsys.readouterr().err
    config = stage_config("local")
    listed = boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket=config.data_bucket)
    assert listed.get("KeyCount", 0) == 0, "nothing is uploaded before the run is known to be valid"


@pytest.mark.usefixtures("isolated_process_state")
def test_train_takes_a_csv_with_blank_cells(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--data", "data/diabetes_missing.csv", "--target", "progression", "--categorical", "sex",
                 "--estimator", "hist_gradient_boosting", "--model-name", "diabetes"])  # fmt: skip

    captured = capsys.readouterr()
    assert code == 0, captured.err
    features = {f["name"]: f for f in _card(captured.out)["features"]}
    assert features["bmi"]["nullable"] and not features["age"]["nullable"]
    assert "missing" in features["sex"]["categories"]


@pytest.mark.parametrize("kind", ["logistic_regression", "random_forest", "hist_gradient_boosting"])
def test_a_csv_with_blank_cells_is_trained_served_in_every_form_and_labelled_through_the_cli(
    moto_endpoint: str, tmp_path: Any, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    from tests.events import with_body

    target = ["--endpoint-url", moto_endpoint]
    assert main(["train", "--data", "data/breast_cancer_missing.csv", "--target", "target", "--estimator", kind,
                 "--champion", *target]) == 0  # fmt: skip
    version = _card(capsys.readouterr().out)["version"]
    with open("data/breast_cancer_missing.csv") as fh:
        header, first = fh.readline().strip().split(","), fh.readline().strip().split(",")
    row = {k: (None if v in ("", "NaN") else float(v)) for k, v in zip(header, first, strict=True) if k != "target"}
    row["mean_radius"] = None  # a nullable feature, sent as null
    bodies = {
        "features": {"features": row},
        "rows": {"rows": [row, row]},
        "columns": {"columns": {k: [v] for k, v in row.items()}},
    }
    request_ids: list[str] = []
    for form, body in bodies.items():
        path = tmp_path / f"{form}.json"
        path.write_text(json.dumps(with_body("predict_batch", body)))
        assert main(["invoke", "predict", str(path), *target]) == 0, form
        out = capsys.readouterr().out
        answer = json.loads(out[out.index("{") :])
        assert answer["statusCode"] == 200, (form, answer)
        assert answer["body"]["model_version"] == version
        request_ids += answer["body"]["request_ids"]
    outcomes = tmp_path / "outcomes.json"
    distinct = sorted(set(request_ids))  # the sample event's request id is fixed: its rows repeat across forms
    event = with_body("log_outcome", {"outcomes": [{"request_id": rid, "actual": 1} for rid in distinct]})
    outcomes.write_text(json.dumps(event))
    assert main(["invoke", "log-outcome", str(outcomes), *target]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{") :])["body"]["accepted"] == len(distinct)


@pytest.mark.parametrize("kind", ["ridge", "linear_regression", "random_forest", "hist_gradient_boosting"])
def test_a_regression_csv_with_blank_cells_and_a_category_is_trained_served_and_labelled_through_the_cli(
    moto_endpoint: str, tmp_path: Any, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    from tests.events import with_body

    target = ["--endpoint-url", moto_endpoint]
    model = ["--model-name", "diabetes"]
    assert main(["train", "--data", "data/diabetes_missing.csv", "--target", "progression", "--categorical", "sex",
                 "--estimator", kind,
                 *model, *target]) == 0  # fmt: skip
    card = _card(capsys.readouterr().out)
    assert (card["task"], card["version"], card["aliases"]) == ("regression", 1, {"champion": 1})
    row = {"age": 59.0, "sex": None, "bmi": None, "bp": None, "s1": 157.0, "s2": 93.2, "s3": 38.0, "s4": 4.0,
           "s5": None, "s6": 87.0}  # fmt: skip
    bodies = {
        "features": {"features": row},
        "rows": {"rows": [row, {**row, "sex": "sex_1", "bmi": 22.0}]},
        "columns": {"columns": {k: [v] for k, v in row.items()}},
    }
    answers: dict[str, Any] = {}
    for form, body in bodies.items():
        path = tmp_path / f"{form}.json"
        path.write_text(json.dumps(with_body("predict_batch", body)))
        assert main(["invoke", "predict", str(path), *model, *target]) == 0, form
        out = capsys.readouterr().out
        answers[form] = json.loads(out[out.index("{") :])["body"]
        assert (answers[form]["model_name"], answers[form]["model_version"]) == ("diabetes", 1)
        assert all(isinstance(p, float) for p in answers[form]["predictions"])
    # The same row answers the same in every form; a null is not a refusal.
    assert answers["features"]["predictions"][0] == answers["rows"]["predictions"][0]
    assert answers["columns"]["predictions"] == answers["features"]["predictions"]
    outcomes = tmp_path / "outcomes.json"
    ids = answers["rows"]["request_ids"]
    outcomes.write_text(
        json.dumps(with_body("log_outcome", {"outcomes": [{"request_id": i, "actual": 150.5} for i in ids]}))
    )
    assert main(["invoke", "log-outcome", str(outcomes), *model, *target]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{") :])["body"]["accepted"] == len(ids)


def test_a_models_first_version_is_published_pinned_by_the_controller_and_champion_prints_it(
    moto_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.adapters.lambda_alias import LambdaAliasDeployer
    from functions.bootstrap import AwsClients

    target = ["--endpoint-url", moto_endpoint]
    cfg = stage_config("local")
    assert main(["champion", *target]) == 0
    assert capsys.readouterr().out == "none\n"  # what `make synth CHAMPION=...` pins to before any model

    assert main(["train", *target]) == 0
    err = capsys.readouterr().err
    assert "promote: first version of the model; the live alias now serves v1" in err

    assert main(["champion", *target]) == 0
    assert capsys.readouterr().out == "1\n"
    deployer = LambdaAliasDeployer(AwsClients().lambda_, cfg.predict_function_name, cfg.rollout.alias_name)
    routing = deployer.routing()
    assert routing.weights == {} and deployer.pinned_model_version(routing.stable_version) == 1
