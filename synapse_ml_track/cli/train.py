"""`synapse-ml-track train`: train (or search), evaluate, track and register a Spark ML classifier or regressor."""

from __future__ import annotations

import argparse
import json

from synapse_ml_track.cli.common import add_common, add_output, config_of, log, write_summary
from synapse_ml_track.config import redacted
from synapse_ml_track.vocabulary import (
    EMBEDDED,
    HEADLINE_METRICS,
    INPUT_FORMATS,
    MODEL_TYPE_NAMES,
    TASKS,
    tracking_backend,
)


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("train", help="train, evaluate, track and register a Spark ML model")
    add_common(parser)
    parser.add_argument("--input", help="CSV, Parquet or Delta path (default: the bundled penguins data)")
    parser.add_argument(
        "--input-table",
        help="catalog table to train from, [database.]table (Delta: time travel with data.version / data.timestamp)",
    )
    parser.add_argument("--format", choices=INPUT_FORMATS)
    parser.add_argument("--schema", help="Spark DDL schema for CSV input, e.g. 'a DOUBLE, b STRING'")
    parser.add_argument("--label")
    parser.add_argument("--numeric-features", help="comma-separated column names")
    parser.add_argument("--categorical-features", help="comma-separated column names")
    parser.add_argument("--exclude", help="comma-separated columns to leave out when features are inferred")
    parser.add_argument("--nulls", choices=["drop", "reject"])
    parser.add_argument("--train-fraction", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--task", choices=TASKS, help="classification (default) or regression")
    parser.add_argument(
        "--model-type", choices=MODEL_TYPE_NAMES, help="default: logistic_regression or linear_regression, by task"
    )
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="estimator hyperparameter")
    parser.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE", help="extra run tag")
    parser.add_argument("--run-name")
    parser.add_argument("--registered-model-name")
    parser.add_argument("--no-register", action="store_true", help="track the run but register no model")
    parser.add_argument(
        "--no-compare-to-champion", dest="compare_to_champion", action="store_false", default=None,
        help="promote the registered version to champion without comparing it with the champion",
    )  # fmt: skip
    parser.add_argument("--run-key", help="idempotency key, e.g. the Synapse pipeline run id")
    parser.add_argument("--force", action="store_true", help="train again even if the run key already finished")
    add_output(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from synapse_ml_track import api

    config = config_of(args)
    log.debug("configuration: %s", json.dumps(redacted(config.to_dict())))
    result = api.train(config, redactor=args.redactor)
    print(f"run id:          {result.run_id} (experiment {result.experiment_id})")
    print(f"tracking URI:    {result.tracking_uri}")
    if result.model_version:
        print(f"registered:      {result.registered_model_name} version {result.model_version}")
        if result.promoted is False:
            print(f"not promoted:    {result.reason}")
    elif result.reason:
        print(f"not registered:  {result.reason}")
    metrics = result.metrics
    shown = HEADLINE_METRICS[config.model.task][:2]
    values = " / ".join(f"{metrics.get(name, float('nan')):.4f}" for name in shown)
    print(f"{' / '.join(shown) + ':':<17}{values}")
    print(f"local results:   {result.local_result_dir}")
    if result.tracking_uri and tracking_backend(result.tracking_uri) == EMBEDDED:
        print(f"browse:          mlflow ui --backend-store-uri {result.tracking_uri}")
    write_summary(result.summary(), config.output)
    return 0
