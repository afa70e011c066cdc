"""The SparkSession: the pool's own on Synapse or under spark-submit, a local one on a laptop."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from py4j.protocol import Py4JError
from pyspark import SparkContext
from pyspark.sql import DataFrame, Row, SparkSession

from synapse_ml_track.spark import delta

# Only for sessions this package starts itself (no spark-submit, no Synapse pool).
# Catalog tables live here, beside the local MLflow store (mlruns/mlflow.db), so a table one command
# writes is found by name by the next (delta_tables.catalog_table); relative to the working directory.
LOCAL_WAREHOUSE = "mlruns/spark-warehouse"
LOCAL_DEFAULTS = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "4g",
    "spark.sql.session.timeZone": "UTC",
}


def get_or_create_spark(app_name: str) -> SparkSession:
    """The running session, or the one spark-submit (or Synapse) configured, or a local one.

    A local one has Delta Lake on when the pinned jars are present (`make delta-jars`); a pool's or
    spark-submit's session keeps its own settings (a Synapse pool has Delta configured already).
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if SparkContext._active_spark_context is not None:
        # Running, but not this thread's active session (a notebook's session, called from a thread of
        # its own): the builder without options returns it with its settings as they are.
        return SparkSession.builder.getOrCreate()
    builder = SparkSession.builder
    if not configured_by_launcher():
        builder = builder.appName(app_name).master("local[*]")
        warehouse = {"spark.sql.warehouse.dir": os.path.abspath(LOCAL_WAREHOUSE)}
        for key, value in {**LOCAL_DEFAULTS, **warehouse, **delta.local_session_conf()}.items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def spark_starting(app_name: str) -> Iterator[Callable[[], SparkSession]]:
    """get_or_create_spark, begun in a background thread as the block starts: the JVM and the
    SparkContext start while the job imports MLflow and opens its tracking session, which took turns
    with them before (a short job's fixed cost). The block calls the function it is given when it
    needs the session; that waits for the start and raises what the start raised.

    A block that fails before it asks (a dead tracking server, missing credentials) waits for the
    start and stops the session it started, so no JVM is left to print after the job's error line.
    A session that was running already is used as it is, and never stopped here.
    """
    if SparkContext._active_spark_context is not None:
        running = get_or_create_spark(app_name)
        yield lambda: running
        return
    started: list[SparkSession] = []
    errors: list[BaseException] = []
    asked = threading.Event()

    def start() -> None:
        try:
            started.append(get_or_create_spark(app_name))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=start, name="smt-spark-start", daemon=True)
    thread.start()

    def session() -> SparkSession:
        asked.set()
        thread.join()
        if errors:
            raise errors[0]
        return started[0]

    try:
        yield session
    except BaseException:
        if not asked.is_set():
            thread.join()
            for unused in started:
                unused.stop()
        raise


def configured_by_launcher() -> bool:
    """Whether spark-submit (as Synapse runs a job) or PYSPARK_SUBMIT_ARGS chose master and settings.

    spark-submit starts the driver's JVM first, with --master, --name and --conf among its system
    properties, and hands the Python driver that JVM in PYSPARK_GATEWAY_PORT
    (org.apache.spark.deploy.PythonRunner; pyspark/java_gateway.py, launch_gateway). Before the first
    SparkContext, pyspark's SparkConf() is a plain dict that cannot see those properties, so a check
    of SparkConf().contains("spark.master") is always false there, and a builder master set then
    replaces spark-submit's: the job ran in local mode on the driver alone (found by
    tests/test_cluster.py). The gateway variable is what tells the cases apart.
    """
    return "PYSPARK_GATEWAY_PORT" in os.environ or "--master" in os.environ.get("PYSPARK_SUBMIT_ARGS", "")


def spark_errors(exc: BaseException) -> list[tuple[str | None, str]]:
    """(error class, message) of a Spark failure and each of its JVM causes, outermost first.

    PySpark converts some JVM exceptions (AnalysisException...) and leaves others a bare Py4JJavaError
    (SparkException of a failed job, SparkClassNotFoundException); both hold the JVM Throwable, whose
    cause chain carries Spark's error classes (SparkThrowable.getErrorClass).
    """
    throwable: Any = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    found = []
    while throwable is not None:
        try:
            error_class = throwable.getErrorClass()
        except Py4JError:  # not a SparkThrowable
            error_class = None
        found.append((error_class, str(throwable.getMessage() or "")))
        throwable = throwable.getCause()
    return found


def spark_error(exc: BaseException, error_class: str) -> str | None:
    """The message of the cause with this error class (or one of its subclasses, CLASS.SUBCLASS), or None."""
    for found, message in spark_errors(exc):
        if found and (found == error_class or found.startswith(error_class + ".")):
            return message
    return None


def spark_error_line(exc: BaseException) -> str:
    """The informative line of a Spark error: the JVM's own message, not py4j's call-site preamble."""
    messages = [message for _, message in spark_errors(exc) if message.strip()]
    return (
        first_line_of(messages[0] if messages else (getattr(exc, "desc", None) or str(exc)))[:300] or type(exc).__name__
    )


def first_line_of(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def one_row(frame: DataFrame) -> Row:
    """The row of a query that has exactly one: a global aggregation, or `spark.range(1)`."""
    row = frame.first()
    if row is None:
        raise RuntimeError("a one-row query returned no row")
    return row
