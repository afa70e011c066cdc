"""The Python API: the train and score jobs called from a notebook or any Python code, and the
scores as a DataFrame without a job.

    import synapse_ml_track as smt

    trained = smt.train("job.yaml", spark=spark, data=df, overrides={"model.type": "random_forest"})
    predicted = smt.predict(new_df)  # the champion's scores, lazy: no run, nothing written
    penguins = smt.sample_data(spark)  # the bundled sample, to try it on
    scored = smt.score("job.yaml", spark=spark, data=new_df, output_path="abfss://.../scores")
    runs = smt.report("penguins")  # the experiment's runs side by side: runs.table, runs.figure

The same jobs as `synapse-ml-track train` and `score`, which call these. A problem the caller can fix
raises a JobError subclass (errors.py: ConfigError, DataError, TrackingError, CredentialError,
GateRejected), whose `exit_code` is the command line's; nothing here exits the process.

The caller's SparkSession is used as it is: never stopped, its settings left alone. What MLflow and
azureml-mlflow need process-wide for the length of a job (the global tracking URI, see
entrypoint.py; the HTTP settings of http.py; azureml-mlflow's cloud name) is put back as it was
when the call returns or raises, so a notebook's own MLflow calls are not redirected.

Spark and MLflow are imported when a job runs: importing the package stays light.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeAlias

from synapse_ml_track.config import JobConfig, build_config, merge_layers, set_dotted
from synapse_ml_track.entrypoint import job_process_state
from synapse_ml_track.errors import ConfigError, DataError, JobError, first_line
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.results import RunsReport, ScoringResult, TrainingResult
from synapse_ml_track.vocabulary import OUTPUT_FORMATS, UNSCORABLE_POLICIES, WRITE_MODES

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType

    from synapse_ml_track.spark.sources import InputSource

log = logging.getLogger("synapse_ml_track")

# A config file's path, a mapping of sections as such a file holds, or a configuration already built.
ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | JobConfig | None
# The data a job takes: a Spark DataFrame, or a pandas one, made a Spark DataFrame in the job's session.
Frame: TypeAlias = "DataFrame | pd.DataFrame"


def job_config(
    config: ConfigSource = None, overrides: Mapping[str, Any] | None = None, *, spark: SparkSession | None = None
) -> JobConfig:
    """The job's configuration, checked as the command line checks it.

    `config`: a YAML or JSON file's path (an abfss:// one is read through Spark), a dict of sections
    as such a file holds, or a JobConfig. `overrides`: dotted keys as `--set` takes them, e.g.
    {"model.params.maxIter": 50}, over `config`, which is over the environment and the defaults.
    A JobConfig is taken whole: the environment is not read again.
    """
    tree: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        set_dotted(tree, key, copy.deepcopy(value))
    if isinstance(config, JobConfig):
        return build_config(overrides=merge_layers(config.to_dict(), tree), environ={})
    if isinstance(config, Mapping):
        return build_config(overrides=merge_layers(copy.deepcopy(dict(config)), tree))
    return build_config(
        config_path=None if config is None else os.fspath(config),
        overrides=tree,
        read_remote=lambda path: read_remote_text(path, spark),
    )


def read_remote_text(path: str, spark: SparkSession | None = None) -> str:
    """A config file on the cluster's storage (abfss://, wasbs://...), read through Spark."""
    from synapse_ml_track.spark.session import get_or_create_spark

    session = spark or get_or_create_spark("synapse-ml-track")
    rows = session.read.text(path, wholetext=True).collect()
    return rows[0][0] if rows else ""


