"""The vocabulary is defined once (synapse_ml_track/vocabulary.py); everything else reads it."""

import ast
import importlib
import re
from pathlib import Path

import pytest
from pyspark.ml import Predictor

from synapse_ml_track import vocabulary
from synapse_ml_track.cli import build_parser
from synapse_ml_track.config import build_config
from synapse_ml_track.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONFIGURATION = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")


MODEL_TYPES = [(task, name) for task, types in vocabulary.MODEL_TYPES.items() for name in types]


@pytest.mark.parametrize(("task", "model_type"), MODEL_TYPES)
def test_every_model_type_names_an_estimator_and_is_accepted_everywhere(task, model_type):
    module, _, name = vocabulary.MODEL_TYPES[task][model_type].estimator.rpartition(".")
    estimator = getattr(importlib.import_module(module), name)
    assert issubclass(estimator, Predictor)  # building one needs a JVM: tests/test_train_e2e.py trains each
    assert module == f"pyspark.ml.{task}"
    config = build_config(overrides={"model": {"task": task, "type": model_type}}, environ={})
    assert (config.model.task, config.model.type) == (task, model_type)
    args = build_parser().parse_args(["train", "--task", task, "--model-type", model_type])
    assert (args.task, args.model_type) == (task, model_type)


@pytest.mark.parametrize("task", vocabulary.TASKS)
def test_each_task_has_its_defaults(task):
    config = build_config(overrides={"model": {"task": task}}, environ={})
    assert config.model.type == vocabulary.DEFAULT_MODEL_TYPE[task]
    assert config.gate.champion_metric == config.model.search.metric == vocabulary.DEFAULT_METRIC[task]


@pytest.mark.parametrize("task", vocabulary.TASKS)
def test_an_unknown_model_type_is_refused_with_the_task_s_own(task):
    with pytest.raises(ConfigError, match="must be one of " + ", ".join(vocabulary.MODEL_TYPES[task])):
        build_config(overrides={"model": {"task": task, "type": "svm"}}, environ={})


def test_a_model_type_of_the_other_task_is_refused():
    with pytest.raises(ConfigError, match="for model.task regression, got 'logistic_regression'"):
        build_config(overrides={"model": {"task": "regression", "type": "logistic_regression"}}, environ={})


def test_error_metrics_are_the_ones_where_lower_is_better():
    assert [vocabulary.higher_is_better(m) for m in ("rmse", "mae", "r2", "explained_variance", "f1")] == [
        False, False, True, True, True,
    ]  # fmt: skip


def test_the_configuration_page_lists_the_vocabulary():
    for task, types in vocabulary.MODEL_TYPES.items():
        assert f"{task}: " + " | ".join(types) in CONFIGURATION
        binary = [name for name, kind in types.items() if kind.binary_only]
        if binary:
            assert re.search(rf"{task}: .*{'|'.join(binary)}\b.*binary labels only", CONFIGURATION)
    assert " | ".join(vocabulary.INPUT_FORMATS) in CONFIGURATION


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


# A name in the job's own tag namespace, inside a string (or a piece of an f-string).
OWN_TAG = re.compile(r"(?<!\w)smt\.\w")


def string_literals(tree: ast.AST) -> list[ast.Constant]:
    """The tree's string constants, docstrings aside (they may mention a tag: they never write one)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_tag_names_are_written_only_in_the_vocabulary():
    sources = [*(REPO / "synapse_ml_track").rglob("*.py"), *(REPO / "jobs").rglob("*.py")]
    found = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}"
        for path in sources
        if path.name != "vocabulary.py"
        for node in string_literals(ast.parse(path.read_text(encoding="utf-8")))
        if OWN_TAG.search(node.value)
    ]
    assert found == [], "name run tags in synapse_ml_track/vocabulary.py and import them"


def test_the_tag_scan_sees_a_literal():
    tree = ast.parse('"""Docstring: tag smt.job=score."""\nTAG = "smt.job"\nquery = f"tags.smt.run_key = {key}"\n')
    assert [node.value for node in string_literals(tree) if OWN_TAG.search(node.value)] == [
        "smt.job",
        "tags.smt.run_key = ",
    ]


def test_tag_names_are_distinct():
    tags = {name: value for name, value in vars(vocabulary).items() if name.endswith("_TAG")}
    assert len(set(tags.values())) == len(tags) and all(value.startswith("smt.") for value in tags.values())
