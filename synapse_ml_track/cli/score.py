"""`synapse-ml-track score`: batch-score data with a registered model."""

from __future__ import annotations

import argparse

from synapse_ml_track.cli.common import add_common, add_output, config_of, write_summary
from synapse_ml_track.errors import DriftDetected
from synapse_ml_track.vocabulary import INPUT_FORMATS, OUTPUT_FORMATS, UNSCORABLE_POLICIES, WRITE_MODES


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("score", help="batch-score data with a registered model")
    add_common(parser)
    parser.add_argument(
        "--model-uri",
        help="models:/NAME/VERSION, models:/NAME/latest, models:/NAME@ALIAS, models:/NAME (its latest version) or "
        "runs:/RUN_ID/PATH; default: models:/<tracking.registered_model_name>@<gate.champion_alias>",
    )
    parser.add_argument("--input", help="CSV, Parquet or Delta path to score (default: the bundled penguins data)")
    parser.add_argument("--input-table", help="catalog table to score, [database.]table")
    parser.add_argument("--format", choices=INPUT_FORMATS, help="input format (default: from the path)")
    output = parser.add_mutually_exclusive_group(required=True)
    output.add_argument("--output-path", help="where to write the scores")
    output.add_argument("--output-table", help="catalog table to write the scores to, [database.]table (Delta)")
    parser.add_argument(
        "--output-format",
        choices=OUTPUT_FORMATS,
        help="default: delta where the Spark session has Delta Lake, else parquet",
    )
    parser.add_argument(
        "--mode",
        choices=WRITE_MODES,
        default="errorifexists",
        help="when the output exists; on Delta, append/overwrite/merge write once per --run-key",
    )
    parser.add_argument("--merge-key", help="--mode merge: the column naming a row (updated if seen, or inserted)")
    parser.add_argument(
        "--evolve-schema", action="store_true",
        help="Delta append/merge: add columns the table lacks (a model with other classes) instead of refusing",
    )  # fmt: skip
    parser.add_argument(
        "--partition-by", metavar="COL[,COL]", help="partition the output by these columns (input or output columns)"
    )
    parser.add_argument(
        "--replace-where", metavar="EXPR",
        help="Delta, with --mode overwrite: score the input rows matching this SQL predicate and replace those rows "
        "of the output (one day's partition, e.g. \"day = '2026-12-05'\")",
    )  # fmt: skip
    parser.add_argument(
        "--unscorable", choices=UNSCORABLE_POLICIES, default="keep",
        help="rows with a null model input: keep them with a null prediction and a reason (default), drop them, "
        "or reject the input (one extra pass to look)",
    )  # fmt: skip
    parser.add_argument(
        "--run-key", help="idempotency key of the pipeline run: a run tag; a Delta output is written once per key"
    )
    parser.add_argument(
        "--incremental", action="store_true",
        help="Delta input with its Change Data Feed: score only the rows changed since the last scoring into this "
        "output, upserted on --merge-key (data.incremental)",
    )  # fmt: skip
    parser.add_argument(
        "--fail-on-drift", action="store_true",
        help="exit 7 after writing the scores when a feature's drift (PSI) is at or over drift.fail (drift.fail_job)",
    )  # fmt: skip
    add_output(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from synapse_ml_track import api

    config = config_of(args)
    result = api.score(
        config, model_uri=args.model_uri, output_path=args.output_path, output_table=args.output_table,
        output_format=args.output_format, mode=args.mode, merge_key=args.merge_key,
        evolve_schema=args.evolve_schema, partition_by=args.partition_by, replace_where=args.replace_where,
        unscorable=args.unscorable, redactor=args.redactor,
    )  # fmt: skip
    summary = result.summary()
    print(f"run id:          {summary['run_id']} (experiment {summary['experiment_id']})")
    described = f"{summary['model_name']} version {summary['model_version']}" if summary["model_name"] else ""
    print(f"model:           {described or summary['model_uri']} (run {summary['model_run_id']})")
    if summary["status"] == "already-written":
        print(f"scored:          nothing written: run key {config.run_key} wrote these scores before")
    else:
        print(
            f"scored:          {summary['rows_scored']} of {summary['rows_in']} rows; "
            f"{summary['rows_unscorable']} with a null model input ({summary['unscorable']})"
        )
        unseen = ", ".join(f"{name} {count}" for name, count in summary["rows_unseen"].items() if count)
        if unseen:
            print(f"unseen:          rows with a category not seen in training, scored as unknown: {unseen}")
    written = f", version {summary['output_version']}" if summary.get("output_version") is not None else ""
    print(f"output:          {summary['output_path']} ({summary['output_format']}{written})")
    drift = summary.get("drift")
    if drift:
        thresholds = f"warn {drift['warn']}, fail {drift['fail']}"
        print(f"drift:           {drift['level']}, largest PSI {drift['psi_max']:.3f} ({thresholds})")
    write_summary(summary, config.output)
    if drift and drift["level"] == "fail" and config.drift.fail_job:
        over = [f"{name} (PSI {v['psi']:.2f})" for name, v in drift["features"].items() if v["psi"] >= drift["fail"]]
        raise DriftDetected(
            f"drift at or over drift.fail ({drift['fail']}) in {', '.join(over)}; "
            f"the scores are written (run {summary['run_id']})"
        )
    return 0
