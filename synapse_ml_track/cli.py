"""Command line: `synapse-ml-track train|score|check|report|deploy`.

Each subcommand parses its flags into configuration overrides and calls the library; errors a
user can fix are printed as one line and turned into a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Callable, Sequence

from synapse_ml_track import deploy, report, scoring
from synapse_ml_track.config import JobConfig, build_config, parse_assignment, redacted, set_dotted
from synapse_ml_track.errors import JobError
from synapse_ml_track.redaction import Redactor

log = logging.getLogger("synapse_ml_track")

# flag destination -> dotted config key
TRAIN_FLAGS = {
    "input": "data.path",
    "format": "data.format",
    "schema": "data.schema",
    "label": "data.label",
    "numeric_features": "data.numeric_features",
    "categorical_features": "data.categorical_features",
    "exclude": "data.exclude",
    "nulls": "data.nulls",
    "train_fraction": "data.train_fraction",
    "seed": "data.seed",
    "model_type": "model.type",
    "tracking_uri": "tracking.uri",
    "experiment_name": "tracking.experiment_name",
    "experiment_id": "tracking.experiment_id",
    "run_name": "tracking.run_name",
    "registered_model_name": "tracking.registered_model_name",
    "run_key": "run_key",
    "output": "output",
}


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML or JSON config file (flags override it; it overrides the environment)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key, e.g. model.params.maxIter=50")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, an AML workspace, or a local sqlite store)")
    parser.add_argument("--experiment-name")
    parser.add_argument("--experiment-id")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--debug", action="store_true", help="print tracebacks of unexpected errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synapse-ml-track", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train, evaluate, track and register a Spark ML classifier")
    _add_common(train)
    train.add_argument("--input", help="CSV, Parquet or Delta path (default: the bundled penguins data)")
    train.add_argument("--format", choices=["csv", "parquet", "delta"])
    train.add_argument("--schema", help="Spark DDL schema for CSV input, e.g. 'a DOUBLE, b STRING'")
    train.add_argument("--label")
    train.add_argument("--numeric-features", help="comma-separated column names")
    train.add_argument("--categorical-features", help="comma-separated column names")
    train.add_argument("--exclude", help="comma-separated columns to leave out when features are inferred")
    train.add_argument("--nulls", choices=["drop", "reject"])
    train.add_argument("--train-fraction", type=float)
    train.add_argument("--seed", type=int)
    train.add_argument("--model-type", choices=["logistic_regression", "random_forest", "gbt"])
    train.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="estimator hyperparameter")
    train.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE", help="extra run tag")
    train.add_argument("--run-name")
    train.add_argument("--registered-model-name")
    train.add_argument("--no-register", action="store_true", help="track the run but register no model")
    train.add_argument("--run-key", help="idempotency key, e.g. the Synapse pipeline run id")
    train.add_argument("--force", action="store_true", help="train again even if the run key already finished")
    train.add_argument("--output", help="also write the JSON summary to this file")

    check = commands.add_parser("check", help="check config, credentials, tracking server and registry, then exit")
    _add_common(check)
    check.add_argument("--registered-model-name")

    score = commands.add_parser("score", help="batch-score data with a registered model")
    _add_common(score)
    scoring.add_arguments(score)

    report_parser = commands.add_parser("report", help="compare an experiment's runs: CSV, Markdown and a plot")
    _add_common(report_parser)
    report.add_arguments(report_parser)

    deploy_parser = commands.add_parser("deploy", help="build the wheel and publish jobs and pipeline to a Synapse workspace")
    deploy.add_arguments(deploy_parser)
    deploy_parser.set_defaults(log_level="INFO", debug=False)
    return parser


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for dest, dotted in TRAIN_FLAGS.items():
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
    # --set is the most specific: applied last.
    for assignment in args.set:
        name, value = parse_assignment(assignment)
        set_dotted(overrides, name, value)
    return overrides


def load_config(args: argparse.Namespace) -> JobConfig:
    return build_config(config_path=args.config, overrides=overrides_from_args(args), read_remote=read_remote_text)


def read_remote_text(path: str) -> str:
    """A config file on the cluster's storage (abfss://, wasbs://...), read through Spark."""
    from synapse_ml_track.spark import get_or_create_spark

    rows = get_or_create_spark("synapse-ml-track").read.text(path, wholetext=True).collect()
    return rows[0][0] if rows else ""


def configure_logging(level: str, redactor: Redactor) -> None:
    # MLflow would otherwise reset logging when first imported and draw progress bars in job logs.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A job talks to its tracking server only: no usage telemetry to MLflow's own endpoint.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("synapse_ml_track").setLevel(level)
    for noisy in ("py4j", "azure", "urllib3", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.ERROR if level != "DEBUG" else logging.DEBUG)
    redactor.install(root)


def cmd_train(args: argparse.Namespace, redactor: Redactor) -> int:
    from synapse_ml_track.session import open_session
    from synapse_ml_track.spark import get_or_create_spark
    from synapse_ml_track.training import run_training

    config = load_config(args)
    log.debug("configuration: %s", json.dumps(redacted(config.to_dict())))
    session = open_session(config, redactor)
    spark = get_or_create_spark("synapse-ml-track-train")
    result = run_training(spark, config, session, redactor)
    summary = result.summary()
    print(f"run id:          {result.run_id} (experiment {result.experiment_id})")
    print(f"tracking URI:    {result.tracking_uri}")
    if result.model_version:
        print(f"registered:      {result.registered_model_name} version {result.model_version}")
    elif result.reason:
        print(f"not registered:  {result.reason}")
    print(f"accuracy / f1:   {result.metrics.get('accuracy', float('nan')):.4f} / {result.metrics.get('f1', float('nan')):.4f}")
    print(f"local results:   {result.local_result_dir}")
    if result.tracking_uri and result.tracking_uri.startswith("sqlite:"):
        print(f"browse:          mlflow ui --backend-store-uri {result.tracking_uri}")
    write_summary(summary, config.output)
    return 0


def cmd_check(args: argparse.Namespace, redactor: Redactor) -> int:
    from synapse_ml_track.session import open_session

    config = load_config(args)
    session = open_session(config, redactor)
    if session.credential_source:
        print(f"ok: Azure AD token acquired with the {session.credential_source} credential")
    print(f"ok: tracking server {session.uri} answers; experiment {session.experiment_id} is readable")
    if config.tracking.register:
        print(f"ok: model registry is readable (model name {config.tracking.registered_model_name})")
    return 0


def write_summary(summary: dict[str, Any], output: str | None) -> None:
    line = json.dumps(summary, sort_keys=True)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(line + "\n")
    print(line, flush=True)


COMMANDS: dict[str, Callable[[argparse.Namespace, Redactor], int]] = {
    "train": cmd_train,
    "check": cmd_check,
    "score": scoring.cmd_score,
    "report": report.cmd_report,
    "deploy": lambda args, redactor: deploy.run(args),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    redactor = Redactor()
    configure_logging(args.log_level, redactor)
    try:
        return COMMANDS[args.command](args, redactor)
    except JobError as exc:
        print(f"error: {redactor.redact(str(exc))}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one readable line, traceback on request
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}: {redactor.redact(first)[:500]}", file=sys.stderr)
        if args.debug:
            import traceback

            print(redactor.redact(traceback.format_exc()), file=sys.stderr)
        else:
            print("(run again with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
