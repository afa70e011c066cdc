"""Errors a user can act on: each carries one line naming the problem and the fix."""


class JobError(Exception):
    """A failure with a message meant for the person running the job."""

    exit_code = 2


class ConfigError(JobError):
    """The configuration (file, flags or environment) is invalid."""


class DataError(JobError):
    """The input data cannot be used for training or scoring."""


class TrackingError(JobError):
    """The MLflow tracking server or registry cannot be used."""

    exit_code = 3


class CredentialError(JobError):
    """No usable Azure credential was found."""

    exit_code = 4


class GateRejected(JobError):
    """The quality gate refused the model and gate.fail_on_reject is set."""

    exit_code = 5


class WriteConflict(JobError):
    """Another writer kept changing the output table while the job wrote to it, or another job of the
    same run key kept its run; nothing was written, and a rerun is safe."""

    exit_code = 6


class DriftDetected(JobError):
    """Scoring found a feature's drift at or over drift.fail with drift.fail_job set; the scores are written."""

    exit_code = 7


def option(flag: str, value: str | bool | None = None) -> str:
    """An option as both its callers spell it, for a message that says what to pass: the command
    line's flag and the Python API's keyword. `--mode overwrite (mode="overwrite")`; a switch
    (value True) `--evolve-schema (evolve_schema=True)`; no value `--merge-key (merge_key=...)`."""
    keyword = flag.removeprefix("--").replace("-", "_")
    if value is None:
        return f"{flag} ({keyword}=...)"
    if value is True:
        return f"{flag} ({keyword}=True)"
    return f'{flag} {value} ({keyword}="{value}")'


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def failure_line(exc: BaseException) -> str:
    """One line saying why an unexpected failure happened. A failure inside Spark (a fit, a write)
    reads "An error occurred while calling o412.fit." (py4j's call site) followed by a JVM stack;
    the JVM cause it carries says why."""
    if type(exc).__module__.partition(".")[0] in ("py4j", "pyspark"):
        from synapse_ml_track.spark.session import spark_error_line  # Spark is loaded already: it raised this

        return spark_error_line(exc)
    return first_line(exc)
