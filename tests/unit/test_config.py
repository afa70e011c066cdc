"""Configuration layers: flags > config file > environment > defaults."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from synapse_ml_track.cli import build_parser
from synapse_ml_track.cli.common import load_config
from synapse_ml_track.config import build_config, redacted
from synapse_ml_track.config_schema import check, dataclass_schema
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
            "a, b",
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
        ({"data": {"lable": "species"}}, "unknown config key 'data.lable' (did you mean 'data.label'?)"),
        ({"zzz": 1}, "unknown config key 'zzz' (known keys: azure, data, drift, force, gate"),
        ({"data": 5}, "config section data must be a mapping, got 5"),
        ({"data": {"seed": 4.5}}, "config key 'data.seed' must be an integer, got 4.5"),
        ({"data": {"exclude": ["a", ["b"]]}}, "config key 'data.exclude[1]' must be a string, got ['b']"),
        ({"data": {"label": None}}, "config key 'data.label' must be a string, got None"),
        ({"data": {"csv_options": "sep=;"}}, "config key 'data.csv_options' must be a mapping of names to values"),
        ({"model": {"search": {"method": "bayes"}}}, "'model.search.method' must be one of grid, random, got 'bayes'"),
        ({"data": {"format": "orc"}}, "config key 'data.format' must be one of csv, parquet, delta, got 'orc'"),
        ({"data": {"path": "x.csv", "table": "lake.t"}}, "set data.path or data.table"),
        ({"data": {"table": "lake.t", "version": 2, "timestamp": "2026-01-01"}}, "set data.version or data.timestamp"),
        ({"data": {"version": -1}}, "config key 'data.version' must be at least 0, got -1"),
        ({"model": {"search": {"folds": 1}}}, "config key 'model.search.folds' must be at least 2, got 1"),
        ({"data": {"train_fraction": 1}}, "'data.train_fraction' must be between 0 and 1 (exclusive), got 1.0"),
        ({"tracking": {"request_timeout": 0}}, "config key 'tracking.request_timeout' must be above 0, got 0.0"),
    ],
)
def test_invalid_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        build_config(overrides=overrides, environ={})
    assert message in str(error.value)


def test_strings_from_flags_and_the_environment_are_read_as_the_key_s_type():
    """What the command line (--set, --numeric-features) and the environment give are strings or YAML
    scalars; they are read as the type of their key, as they always were."""
    overrides = {
        "data": {"seed": "7", "train_fraction": "0.5", "exclude": "id,ts", "schema_sample_rows": 200.0},
        "tracking": {"register": "no", "experiment_id": 12, "request_timeout": 5, "tags": {"team": 1}},
        "gate": {"min_metrics": {"f1": "0.9"}},
    }
    config = build_config(overrides=overrides, environ={})
    assert (config.data.seed, config.data.train_fraction, config.data.exclude) == (7, 0.5, ["id", "ts"])
    assert type(config.data.schema_sample_rows) is int and config.data.schema_sample_rows == 200
    assert (config.tracking.register, config.tracking.experiment_id) == (False, "12")
    assert type(config.tracking.request_timeout) is float and config.tracking.request_timeout == 5.0
    assert config.tracking.tags == {"team": "1"}
    assert config.gate.min_metrics == {"f1": 0.9}


def test_set_reads_values_as_yaml():
    args = build_parser().parse_args(
        ["train", "--set", "model.params.maxIter=50", "--set", "data.exclude=[a, b]", "--set", "force=true"]
    )
    config = load_config(args)
    assert (config.model.params, config.data.exclude, config.force) == ({"maxIter": 50}, ["a", "b"], True)


def test_an_empty_section_in_a_file_means_its_defaults(tmp_path):
    config_file = tmp_path / "job.yaml"
    config_file.write_text("gate:\nmodel:\n  search:\n")
    config = build_config(config_path=str(config_file), overrides={"gate": {"champion_alias": "best"}}, environ={})
    assert config.gate.champion_alias == "best" and config.model.search.folds == 3


@dataclass
class Sized:
    size: int | str = 0


def test_a_union_of_two_types_takes_either_and_names_both_when_neither():
    """The old hand-written coercer crashed here (ValueError: too many values to unpack)."""
    schema = dataclass_schema(Sized)
    assert check({"size": "big"}, schema) == {"size": "big"}
    assert check({"size": 3}, schema) == {"size": 3}
    with pytest.raises(ConfigError, match=r"^config key 'size' must be an integer or a string, got \[1\]$"):
        check({"size": [1]}, schema)


@dataclass
class Located:
    where: Path = Path(".")


def test_a_field_type_with_no_json_schema_is_refused_when_the_schema_is_made():
    """The old coercer let any value through to a field of a type it did not know."""
    with pytest.raises(TypeError, match=r"config key 'where' has type .*Path.*: no JSON Schema for it"):
        dataclass_schema(Located)


def test_invalid_yaml_is_reported_with_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML/JSON"):
        build_config(config_path=str(bad), environ={})


def test_redacted_masks_secret_values_but_keeps_secret_names():
    tree = {"azure": {"client_secret_secret": "aml-sp-client-secret", "client_password": "hunter2hunter2"}}
    assert redacted(tree) == {"azure": {"client_secret_secret": "aml-sp-client-secret", "client_password": "***"}}


@pytest.mark.parametrize("retries", [-1, 11])
def test_retries_beyond_what_mlflow_accepts_are_refused_before_any_request(retries):
    """MLflow refuses more than 10 retries in the calls it retries itself (its /version probe), so
    11 was accepted here and failed the job later with MLflow's own error."""
    with pytest.raises(ConfigError, match=rf"'tracking.max_retries' must be between 0 and 10, got {retries}$"):
        build_config(overrides={"tracking": {"max_retries": retries}}, environ={})
    assert build_config(overrides={"tracking": {"max_retries": 10}}, environ={}).tracking.max_retries == 10
