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


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