def train(
    config: ConfigSource = None,
    *,
    spark: SparkSession | None = None,
    data: Frame | None = None,
    overrides: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    registered_model_name: str | None = None,
    run_key: str | None = None,
    redactor: Redactor | None = None,
) -> TrainingResult:
    """Train (or search), evaluate, track and register a model, as `synapse-ml-track train` does.

    `data`: a DataFrame to train on in place of data.path / data.table (the run records its schema
    and row count, no path); a pandas DataFrame is made a Spark one in `spark` (or the active
    session) before anything else, or refused with a ConfigError when there is no session.
    `spark`: the session to run in (default: the one `data` belongs to,
    else the active one, else a local one). `tracking_uri`, `experiment_name`,
    `registered_model_name` and `run_key` set the config keys of the same names; `overrides`
    (dotted keys, as `--set`) is applied after them. `redactor` masks the secrets the job learns.

    Returns the TrainingResult: run id, model version, metrics, and the gate's decision (status
    "registered", "rejected", "tracked" or "reused", its reason, and whether it was promoted).
    """
    from synapse_ml_track.entrypoint import set_global_tracking_uri
    from synapse_ml_track.tracking.session import open_session
    from synapse_ml_track.train_job import run_training

    named = {
        "tracking.uri": tracking_uri,
        "tracking.experiment_name": experiment_name,
        "tracking.registered_model_name": registered_model_name,
        "run_key": run_key,
    }
    redactor = redactor or Redactor()
    with redacted_errors(redactor):
        given = None if data is None else _frame_input(data, spark)
        frame = None if given is None else given.frame
        job = job_config(config, _given(named, overrides), spark=spark)
        _check_data(job, frame)
        with _job_spark(spark, frame, "synapse-ml-track-train") as job_spark, job_process_state(job):
            session = open_session(job, redactor)
            set_global_tracking_uri(session.uri)
            return run_training(job_spark(), job, session, redactor, given)


def score(
    config: ConfigSource = None,
    *,
    model_uri: str | None = None,
    output_path: str | None = None,
    output_table: str | None = None,
    spark: SparkSession | None = None,
    data: Frame | None = None,
    overrides: Mapping[str, Any] | None = None,
    output_format: str | None = None,
    mode: str = "errorifexists",
    merge_key: str | None = None,
    evolve_schema: bool = False,
    partition_by: str | Sequence[str] | None = None,
    replace_where: str | None = None,
    unscorable: str = "keep",
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    registered_model_name: str | None = None,
    run_key: str | None = None,
    redactor: Redactor | None = None,
) -> ScoringResult:
    """Score data with a registered model and write the scores, as `synapse-ml-track score` does.

    `model_uri`: default the champion (models:/<tracking.registered_model_name>@<gate.champion_alias>),
    `registered_model_name` setting that config key. One of `output_path` (a relative path is taken
    from the working directory) and `output_table`;
    `output_format`, `mode`, `merge_key`, `evolve_schema`, `partition_by` (column names, or one
    comma-separated string), `replace_where` and `unscorable` are the command line's --output-format,
    --mode, --merge-key, --evolve-schema, --partition-by, --replace-where and --unscorable. `data`,
    `spark`, `overrides` and the tracking keywords as for `train`.
    """
    from synapse_ml_track.entrypoint import set_global_tracking_uri
    from synapse_ml_track.spark.scoring import Output, default_model_uri, parse_model_uri, run_scoring
    from synapse_ml_track.tracking.session import open_session

    named = {
        "tracking.uri": tracking_uri,
        "tracking.experiment_name": experiment_name,
        "tracking.registered_model_name": registered_model_name,
        "run_key": run_key,
    }
    redactor = redactor or Redactor()
    with redacted_errors(redactor):
        given = None if data is None else _frame_input(data, spark)
        frame = None if given is None else given.frame
        _check_choice("mode", mode, WRITE_MODES)
        _check_choice("unscorable", unscorable, UNSCORABLE_POLICIES)
        if output_format is not None:
            _check_choice("output_format", output_format, OUTPUT_FORMATS)
        job = job_config(config, _given(named, overrides), spark=spark)
        _check_data(job, frame)
        model_uri = model_uri or default_model_uri(job)
        parse_model_uri(model_uri)  # a typo fails at once, before credentials, the tracking server or Spark
        output = Output.of(
            output_path, output_table, mode=mode, requested_format=output_format, merge_key=merge_key,
            evolve_schema=evolve_schema, partition_by=partition_by, replace_where=replace_where,
        )  # fmt: skip
        with _job_spark(spark, frame, "synapse-ml-track-score") as job_spark, job_process_state(job):
            session = open_session(job, redactor)
            set_global_tracking_uri(session.uri)
            session_spark = job_spark()
            summary = run_scoring(
                session_spark, job, session, redactor, model_uri, output, unscorable=unscorable, data=given
            )
        return ScoringResult(
            status=summary["status"],
            run_id=summary["run_id"],
            experiment_id=summary["experiment_id"],
            model_uri=summary["model_uri"],
            model_version=summary["model_version"],
            output=summary["output_path"],
            output_format=summary["output_format"],
            output_version=summary["output_version"],
            rows_scored=summary.get("rows_scored"),
            rows_unscorable=summary.get("rows_unscorable"),
            rows_unseen=summary.get("rows_unseen"),
            drift=summary.get("drift"),
            details=summary,
            _read_scores=functools.partial(_written_scores, session_spark, summary),
        )


