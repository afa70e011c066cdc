"""The Synapse artifacts in jobs/synapse/: Spark job definitions and the training pipeline match the
documented JSON shapes, agree with the infrastructure, and their arguments parse with the jobs'
real argument parser."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from synapse_ml_track.deploy import plan as deploy

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / deploy.TEMPLATE_DIR
SAMPLE_VALUES = {
    "base_uri": "abfss://synapse@stdlmltrackdevabc123.dfs.core.windows.net/synapse-ml-track",
    "spark_pool": "mltrack",
    "wheel": "synapse_ml_track-0.1.0-py3-none-any.whl",
    "config": "synapse.yaml",
    "model_uri": "models:/penguins-classifier/latest",
}
CONFIG_URI = f"{SAMPLE_VALUES['base_uri']}/config/{SAMPLE_VALUES['config']}"
RUN_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
JOB_COMMANDS = {"train.sjd.json": "train", "score.sjd.json": "score"}
JOB_PROPERTY_TYPES = {
    "name": str, "file": str, "args": list, "conf": dict, "pyFiles": list,
    "numExecutors": int, "executorCores": int, "executorMemory": str, "driverCores": int, "driverMemory": str,
}  # fmt: skip
PARAMETER_EXPRESSION = re.compile(r"^@pipeline\(\)\.parameters\.(\w+)$")


def template(name: str) -> dict[str, Any]:
    return json.loads((TEMPLATES / name).read_text(encoding="utf-8"))


def rendered(name: str) -> dict[str, Any]:
    return deploy.render(template(name), SAMPLE_VALUES)


def bicep_default(parameter: str) -> str:
    match = re.search(
        rf"^param {parameter} \w+ = '([^']*)'$", (REPO / "infra" / "main.bicep").read_text(encoding="utf-8"), re.M
    )
    assert match, f"main.bicep has no string default for {parameter}"
    return match[1]


def resolve(args: list[str], pipeline: dict[str, Any]) -> list[str]:
    """Evaluate the pipeline expressions the way Synapse would for one run."""
    defaults = {name: spec["defaultValue"] for name, spec in pipeline["properties"]["parameters"].items()}
    resolved = []
    for arg in args:
        match = PARAMETER_EXPRESSION.match(arg)
        resolved.append(RUN_ID if arg == "@pipeline().RunId" else defaults[match[1]] if match else arg)
    return resolved


@pytest.fixture(scope="module")
def job_parser() -> argparse.ArgumentParser:
    from synapse_ml_track.cli import build_parser

    return build_parser()


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    return rendered(deploy.PIPELINE_TEMPLATES[0])


def test_every_template_is_deployed():
    deployed = {*deploy.JOB_DEFINITION_TEMPLATES, *deploy.PIPELINE_TEMPLATES}
    assert {path.name for path in TEMPLATES.glob("*.json")} == deployed
    assert set(JOB_COMMANDS) == set(deploy.JOB_DEFINITION_TEMPLATES)


@pytest.mark.parametrize("name", deploy.JOB_DEFINITION_TEMPLATES)
def test_job_definition_has_the_documented_shape(name):
    document = template(name)
    properties = document["properties"]
    assert properties["targetBigDataPool"] == {"referenceName": "${spark_pool}", "type": "BigDataPoolReference"}
    assert properties["requiredSparkVersion"] == "3.5"
    assert properties["language"] == "python"
    job = properties["jobProperties"]
    for key, kind in JOB_PROPERTY_TYPES.items():
        assert isinstance(job.get(key), kind) and not isinstance(job.get(key), bool), (
            f"jobProperties.{key} must be {kind.__name__}"
        )
    assert job["name"] == document["name"]
    assert all(isinstance(arg, str) for arg in job["args"])
    assert all(isinstance(value, str) for value in job["conf"].values()), "Spark conf values are strings"
    script = f"jobs/{JOB_COMMANDS[name]}.py"
    assert job["file"] == f"${{base_uri}}/{script}"
    assert script in deploy.JOB_SCRIPTS, f"deploy does not upload {script}"
    assert job["pyFiles"] == ["${base_uri}/dist/${wheel}"]


@pytest.mark.parametrize("name", deploy.JOB_DEFINITION_TEMPLATES)
def test_job_definition_sizing_is_consistent_and_fits_the_dev_pool(name):
    job = template(name)["properties"]["jobProperties"]
    sizes = set(deploy.EXECUTOR_SIZES.values())
    assert (job["executorCores"], job["executorMemory"]) in sizes
    assert (job["driverCores"], job["driverMemory"]) in sizes
    conf = job["conf"]
    assert (
        conf["spark.dynamicAllocation.minExecutors"]
        == conf["spark.dynamicAllocation.maxExecutors"]
        == str(job["numExecutors"])
    )
    parameters = json.loads((REPO / "infra" / "main.parameters.dev.json").read_text(encoding="utf-8"))["parameters"]
    node_cores = deploy.EXECUTOR_SIZES[parameters["sparkNodeSize"]["value"]][0]
    needed = job["driverCores"] + job["numExecutors"] * job["executorCores"]
    assert needed <= parameters["sparkMaxNodes"]["value"] * node_cores, "the job needs more cores than the dev pool has"


@pytest.mark.parametrize("name", deploy.JOB_DEFINITION_TEMPLATES)
def test_job_definition_args_parse_with_the_job_parser(job_parser, name):
    document = rendered(name)
    args = job_parser.parse_args([JOB_COMMANDS[name], *document["properties"]["jobProperties"]["args"]])
    assert args.config == CONFIG_URI
    assert args.input == f"{SAMPLE_VALUES['base_uri']}/data/penguins.csv"
    if JOB_COMMANDS[name] == "score":
        assert args.model_uri == SAMPLE_VALUES["model_uri"]
        assert args.output_path == f"{SAMPLE_VALUES['base_uri']}/output/scores"


def test_rendering_fills_every_placeholder():
    for name in (*deploy.JOB_DEFINITION_TEMPLATES, *deploy.PIPELINE_TEMPLATES):
        assert "${" not in json.dumps(rendered(name)), f"{name} keeps a placeholder after rendering"


def test_pipeline_runs_the_training_job_definition(pipeline):
    (activity,) = pipeline["properties"]["activities"]
    assert activity["type"] == "SparkJob"
    assert activity["typeProperties"]["sparkJob"] == {
        "referenceName": template("train.sjd.json")["name"],
        "type": "SparkJobDefinitionReference",
    }
    assert isinstance(activity["policy"]["retry"], int)
    for name, spec in pipeline["properties"]["parameters"].items():
        assert spec["type"] == "string" and spec["defaultValue"], f"pipeline parameter {name} needs a string default"


def test_pipeline_passes_run_id_and_config_path(pipeline):
    args = pipeline["properties"]["activities"][0]["typeProperties"]["args"]
    assert args[args.index("--run-key") + 1] == "@pipeline().RunId"
    config_expression = PARAMETER_EXPRESSION.match(args[args.index("--config") + 1])
    assert config_expression, "--config must come from a pipeline parameter"
    assert pipeline["properties"]["parameters"][config_expression[1]]["defaultValue"] == CONFIG_URI
    for arg in args:
        if arg.startswith("@"):
            match = PARAMETER_EXPRESSION.match(arg)
            assert arg == "@pipeline().RunId" or (match and match[1] in pipeline["properties"]["parameters"]), (
                f"unknown expression {arg}"
            )


def test_pipeline_args_parse_with_the_job_parser(job_parser, pipeline):
    args = pipeline["properties"]["activities"][0]["typeProperties"]["args"]
    parsed = job_parser.parse_args(["train", *resolve(args, pipeline)])
    assert parsed.run_key == RUN_ID
    assert parsed.config == CONFIG_URI


def test_pipeline_args_keep_every_option_of_the_job_definition(pipeline):
    # Args given by the pipeline replace the job definition's args: none may get lost.
    definition_args = template("train.sjd.json")["properties"]["jobProperties"]["args"]
    pipeline_args = pipeline["properties"]["activities"][0]["typeProperties"]["args"]
    options = {arg for arg in definition_args if arg.startswith("--")}
    assert options <= set(pipeline_args), f"the pipeline drops {options - set(pipeline_args)}"


def test_deploy_defaults_match_the_infrastructure():
    from synapse_ml_track.cli import build_parser

    defaults = build_parser().parse_args(["deploy", "--workspace", "w", "--storage-account", "s", "--config", "c"])
    assert defaults.spark_pool == bicep_default("sparkPoolName")
    assert defaults.filesystem == bicep_default("synapseFilesystemName")
