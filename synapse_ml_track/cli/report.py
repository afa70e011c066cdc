"""`synapse-ml-track report`: an experiment's training runs side by side: CSV, Markdown and a plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from synapse_ml_track.cli.common import add_common, add_output, load_config, write_summary


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("report", help="compare an experiment's runs: CSV, Markdown and a plot")
    add_common(parser)
    parser.add_argument(
        "--experiment", dest="experiment_name", help="experiment to report on (same as --experiment-name)"
    )
    parser.add_argument(
        "--metric",
        help="metric to rank and plot the runs by (default: the gate's metric for the runs' task: "
        "gate.champion_metric, f1 for a classification, rmse for a regression)",
    )
    parser.add_argument("--model-name", dest="registered_model_name", help="registered model whose versions to show")
    parser.add_argument("--output-dir", default="report", help="where to write runs.csv, runs.md and <metric>.png")
    parser.add_argument("--max-runs", type=positive_int, default=100, help="at most this many runs, newest first")
    add_output(parser)
    parser.set_defaults(run=run)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from synapse_ml_track.entrypoint import set_global_tracking_uri
    from synapse_ml_track.tracking.report import connect, runs_report, write_report

    config = load_config(args)
    uri, client, experiment = connect(config, args.redactor)
    set_global_tracking_uri(uri)
    report = runs_report(client, experiment, config, args.max_runs, args.metric)
    summary = {**write_report(report, Path(args.output_dir)).summary(), "tracking_uri": uri}
    print(Path(summary["files"]["markdown"]).read_text(encoding="utf-8"))
    print(f"best run:        {summary['best_run_id']} ({summary['metric']} {summary['best_value']:.4f})")
    print(f"written:         {', '.join(summary['files'].values())}")
    write_summary(summary, config.output)
    return 0