def _written_scores(spark: SparkSession, summary: Mapping[str, Any]) -> DataFrame:
    from synapse_ml_track.spark import delta_tables
    from synapse_ml_track.spark.sources import InputSource

    output, output_format = summary["output_path"], summary["output_format"]
    if output_format == "delta":
        written = InputSource(output, "delta", None, table=summary["output_table"], version=summary["output_version"])
        return delta_tables.read(spark, written)
    return spark.read.format(output_format).load(output)


def predict(
    data: Frame,
    model_uri: str | None = None,
    *,
    config: ConfigSource = None,
    spark: SparkSession | None = None,
    overrides: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    registered_model_name: str | None = None,
    redactor: Redactor | None = None,
) -> DataFrame:
    """The scores `score` would write for `data`, as a DataFrame to display, join or write yourself:
    every input row, `prediction`, one `probability_<class>` column per class (a classifier),
    `unscorable_reason` (null, or why a row with a null model input has no prediction) and the
    model's lineage (`model_name`, `model_version`, `model_run_id`, `scored_at`).

    Lazy: nothing is computed until the DataFrame is, no MLflow run is started and nothing is
    written. `model_uri` as for `score` (default: the champion of tracking.registered_model_name, which
    `registered_model_name` sets, resolved at each call); a model is read once per SparkSession
    (spark/models.py). `data`: a Spark DataFrame, or a pandas one (made a Spark DataFrame with `spark`,
    or the active session).
    """
    from datetime import datetime, timezone

    from synapse_ml_track.spark.scoring import (
        default_model_uri,
        load_model,
        parse_model_uri,
        predictions,
        resolve_model,
    )
    from synapse_ml_track.tracking.session import open_session

    redactor = redactor or Redactor()
    with redacted_errors(redactor):
        frame = _spark_frame(data, spark)
        named = {"tracking.uri": tracking_uri, "tracking.registered_model_name": registered_model_name}
        job = job_config(config, _given(named, overrides), spark=frame.sparkSession)
        model_uri = model_uri or default_model_uri(job)
        parse_model_uri(model_uri)  # a typo fails at once, before credentials or the tracking server
        with job_process_state(job):
            session = open_session(job, redactor, experiment=False)
            with session.tracking_errors():
                model = resolve_model(session.client, model_uri)
                with tempfile.TemporaryDirectory() as directory:
                    loaded = load_model(session, model, directory, job.tracking.dfs_tmp)
        columns = loaded.input_columns(frame)
        return predictions(frame, columns, loaded.pipeline, loaded.labels, model, datetime.now(timezone.utc))


