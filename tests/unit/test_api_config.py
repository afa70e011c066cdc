"""The Python API's configuration: the same layers as the command line, and a light package import."""

import json
import subprocess
import sys

import pytest

from synapse_ml_track import api
from synapse_ml_track.config import build_config
from synapse_ml_track.errors import ConfigError

from support import REPO

HEAVY = ("pyspark", "mlflow", "pandas", "matplotlib", "azure")


@pytest.fixture(autouse=True)
def no_job_environment(monkeypatch):
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(variable, raising=False)


def test_importing_the_package_and_its_api_loads_neither_spark_nor_mlflow():
    probe = (
        "import json, sys, synapse_ml_track as smt; assert callable(smt.train) and callable(smt.score); "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_a_file_a_dict_and_a_job_config_give_the_same_configuration(tmp_path):
    config_file = tmp_path / "job.yaml"
    config_file.write_text("data:\n  label: kind\nmodel:\n  params:\n    maxIter: 5\n")
    tree = {"data": {"label": "kind"}, "model": {"params": {"maxIter": 5}}}
    overrides = {"model.params.regParam": 0.1, "tracking.experiment_id": "7"}

    from_file = api.job_config(config_file, overrides)
    from_dict = api.job_config(tree, overrides)
    from_object = api.job_config(build_config(overrides=tree, environ={}), overrides)
    assert from_file == from_dict == from_object
    assert from_file.model.params == {"maxIter": 5, "regParam": 0.1}
    assert (from_file.tracking.experiment_id, from_file.tracking.experiment_name) == ("7", None)
    assert tree == {"data": {"label": "kind"}, "model": {"params": {"maxIter": 5}}}  # the caller's dict untouched


def test_the_environment_is_a_layer_under_a_dict_but_not_under_a_job_config(monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-environment")
    assert api.job_config({}).tracking.experiment_name == "from-environment"
    built = build_config(overrides={"tracking": {"experiment_name": "chosen"}}, environ={})
    assert api.job_config(built).tracking.experiment_name == "chosen"


def test_a_bad_key_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="unknown config key .model.typo."):
        api.job_config(None, {"model.typo": 1})


def test_the_package_lists_its_api_and_nothing_else():
    """`dir(smt)` in a notebook: the API, not the names the package's lazy loading imports."""
    import synapse_ml_track as smt

    assert dir(smt) == sorted(smt.__all__)
    assert all(getattr(smt, name) is not None for name in smt.__all__)
