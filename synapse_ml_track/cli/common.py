"""What every subcommand shares: common flags, configuration from flags, the JSON summary, logging.

Nothing here imports Spark or MLflow: `--help` and `deploy --dry-run` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from synapse_ml_track.api import job_config
from synapse_ml_track.config import JobConfig, parse_assignment, set_dotted
from synapse_ml_track.entrypoint import quiet_mlflow
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking.http import configure_process

log = logging.getLogger("synapse_ml_track")

# flag destination -> dotted config key; a subcommand declares the flags it takes
FLAG_KEYS = {
    "input": "data.path",
    "input_table": "data.table",
    "format": "data.format",
    "schema": "data.schema",
    "label": "data.label",
    "numeric_features": "data.numeric_features",
    "categorical_features": "data.categorical_features",
    "exclude": "data.exclude",
    "nulls": "data.nulls",
    "train_fraction": "data.train_fraction",
    "seed": "data.seed",
    "task": "model.task",
    "model_type": "model.type",
    "tracking_uri": "tracking.uri",
    "experiment_name": "tracking.experiment_name",
    "experiment_id": "tracking.experiment_id",
    "run_name": "tracking.run_name",
    "registered_model_name": "tracking.registered_model_name",
    "compare_to_champion": "gate.compare_to_champion",
    "run_key": "run_key",
    "output": "output",
}


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML or JSON config file (flags override it; it overrides the environment)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any config key, e.g. model.params.maxIter=50"
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, an AML workspace, or a local sqlite store)",
    )
    parser.add_argument("--experiment-name")
    parser.add_argument("--experiment-id")
    add_logging(parser)


def add_logging(parser: argparse.ArgumentParser) -> None:
    """The flags every subcommand takes, whether or not it reads a job configuration."""
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--debug", action="store_true", help="print tracebacks of unexpected errors")


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", help="also write the JSON summary to this file")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for dest, dotted in FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            set_dotted(overrides, dotted, value)
    for assignment in getattr(args, "param", []):
        name, value = parse_assignment(assignment)
        set_dotted(overrides, f"model.params.{name}", value)
    for assignment in getattr(args, "tag", []):
        name, value = parse_assignment(assignment)
        overrides.setdefault("tracking", {}).setdefault("tags", {})[name] = "" if value is None else str(value)
    if getattr(args, "no_register", False):
        set_dotted(overrides, "tracking.register", False)
    if getattr(args, "force", False):
        overrides["force"] = True
    if getattr(args, "fail_on_drift", False):
        set_dotted(overrides, "drift.fail_job", True)
    if getattr(args, "incremental", False):
        set_dotted(overrides, "data.incremental", True)
    # --set is the most specific: applied last.
    for assignment in args.set:
        name, value = parse_assignment(assignment)
        set_dotted(overrides, name, value)
    return overrides


def config_of(args: argparse.Namespace) -> JobConfig:
    """The job's configuration from the flags (api.job_config: an abfss:// file is read through Spark)."""
    return job_config(args.config, overrides_from_args(args))


def load_config(args: argparse.Namespace) -> JobConfig:
    """The configuration of a subcommand that tracks outside the Python API (check, report), loaded
    once, before any request: the one place the process-wide HTTP settings it implies are made
    (synapse_ml_track/tracking/http.py). The API's jobs make them for their own length."""
    config = config_of(args)
    configure_process(config.tracking)
    return config


def write_summary(summary: dict[str, Any], output: str | None) -> None:
    """The JSON summary: always the last line of stdout, and the file `output` too when given."""
    line = json.dumps(summary, sort_keys=True)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(line + "\n")
    print(line, flush=True)


def configure_logging(level: str, redactor: Redactor) -> None:
    quiet_mlflow()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("synapse_ml_track").setLevel(level)
    for noisy in ("py4j", "azure", "urllib3", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.ERROR if level != "DEBUG" else logging.DEBUG)
    redactor.install(root)
