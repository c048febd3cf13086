"""Model spec validation: the fraud spec loads, and each kind of mistake gets a precise message."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlp_orchestration.cli import main
from mlp_orchestration.errors import ConfigurationError, SpecError
from mlp_orchestration.spec import (
    load_spec_file,
    load_specs,
    parse_as_of,
    parse_duration,
    parse_spec,
)
from tests.conftest import FRAUD_SPEC


@pytest.fixture
def raw_spec() -> dict[str, Any]:
    return yaml.safe_load(FRAUD_SPEC.read_text())


def test_fraud_spec_loads(fraud_spec):
    assert fraud_spec.name == "fraud"
    assert len(fraud_spec.feature_names) == 29
    assert fraud_spec.feature_names[-1] == "Amount"
    assert fraud_spec.rollout.stages[-1] == 1.0


def test_fraud_spec_windows_end_at_as_of(fraud_spec):
    bounds = fraud_spec.windows.bounds()
    assert bounds["holdout"][1] == fraud_spec.windows.as_of
    assert bounds["training"][1] == bounds["validation"][0]
    assert bounds["validation"][1] == bounds["holdout"][0]


def _set(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("label", _DELETE, r"label: required field is missing"),
        ("name", "Fraud Model", r"name: value 'Fraud Model' is invalid: .*lowercase"),
        ("alert_rate", 1.5, r"alert_rate: value 1.5 is invalid"),
        ("alert_rate", 0, r"alert_rate: value 0 is invalid: must be strictly between 0 and 1"),
        (
            "windows.training",
            "two days",
            r"windows.training: value 'two days' is invalid: "
            r"expected a duration such as '30s'",
        ),
        ("windows.holdout", "0h", r"windows.holdout: value .* must be a positive duration"),
        (
            "gates.performance.min_pr_auc",
            1.2,
            r"gates.performance.min_pr_auc: value 1.2 is "
            r"invalid: Input should be less than or equal to 1",
        ),
        ("rollout.stages", [0.25, 0.05, 1.0], r"rollout.stages: .*stage shares must increase"),
        ("rollout.stages", [0.05, 0.5], r"the last stage must be 1.0"),
        (
            "dataset",
            "kaggle",
            r"dataset: value 'kaggle' is invalid: Input should be "
            r"'ulb-creditcard-fraud'",
        ),
        ("trainig", {}, r"trainig: unknown field; remove it or check its spelling"),
        ("monitoring.drift.method", "chi2", r"monitoring.drift.method: value 'chi2' is invalid"),
        ("monitoring.retrain.schedule", "every day", r"'every day' is not a cron expression"),
        ("training.trainer", "nosuch.mod:fn", r"training.trainer: .*cannot be imported"),
        ("training.trainer", "os:system", r"os:system does not take \(training frame, validation"),
        (
            "training.params.objective",
            "regression",
            r"objective 'regression' does not produce "
            r"probabilities",
        ),
        ("gates.consistency.max_abs_diff", True, r"expected a number or text, got the boolean"),
    ],
)
def test_bad_field_is_named_with_value(raw_spec, field, value, expected):
    with pytest.raises(SpecError, match=expected):
        parse_spec(_set(raw_spec, field, value), source="fraud.yaml")


@pytest.mark.parametrize("bound", ["min", "max"])
def test_nan_feature_bound_rejected(raw_spec, bound):
    raw = copy.deepcopy(raw_spec)
    raw["features"][0][bound] = float("nan")
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    message = str(caught.value)
    assert f"{bound} is nan; give a number, or leave {bound} out" in message
    assert "features.0" in message


@pytest.mark.parametrize(
    ("column", "role"),
    [("Class", "label"), ("transaction_id", "entity key"), ("event_time", "event time")],
)
def test_role_column_among_features_rejected(raw_spec, column, role):
    raw = copy.deepcopy(raw_spec)
    raw["features"].append({"name": column})
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    message = str(caught.value)
    assert f"features lists {column!r}, which is the {role}" in message
    assert f"remove {column!r} from features" in message
    assert "not columns of dataset" not in message


def test_feature_missing_from_dataset_rejected(raw_spec):
    raw = copy.deepcopy(raw_spec)
    raw["features"].append({"name": "V99"})
    with pytest.raises(
        SpecError,
        match=r"features \['V99'\] are not columns of dataset "
        r"ulb-creditcard-fraud; its features are V1, V2",
    ):
        parse_spec(raw)


def test_label_other_than_dataset_rejected(raw_spec):
    raw = copy.deepcopy(raw_spec)
    raw["label"] = "IsFraud"
    with pytest.raises(
        SpecError,
        match=r"label is 'IsFraud', but dataset ulb-creditcard-fraud "
        r"provides 'Class'; set label: Class",
    ):
        parse_spec(raw)


def test_cross_field_error_omits_whole_document(raw_spec):
    raw = copy.deepcopy(raw_spec)
    raw["features"].append({"name": "V3"})
    with pytest.raises(SpecError) as error:
        parse_spec(raw)
    assert "V28" not in str(error.value)
    assert len(str(error.value)) < 300


def test_duplicate_feature_rejected(raw_spec):
    raw = copy.deepcopy(raw_spec)
    raw["features"].append({"name": "V3"})
    with pytest.raises(SpecError, match=r"features are listed more than once: \['V3'\]"):
        parse_spec(raw)


def test_segment_on_unknown_column_rejected(raw_spec):
    raw = copy.deepcopy(raw_spec)
    raw["segments"][0]["column"] = "merchant"
    with pytest.raises(SpecError, match=r"segment 'amount_band' uses column 'merchant'"):
        parse_spec(raw)


def test_segment_labels_must_match_edges(raw_spec):
    raw = copy.deepcopy(raw_spec)
    raw["segments"][0]["labels"] = ["small", "large"]
    with pytest.raises(SpecError, match=r"4 edges make 3 groups, but 2 labels were given"):
        parse_spec(raw)


def test_non_mapping_spec_rejected():
    with pytest.raises(SpecError, match=r"expected a mapping at the top level, got list"):
        parse_spec(["fraud"], source="x.yaml")


def test_file_name_must_match_model_name(tmp_path: Path, raw_spec):
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(raw_spec))
    with pytest.raises(SpecError, match=r"declares name 'fraud'; rename the file to fraud.yaml"):
        load_spec_file(path)


def test_invalid_yaml_rejected(tmp_path: Path):
    path = tmp_path / "fraud.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"is not valid YAML"):
        load_spec_file(path)


def test_empty_spec_folder_rejected(tmp_path: Path):
    with pytest.raises(SpecError, match=r"holds no \*.yaml model specs"):
        load_specs(tmp_path)


def test_spec_folder_that_is_a_file_rejected(tmp_path: Path):
    path = tmp_path / "specs"
    path.write_text("")
    with pytest.raises(SpecError, match=r"is a file; set it to the folder of spec files"):
        load_specs(path)


def test_missing_spec_folder_rejected(tmp_path: Path):
    with pytest.raises(SpecError, match=r"does not exist; set MLP_SPECS_DIR"):
        load_specs(tmp_path / "absent")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("16h", 57600), ("1d", 86400), (90, 90), ("1.5h", 5400)],
)
def test_duration_parsing(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


def test_as_of_rejects_non_iso():
    with pytest.raises(ConfigurationError, match=r"--as-of 'yesterday' is not an ISO 8601 time"):
        parse_as_of("yesterday", source="--as-of")


def test_as_of_without_offset_is_utc():
    assert parse_as_of("2013-09-02T06:00:00").utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "learning_rat",
            5,
            r"training.params.learning_rat: unknown LightGBM parameter \(LightGBM would ignore "
            r"it\). Did you mean 'learning_rate'\? Fix the name",
        ),
        (
            "num_leaves",
            -3,
            r"training.params.num_leaves: value -3 is invalid: LightGBM requires num_leaves > 1. "
            r"Fix the value",
        ),
        (
            "learning_rate",
            "fast",
            r"training.params.learning_rate: value 'fast' is invalid: .* Fix the value",
        ),
        ("bagging_fraction", 2, r"training.params.bagging_fraction: value 2 is invalid"),
        (
            "random_state",
            7,
            r"training.params.random_state: sets LightGBM's seed, .* training.seed",
        ),
        (
            "n_estimators",
            10,
            r"training.params.n_estimators: sets LightGBM's num_iterations, which the platform "
            r"takes from training.num_boost_round",
        ),
    ],
)
def test_bad_lightgbm_param_rejected(raw_spec, name, value, expected):
    raw = copy.deepcopy(raw_spec)
    raw["training"]["params"][name] = value
    with pytest.raises(SpecError, match=expected):
        parse_spec(raw, source="fraud.yaml")


def test_every_bad_lightgbm_param_listed(raw_spec):
    raw = copy.deepcopy(raw_spec)
    raw["training"]["params"].update({"learning_rat": 5, "num_leaves": -3})
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, source="fraud.yaml")
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid model spec fraud.yaml:"
    assert lines[1].startswith("  - training.params.learning_rat: unknown LightGBM parameter")
    assert lines[2].startswith("  - training.params.num_leaves: value -3 is invalid")
    assert len(lines) == 3


def test_lightgbm_alias_accepted(raw_spec):
    raw = copy.deepcopy(raw_spec)
    raw["training"]["params"]["num_leaf"] = 7
    assert parse_spec(raw).training.params["num_leaf"] == 7


def test_custom_trainer_params_not_checked(raw_spec):
    raw = copy.deepcopy(raw_spec)
    raw["training"]["trainer"] = "tests.lifecycle.test_spec:_custom_trainer"
    raw["training"]["params"]["depth_of_forest"] = 3
    assert parse_spec(raw).training.params["depth_of_forest"] == 3


def _custom_trainer(train: Any, validation: Any, spec: Any) -> None:
    """A trainer outside the platform, whose parameters LightGBM does not judge."""


def test_validate_command_rejects_misspelled_param(tmp_path, raw_spec, capsys):
    raw = copy.deepcopy(raw_spec)
    raw["training"]["params"]["learning_rat"] = 5
    path = tmp_path / "fraud.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["specs", "validate", str(path)]) == 2
    error = capsys.readouterr().err
    assert f"invalid model spec {path}:" in error
    assert "training.params.learning_rat: unknown LightGBM parameter" in error
    assert "Did you mean 'learning_rate'?" in error


def test_validate_command_accepts_fraud_spec(capsys):
    assert main(["specs", "validate", str(FRAUD_SPEC)]) == 0
    assert "valid spec for model 'fraud'" in capsys.readouterr().out