def report(
    experiment_name: str | None = None,
    *,
    config: ConfigSource = None,
    metric: str | None = None,
    registered_model_name: str | None = None,
    max_runs: int = 100,
    output_dir: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    redactor: Redactor | None = None,
) -> RunsReport:
    """An experiment's training runs side by side, as `synapse-ml-track report` shows them: the
    RunsReport's `table` (pandas, best first, with each run's model versions and aliases),
    `figure` (the metric across the runs) and, when scoring runs measured drift, `drift` and
    `drift_figure` (each feature's PSI across them); read-only: no run is started, no experiment created.

    `metric`: what to rank by (default: the gate's metric, f1 or rmse by the runs' task).
    `output_dir`: also write runs.csv, runs.md and <metric>.png there, and drift.csv and drift.png
    with drift (RunsReport.files).
    `experiment_name`, `registered_model_name` and `tracking_uri` set the config keys of the same
    names; `overrides` (dotted keys, as `--set`) is applied after them.
    """
    from pathlib import Path

    from synapse_ml_track.entrypoint import set_global_tracking_uri
    from synapse_ml_track.tracking.report import connect, runs_report, write_report

    if max_runs < 1:
        raise ConfigError(f"max_runs must be at least 1, got {max_runs}")
    named = {
        "tracking.uri": tracking_uri,
        "tracking.experiment_name": experiment_name,
        "tracking.registered_model_name": registered_model_name,
    }
    redactor = redactor or Redactor()
    with redacted_errors(redactor):
        job = job_config(config, _given(named, overrides))
        with job_process_state(job):
            uri, client, experiment = connect(job, redactor)
            set_global_tracking_uri(uri)
            found = runs_report(client, experiment, job, max_runs, metric)
            return found if output_dir is None else write_report(found, Path(output_dir))


def sample_data(spark: SparkSession | None = None) -> DataFrame:
    """The penguins data bundled with the package (344 rows, a few with nulls), as a Spark DataFrame
    in `spark` (default: the active session, else a local one). Read on the driver and handed to
    Spark, so a cluster's executors need not see the package's files."""
    import pandas as pd
    from pyspark.sql import functions as F

    from synapse_ml_track.spark.session import get_or_create_spark
    from synapse_ml_track.spark.sources import BUNDLED_PENGUINS_SCHEMA, bundled_penguins_path

    session = spark or get_or_create_spark("synapse-ml-track")
    text = pd.read_csv(bundled_penguins_path(), dtype=str, keep_default_na=False)
    frame = session.createDataFrame(text).replace("", None)
    typed = session.createDataFrame([], BUNDLED_PENGUINS_SCHEMA).schema
    return frame.select(*[F.col(field.name).cast(field.dataType) for field in typed.fields])


def _spark_frame(data: Any, spark: SparkSession | None) -> DataFrame:
    """`data` as a Spark DataFrame: as it is, or a pandas DataFrame made one in `spark` (or the active session)."""
    from pyspark.sql import DataFrame, SparkSession

    if isinstance(data, DataFrame):
        return data
    if _is_pandas_frame(data):
        session = spark or SparkSession.getActiveSession()
        if session is None:
            raise ConfigError("a pandas DataFrame is scored in Spark: pass spark= your SparkSession")
        return _numeric_gaps_as_null(_pandas_to_spark(session, _text_gaps_as_none(data)))
    raise ConfigError(f"data must be a Spark or pandas DataFrame, got {type(data).__module__}.{type(data).__name__}")


def _is_pandas_frame(data: Any) -> bool:
    """Told without importing pandas, which a caller of a Spark DataFrame may not have loaded."""
    return type(data).__module__.split(".")[0] == "pandas" and type(data).__name__ == "DataFrame"


def _frame_input(data: Any, spark: SparkSession | None) -> InputSource:
    """`data` as a job's input (_spark_frame); a pandas frame with its content's digest as its identity,
    so a retry with the same rows is the same write, and the same training."""
    from synapse_ml_track.spark.sources import frame_source

    return frame_source(_spark_frame(data, spark), _pandas_digest(data))


def _pandas_digest(data: Any) -> str | None:
    """The digest of a pandas frame's columns, types and rows; None for anything else, or rows pandas cannot hash."""
    if not _is_pandas_frame(data):
        return None
    from pandas.util import hash_pandas_object

    try:
        rows = hash_pandas_object(data, index=False).to_numpy().tobytes()
    except TypeError:  # a cell holding a list or a dict
        return None
    described = json.dumps([[str(name), str(kind)] for name, kind in data.dtypes.items()]).encode()
    return "pandas:" + hashlib.sha256(described + rows).hexdigest()[:32]


