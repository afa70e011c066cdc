"""The vocabulary is defined once (synapse_ml_track/vocabulary.py); everything else reads it."""

import importlib
import re
from pathlib import Path

import pytest
from pyspark.ml import Predictor

from synapse_ml_track import vocabulary
from synapse_ml_track.cli import build_parser
from synapse_ml_track.config import build_config
from synapse_ml_track.errors import ConfigError

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("model_type", vocabulary.MODEL_TYPES)
def test_every_model_type_names_an_estimator_and_is_accepted_everywhere(model_type):
    module, _, name = vocabulary.MODEL_TYPES[model_type].estimator.rpartition(".")
    estimator = getattr(importlib.import_module(module), name)
    assert issubclass(estimator, Predictor)  # building one needs a JVM: tests/test_train_e2e.py trains each
    assert build_config(overrides={"model": {"type": model_type}}, environ={}).model.type == model_type
    assert build_parser().parse_args(["train", "--model-type", model_type]).model_type == model_type


def test_an_unknown_model_type_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match="must be one of " + ", ".join(vocabulary.MODEL_TYPES)):
        build_config(overrides={"model": {"type": "svm"}}, environ={})


def test_the_readme_lists_the_vocabulary():
    assert "|".join(vocabulary.MODEL_TYPES) in README
    assert " | ".join(vocabulary.INPUT_FORMATS) in README
    binary = [name for name, kind in vocabulary.MODEL_TYPES.items() if kind.binary_only]
    assert re.search(rf"{'|'.join(binary)}\b.*binary labels only", README)


@pytest.mark.parametrize(
    ("uri", "backend"),
    [
        ("sqlite:////tmp/mlruns/mlflow.db", vocabulary.EMBEDDED),
        ("file:///tmp/mlruns", vocabulary.EMBEDDED),
        ("/tmp/mlruns", vocabulary.EMBEDDED),
        ("http://127.0.0.1:5000", vocabulary.MLFLOW_SERVER),
        ("https://mlflow.example.org", vocabulary.MLFLOW_SERVER),
        ("azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/s", vocabulary.AZURE_ML),
    ],
)
def test_tracking_backend_of_a_uri(uri, backend):
    assert vocabulary.tracking_backend(uri) == backend
    assert vocabulary.is_aml_uri(uri) is (backend == vocabulary.AZURE_ML)


@pytest.mark.parametrize(
    ("suffix", "name"), [(".csv", "csv"), (".TXT", "csv"), (".parquet", "parquet"), (".json", None)]
)
def test_formats_named_by_suffix(suffix, name):
    assert vocabulary.format_of_suffix(suffix) == name
