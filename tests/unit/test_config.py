"""Configuration layers: flags > config file > environment > defaults."""

import pytest

from synapse_ml_track.cli import build_parser
from synapse_ml_track.cli.common import load_config
from synapse_ml_track.config import build_config, redacted
from synapse_ml_track.errors import ConfigError


def test_precedence_flags_over_file_over_environment_over_defaults(tmp_path):
    config_file = tmp_path / "job.yaml"
    config_file.write_text("data:\n  seed: 7\n  label: kind\ntracking:\n  uri: http://from-file:5000\n")
    environ = {"MLFLOW_TRACKING_URI": "http://from-env:5000", "MLFLOW_EXPERIMENT_NAME": "env-experiment"}
    config = build_config(config_path=str(config_file), overrides={"data": {"seed": 9}}, environ=environ)
    assert config.data.seed == 9  # flag
    assert config.data.label == "kind"  # file
    assert config.tracking.uri == "http://from-file:5000"  # file over environment
    assert config.tracking.experiment_name == "env-experiment"  # environment over default
    assert config.data.train_fraction == 0.8  # default


def test_experiment_id_from_environment_replaces_default_name_but_not_a_configured_one():
    assert build_config(environ={"MLFLOW_EXPERIMENT_ID": "12"}).tracking.experiment_name is None
    config = build_config(environ={"MLFLOW_EXPERIMENT_ID": "12"}, overrides={"tracking": {"experiment_name": "x"}})
    assert (config.tracking.experiment_name, config.tracking.experiment_id) == ("x", None)


def test_cli_flags_params_tags_and_set(tmp_path):
    args = build_parser().parse_args(
        [
            "train",
            "--input",
            "data.csv",
            "--param",
            "maxIter=50",
            "--param",
            "regParam=0.1",
            "--tag",
            "team=ml",
            "--numeric-features",
            "a,b",
            "--set",
            "gate.min_metrics.f1=0.9",
            "--no-register",
        ]
    )
    config = load_config(args)
    assert config.data.path == "data.csv"
    assert config.model.params == {"maxIter": 50, "regParam": 0.1}
    assert config.tracking.tags == {"team": "ml"}
    assert config.data.numeric_features == ["a", "b"]
    assert config.gate.min_metrics == {"f1": 0.9}
    assert config.tracking.register is False


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model": {"type": "svm"}}, "'model.type' must be one of logistic_regression, random_forest, gbt"),
        ({"data": {"nulls": "keep"}}, "'data.nulls' must be one of drop, reject"),
        ({"data": {"numeric_features": ["a"], "categorical_features": ["a"]}}, "listed twice: a"),
        ({"data": {"numeric_features": ["species"]}}, "label column 'species' is also listed"),
        ({"tracking": {"register": "maybe"}}, "'tracking.register' must be true or false"),
        ({"gate": {"min_metrics": {"f1": "high"}}}, "'gate.min_metrics.f1' must be a number"),
        ({"azure": {"auht": "env"}}, "unknown config key 'azure.auht' (did you mean 'azure.auth'?)"),
        ({"data": {"path": "x.csv", "table": "lake.t"}}, "set data.path or data.table"),
        ({"data": {"table": "lake.t", "version": 2, "timestamp": "2026-01-01"}}, "set data.version or data.timestamp"),
        ({"data": {"version": -1}}, "'data.version' must be a Delta table version (0 or more), got -1"),
    ],
)
def test_invalid_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        build_config(overrides=overrides, environ={})
    assert message in str(error.value)


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML/JSON"):
        build_config(config_path=str(bad), environ={})


def test_redacted_masks_secret_values_but_keeps_secret_names():
    tree = {"azure": {"client_secret_secret": "aml-sp-client-secret", "client_password": "hunter2hunter2"}}
    assert redacted(tree) == {"azure": {"client_secret_secret": "aml-sp-client-secret", "client_password": "***"}}