def _pandas_to_spark(session: SparkSession, frame: Any) -> DataFrame:
    """Spark infers a pandas frame's types from its values, and fails on a column without one (a feature
    missing in every row given, or no rows at all): such a column's type is then told from its pandas
    dtype, and a column of objects all missing is text."""
    from pyspark.sql import types as T

    try:
        return session.createDataFrame(frame)
    except (TypeError, ValueError):  # PySparkValueError CANNOT_DETERMINE_TYPE, CANNOT_INFER_EMPTY_SCHEMA...
        schema = T.StructType([T.StructField(str(name), _pandas_type(frame[name]), True) for name in frame.columns])
    try:
        return session.createDataFrame(frame, schema)
    except (TypeError, ValueError) as exc:
        raise DataError(f"cannot make a Spark DataFrame of the pandas frame: {first_line(exc)}") from None


def _pandas_type(column: Any) -> DataType:
    from pyspark.sql import types as T

    kind = column.dtype.kind
    if kind == "f":
        return T.DoubleType()
    if kind in "iu":
        return T.LongType()
    if kind == "b":
        return T.BooleanType()
    if kind == "M":
        return T.TimestampType()
    present = column.dropna()
    return T._infer_type(present.iloc[0]) if len(present) else T.StringType()


def _numeric_gaps_as_null(frame: DataFrame) -> DataFrame:
    """pandas marks a missing number NaN, which Spark keeps as NaN: null in Spark, as training and the
    scores' unscorable_reason take it, so that an IS NULL filter and a sum over the scores see it."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    floating = {field.name for field in frame.schema.fields if isinstance(field.dataType, (T.DoubleType, T.FloatType))}
    if not floating:
        return frame
    return frame.select(*[
        F.when(F.isnan(name), None).otherwise(F.col(name)).alias(name) if name in floating else F.col(name)
        for name in frame.columns
    ])  # fmt: skip


def _text_gaps_as_none(frame: Any) -> Any:
    """pandas marks a missing value in a text or categorical column NaN, which Spark reads as the text
    'NaN' (a category the model then scores): made None, which Spark reads as null (_numeric_gaps_as_null
    for numbers)."""
    text = [name for name, kind in frame.dtypes.items() if str(kind) in ("object", "category", "string")]
    if not text or not frame[text].isna().to_numpy().any():
        return frame
    fixed = frame.copy()
    for name in text:
        fixed[name] = fixed[name].astype(object).where(fixed[name].notna(), None)
    return fixed


def _given(named: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keyword options that were given, then `overrides` (applied last, as --set is)."""
    return {**{key: value for key, value in named.items() if value is not None}, **(overrides or {})}


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_data(job: JobConfig, data: DataFrame | None) -> None:
    """A DataFrame is the whole input: config keys that name or time-travel another one would be ignored."""
    if data is None:
        return
    named = [f"data.{key}" for key in ("path", "table", "version", "timestamp") if getattr(job.data, key) is not None]
    if named:
        raise ConfigError(f"data= a DataFrame is the input: unset {', '.join(named)} (or pass no DataFrame)")


def _job_spark(
    spark: SparkSession | None, data: DataFrame | None, app_name: str
) -> AbstractContextManager[Callable[[], SparkSession]]:
    """The job's session: the given one, `data`'s, or one starting beside the tracking set-up."""
    given = spark or (data.sparkSession if data is not None else None)
    if given is not None:
        return nullcontext(lambda: given)
    from synapse_ml_track.spark.session import spark_starting

    return spark_starting(app_name)


@contextmanager
def redacted_errors(redactor: Redactor) -> Iterator[None]:
    """A JobError leaves with its message redacted, as the command line prints it."""
    try:
        yield
    except JobError as exc:
        exc.args = (redactor.redact(str(exc)),)
        raise
