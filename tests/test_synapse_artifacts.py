"""The Synapse artifacts in jobs/synapse/: Spark job definitions, the training and scoring pipelines and
the scoring pipeline's schedule trigger match the documented JSON shapes, agree with the infrastructure,
and their arguments, once the pipeline expressions are evaluated as Synapse would for one run, parse
with the jobs' real argument parser."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from synapse_ml_track.deploy import plan

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / plan.TEMPLATE_DIR
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
# Each pipeline and the job definition its activity runs.
PIPELINE_JOBS = {
    "train.pipeline.json": "train.sjd.json",
    "score.pipeline.json": "score.sjd.json",
    "incremental-score.pipeline.json": "score.sjd.json",
}
# Options of a job definition a pipeline deliberately passes in another form: the scoring pipeline reads
# and writes catalog tables where the job definition reads and writes paths. The score parser takes one
# of --output-path/--output-table (a mutually exclusive group), so both cannot be passed.
TABLES_FOR_PATHS = {"--input": "--input-table", "--output-path": "--output-table"}
PIPELINE_REPLACES = {"score.pipeline.json": TABLES_FOR_PATHS, "incremental-score.pipeline.json": TABLES_FOR_PATHS}
# Pipeline parameters whose empty default means something: the scoring day defaults to the trigger time's.
EMPTY_MEANS_DEFAULT = {"score.pipeline.json": {"scoreDate"}}
# pipeline().TriggerTime of one run, with seven decimals as the service writes timestamps.
TRIGGER_TIME = "2026-12-06T23:00:04.1234567Z"


def template(name: str) -> dict[str, Any]:
    return json.loads((TEMPLATES / name).read_text(encoding="utf-8"))


def rendered(name: str) -> dict[str, Any]:
    return plan.render(template(name), SAMPLE_VALUES)


def bicep_default(parameter: str) -> str:
    match = re.search(
        rf"^param {parameter} \w+ = '([^']*)'$", (REPO / "infra" / "main.bicep").read_text(encoding="utf-8"), re.M
    )
    assert match, f"main.bicep has no string default for {parameter}"
    return match[1]


def resolve(
    args: list[str], pipeline: dict[str, Any], trigger_time: str = TRIGGER_TIME, **parameters: str
) -> list[str]:
    """Evaluate the pipeline expressions the way Synapse would for one run: `parameters` as the run was
    given them (by a trigger or by hand), the other parameters at their defaults."""
    declared = pipeline["properties"]["parameters"]
    unknown = set(parameters) - set(declared)
    assert not unknown, f"the run passes parameters the pipeline does not declare: {unknown}"
    values = {name: spec["defaultValue"] for name, spec in declared.items()} | parameters
    run = {"pipeline": {"parameters": values, "RunId": RUN_ID, "TriggerTime": trigger_time}}
    return [evaluate_value(arg, run) for arg in args]


def evaluate_value(value: str, run: dict[str, Any]) -> Any:
    """A JSON string value: a literal, "@@..." (a literal "@..."), or an expression after "@"."""
    if value.startswith("@@"):
        return value[1:]
    assert "@{" not in value, f"this resolver does not evaluate string interpolation: {value}"
    return evaluate(value[1:], run) if value.startswith("@") else value


EXPRESSION_TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|([A-Za-z_]\w*)|([(),.]))")


def evaluate(expression: str, run: dict[str, Any]) -> Any:
    """A small evaluator of the Synapse/ADF expression language: string literals ('' is a quote inside
    one), function calls and property access, with the functions the templates use. Anything else fails
    the test, so a template cannot use what the test does not evaluate."""
    tokens, position = [], 0
    while position < len(expression.rstrip()):
        match = EXPRESSION_TOKEN.match(expression, position)
        assert match, f"cannot read expression {expression!r} at {expression[position:]!r}"
        tokens.append(match.groups())
        position = match.end()

    def value(index: int) -> tuple[Any, int]:
        literal, name, _ = tokens[index]
        if literal is not None:
            result: Any = literal[1:-1].replace("''", "'")
            index += 1
        else:
            assert name and tokens[index + 1][2] == "(", f"expected a function call in {expression!r}"
            index, arguments = index + 2, []
            while tokens[index][2] != ")":
                argument, index = value(index)
                arguments.append(argument)
                if tokens[index][2] == ",":
                    index += 1
            result, index = call(name, arguments, run), index + 1
        while index < len(tokens) and tokens[index][2] == ".":
            member = tokens[index + 1][1]
            assert isinstance(result, dict) and member in result, f"no property {member} in {expression!r}"
            result, index = result[member], index + 2
        return result, index

    result, end = value(0)
    assert end == len(tokens), f"unread tokens in {expression!r}"
    return result


DOTNET_FORMAT = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


def call(name: str, arguments: list[Any], run: dict[str, Any]) -> Any:
    """The expression language's functions the templates use, as Microsoft's function reference defines them."""
    if name in ("pipeline", "trigger") and not arguments:
        assert name in run, f"{name}() is not defined for this run"
        return run[name]
    if name == "concat":
        assert all(isinstance(argument, str) for argument in arguments), f"concat of non-strings: {arguments}"
        return "".join(arguments)
    if name == "empty":
        (argument,) = arguments
        return argument is None or len(argument) == 0
    if name == "if":
        condition, then, otherwise = arguments
        assert isinstance(condition, bool), f"if() needs a boolean, got {condition!r}"
        return then if condition else otherwise
    if name == "formatDateTime":
        timestamp, pattern = arguments
        # .NET timestamps carry up to seven decimals; Python reads at most six.
        timestamp = re.sub(r"(\.\d{6})\d+", r"\1", timestamp).replace("Z", "+00:00")
        parsed = dt.datetime.fromisoformat(timestamp)
        parts = re.split(r"(yyyy|MM|dd|HH|mm|ss)", pattern)
        assert all(part in DOTNET_FORMAT or not re.search(r"[A-Za-z]", part) for part in parts), pattern
        return parsed.strftime("".join(DOTNET_FORMAT.get(part, part) for part in parts))
    raise AssertionError(f"the test's resolver does not know the function {name}()")


@pytest.fixture(scope="module")
def job_parser() -> argparse.ArgumentParser:
    from synapse_ml_track.cli import build_parser

    return build_parser()


@pytest.fixture(scope="module", params=plan.PIPELINE_TEMPLATES)
def pipeline(request) -> dict[str, Any]:
    return rendered(request.param) | {"template": request.param}


@pytest.fixture(scope="module")
def score_pipeline() -> dict[str, Any]:
    return rendered("score.pipeline.json")


@pytest.fixture(scope="module")
def trigger() -> dict[str, Any]:
    return rendered("score.trigger.json")


def activity_args(pipeline: dict[str, Any]) -> list[str]:
    (activity,) = pipeline["properties"]["activities"]
    return activity["typeProperties"]["args"]


def option_value(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


def test_every_template_is_deployed():
    deployed = {*plan.JOB_DEFINITION_TEMPLATES, *plan.PIPELINE_TEMPLATES, *plan.TRIGGER_TEMPLATES}
    assert {path.name for path in TEMPLATES.glob("*.json")} == deployed
    assert set(JOB_COMMANDS) == set(plan.JOB_DEFINITION_TEMPLATES)
    assert set(PIPELINE_JOBS) == set(plan.PIPELINE_TEMPLATES)


@pytest.mark.parametrize("name", plan.JOB_DEFINITION_TEMPLATES)
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
    assert script in plan.JOB_SCRIPTS, f"deploy does not upload {script}"
    assert job["pyFiles"] == ["${base_uri}/dist/${wheel}"]


@pytest.mark.parametrize("name", plan.JOB_DEFINITION_TEMPLATES)
def test_job_definition_sizing_is_consistent_and_fits_the_dev_pool(name):
    job = template(name)["properties"]["jobProperties"]
    sizes = set(plan.EXECUTOR_SIZES.values())
    assert (job["executorCores"], job["executorMemory"]) in sizes
    assert (job["driverCores"], job["driverMemory"]) in sizes
    conf = job["conf"]
    assert (
        conf["spark.dynamicAllocation.minExecutors"]
        == conf["spark.dynamicAllocation.maxExecutors"]
        == str(job["numExecutors"])
    )
    parameters = json.loads((REPO / "infra" / "main.parameters.dev.json").read_text(encoding="utf-8"))["parameters"]
    node_cores = plan.EXECUTOR_SIZES[parameters["sparkNodeSize"]["value"]][0]
    needed = job["driverCores"] + job["numExecutors"] * job["executorCores"]
    assert needed <= parameters["sparkMaxNodes"]["value"] * node_cores, "the job needs more cores than the dev pool has"


@pytest.mark.parametrize("name", plan.JOB_DEFINITION_TEMPLATES)
def test_job_definition_args_parse_with_the_job_parser(job_parser, name):
    document = rendered(name)
    args = job_parser.parse_args([JOB_COMMANDS[name], *document["properties"]["jobProperties"]["args"]])
    assert args.config == CONFIG_URI
    assert args.input == f"{SAMPLE_VALUES['base_uri']}/data/penguins.csv"
    if JOB_COMMANDS[name] == "score":
        assert args.model_uri == SAMPLE_VALUES["model_uri"]
        assert args.output_path == f"{SAMPLE_VALUES['base_uri']}/output/scores"


def test_rendering_fills_every_placeholder():
    for name in (*plan.JOB_DEFINITION_TEMPLATES, *plan.PIPELINE_TEMPLATES, *plan.TRIGGER_TEMPLATES):
        assert "${" not in json.dumps(rendered(name)), f"{name} keeps a placeholder after rendering"


def test_pipeline_runs_its_job_definition(pipeline):
    (activity,) = pipeline["properties"]["activities"]
    assert activity["type"] == "SparkJob"
    assert activity["typeProperties"]["sparkJob"] == {
        "referenceName": template(PIPELINE_JOBS[pipeline["template"]])["name"],
        "type": "SparkJobDefinitionReference",
    }
    assert activity["policy"]["retry"] == 1 and activity["policy"]["timeout"] == "0.02:00:00"
    may_be_empty = EMPTY_MEANS_DEFAULT.get(pipeline["template"], set())
    for name, spec in pipeline["properties"]["parameters"].items():
        assert spec["type"] == "string" and isinstance(spec["defaultValue"], str), f"{name} needs a string default"
        assert bool(spec["defaultValue"]) != (name in may_be_empty), f"pipeline parameter {name}'s default"


def test_pipeline_passes_run_id_and_config_path(pipeline):
    args = activity_args(pipeline)
    assert option_value(args, "--run-key") == "@pipeline().RunId"
    config_expression = PARAMETER_EXPRESSION.match(option_value(args, "--config"))
    assert config_expression, "--config must come from a pipeline parameter"
    assert pipeline["properties"]["parameters"][config_expression[1]]["defaultValue"] == CONFIG_URI
    # Every expression evaluates for one run: it names only declared parameters and known functions.
    resolved = resolve(args, pipeline)
    assert all(isinstance(arg, str) and not arg.startswith("@") for arg in resolved), resolved
    assert option_value(resolved, "--run-key") == RUN_ID


def test_train_pipeline_args_parse_with_the_job_parser(job_parser):
    pipeline = rendered("train.pipeline.json")
    parsed = job_parser.parse_args(["train", *resolve(activity_args(pipeline), pipeline)])
    assert parsed.run_key == RUN_ID
    assert parsed.config == CONFIG_URI


def test_pipeline_args_keep_every_option_of_the_job_definition(pipeline):
    # Args given by the pipeline replace the job definition's args: none may get lost, unless the
    # pipeline passes it in its declared other form.
    definition_args = template(PIPELINE_JOBS[pipeline["template"]])["properties"]["jobProperties"]["args"]
    pipeline_args = set(activity_args(pipeline))
    replaced = PIPELINE_REPLACES.get(pipeline["template"], {})
    options = {arg for arg in definition_args if arg.startswith("--")}
    lost = {option for option in options if option not in pipeline_args and replaced.get(option) not in pipeline_args}
    assert not lost, f"the pipeline drops {lost}"


def test_score_pipeline_replaces_the_trigger_days_partition(score_pipeline):
    """A run given no scoreDate: the day of pipeline().TriggerTime, quoted as a SQL string literal."""
    args = resolve(activity_args(score_pipeline), score_pipeline)
    assert option_value(args, "--replace-where") == "event_date = '2026-12-06'"
    assert option_value(args, "--partition-by") == "event_date"
    assert option_value(args, "--mode") == "overwrite", "--replace-where needs --mode overwrite"
    assert option_value(args, "--input-table") == "lake.penguins"
    assert option_value(args, "--output-table") == "lake.penguin_scores"
    assert option_value(args, "--model-uri") == SAMPLE_VALUES["model_uri"]


def test_score_pipeline_takes_a_given_day_and_column(score_pipeline):
    """A backfill by hand: scoreDate and the partition column given, the trigger time not used."""
    args = resolve(activity_args(score_pipeline), score_pipeline, scoreDate="2026-11-30", partitionColumn="observed_on")
    assert option_value(args, "--replace-where") == "observed_on = '2026-11-30'"
    assert option_value(args, "--partition-by") == "observed_on"


def test_score_pipeline_args_parse_with_the_score_parser(job_parser, score_pipeline):
    parsed = job_parser.parse_args(["score", *resolve(activity_args(score_pipeline), score_pipeline)])
    assert (parsed.run_key, parsed.config, parsed.model_uri) == (RUN_ID, CONFIG_URI, SAMPLE_VALUES["model_uri"])
    assert (parsed.input_table, parsed.output_table, parsed.mode) == (
        "lake.penguins",
        "lake.penguin_scores",
        "overwrite",
    )
    assert parsed.input is None and parsed.output_path is None
    assert parsed.replace_where == "event_date = '2026-12-06'"
    assert parsed.partition_by == "event_date"


def test_trigger_has_the_documented_shape(trigger, score_pipeline):
    properties = trigger["properties"]
    assert properties["type"] == "ScheduleTrigger"
    assert "runtimeState" not in properties, "the service sets runtimeState; deploy starts a trigger on request"
    recurrence = properties["typeProperties"]["recurrence"]
    assert (recurrence["frequency"], recurrence["interval"], recurrence["timeZone"]) == ("Day", 1, "UTC")
    assert dt.datetime.fromisoformat(recurrence["startTime"].replace("Z", "+00:00")).utcoffset() == dt.timedelta(0)
    schedule = recurrence["schedule"]
    assert all(isinstance(hour, int) and 0 <= hour < 24 for hour in schedule["hours"])
    assert all(isinstance(minute, int) and 0 <= minute < 60 for minute in schedule["minutes"])
    assert len(schedule["hours"]) == len(schedule["minutes"]) == 1, "nightly: one run a day"
    (reference,) = properties["pipelines"]
    assert reference["pipelineReference"] == {"referenceName": score_pipeline["name"], "type": "PipelineReference"}
    declared = score_pipeline["properties"]["parameters"]
    assert reference["parameters"] and set(reference["parameters"]) <= set(declared), (
        "the trigger passes parameters the pipeline does not declare"
    )


def test_a_scheduled_run_scores_the_scheduled_day_even_when_it_starts_late(trigger, score_pipeline):
    """The trigger passes its scheduledTime as scoreDate: a run scheduled at 23:00 that starts after
    midnight (pipeline().TriggerTime on the next day) still replaces the scheduled day's partition."""
    (reference,) = trigger["properties"]["pipelines"]
    scheduled = {"trigger": {"scheduledTime": "2026-12-06T23:00:00Z"}}
    passed = {name: evaluate_value(value, scheduled) for name, value in reference["parameters"].items()}
    args = resolve(activity_args(score_pipeline), score_pipeline, trigger_time="2026-12-07T00:00:03.5Z", **passed)
    assert option_value(args, "--replace-where") == "event_date = '2026-12-06'"
    assert option_value(args, "--run-key") == RUN_ID


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("@concat('Baba', '''s ', 'book store')", "Baba's book store"),  # the ADF docs' escaping example
        ("@@pipeline().RunId", "@pipeline().RunId"),
        ("@formatDateTime('2026-01-02T03:04:05.1234567Z', 'yyyy-MM-dd HH:mm:ss')", "2026-01-02 03:04:05"),
        ("@if(empty(''), 'yes', 'no')", "yes"),
        ("@if(empty('x'), 'yes', 'no')", "no"),
    ],
)
def test_the_resolver_evaluates_as_synapse_does(expression, value):
    assert evaluate_value(expression, {}) == value


def test_deploy_defaults_match_the_infrastructure():
    from synapse_ml_track.cli import build_parser

    defaults = build_parser().parse_args(["deploy", "--workspace", "w", "--storage-account", "s", "--config", "c"])
    assert defaults.spark_pool == bicep_default("sparkPoolName")
    assert defaults.filesystem == bicep_default("synapseFilesystemName")
