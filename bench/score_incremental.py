"""Benchmark: incremental scoring of a Delta table's changed rows against a full re-score of the table.

    make bench-score-incremental                  # 10,000,000 rows, 1% changed per night, 3 nights
    make bench-score-incremental ARGS="--quick"   # 1,000,000 rows, one night
    make bench-score-incremental ARGS="--help"    # --reps, --rows, --changed

The input is bench/score.py's generated rows with an `id` column, written once as a Delta table with its
Change Data Feed on. The first incremental run (unmeasured) scores the whole table into its output. Then,
each "night" (a repetition), this script changes the input (unmeasured): it updates `--changed`/2 of the
rows, picked at random over the whole table, and inserts as many new ones. Then both cases run, in an order
that alternates, as their own processes with Delta Lake on:
  incremental  score --input <table> --output-path <out> --mode merge --incremental --merge-key id
               --run-key <night>: reads the changes from the Change Data Feed, upserts their scores
  full         score --input <table> --output-path <full> --mode overwrite: every row scored again
Nothing is reported unless, after the last night, both outputs hold the same ids with the same predictions.
Writes the incremental section of bench/results.md (its analysis block is hand-written and kept) and
bench/work/score/incremental/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from functools import partial
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH)]

from synapse_ml_track.spark import delta  # noqa: E402

from score import BIN, SPARK_ARGS, event_counts, parquet_input, run_score_job  # noqa: E402
from score import WORK as SCORE_WORK  # noqa: E402
from score_drift import register_models  # noqa: E402
from score_drift import tracking_uri as drift_tracking_uri  # noqa: E402
from search import library_version, run_meta  # noqa: E402
from sections import analysis_lines, write_analysed_section  # noqa: E402

WORK = SCORE_WORK / "incremental"
MODEL_URI = "models:/bench-drift/1"  # bench/score_drift.py's model, with its training profile
CASES = ("incremental", "full")
TARGET = 0.15  # issue 31: incremental at most 15% of a full scoring's time, 1% changed of 10M rows
START, END = "<!-- scoring-incremental -->", "<!-- /scoring-incremental -->"
ANALYSIS_START, ANALYSIS_END = "<!-- scoring-incremental-analysis -->", "<!-- /scoring-incremental-analysis -->"
TABLE, OUTPUTS = WORK / "input", {"incremental": WORK / "out-incremental", "full": WORK / "out-full"}


def session():
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("bench-score-incremental")
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": "4g",
        **delta.local_session_conf(),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def build_input(spark, rows: int) -> None:
    """The generated rows, numbered, as a Delta table with its Change Data Feed on."""
    from pyspark.sql import functions as F

    shutil.rmtree(WORK, ignore_errors=True)
    frame = spark.read.parquet(str(parquet_input(rows)))
    numbered = frame.withColumn("id", F.monotonically_increasing_id())
    numbered.write.format("delta").option("delta.enableChangeDataFeed", "true").save(str(TABLE))


def change_input(spark, night: int, changed: float) -> dict[str, int]:
    """One night's changes: `changed`/2 of the rows updated (a new body mass), as many inserted."""
    from pyspark.sql import functions as F

    table = spark.read.format("delta").load(str(TABLE))
    count, top = table.select(F.count("*"), F.max("id")).first()
    half = int(count * changed / 2)
    updated = table.sample(fraction=half / count, seed=night).withColumn("body_mass_g", F.col("body_mass_g") + 100)
    inserted = (
        table.sample(fraction=half / count, seed=10_000 + night)
        .drop("id")
        .withColumn("id", F.monotonically_increasing_id() + F.lit(top + 1))
    )
    changes = updated.unionByName(inserted).cache()
    changes.createOrReplaceTempView("night_changes")
    spark.sql(
        f"MERGE INTO delta.`{TABLE}` AS t USING night_changes AS s ON t.id = s.id "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )
    counts = {"updated": updated.count(), "inserted": inserted.count()}
    changes.unpersist()
    return counts


def command(case: str, night: str, summary: Path) -> list[str]:
    write = ["--mode", "merge", "--incremental", "--merge-key", "id", "--run-key", night]
    return [
        str(BIN / "synapse-ml-track"), "score", "--tracking-uri", drift_tracking_uri(),
        "--experiment-name", "bench-incremental", "--model-uri", MODEL_URI, "--input", str(TABLE),
        "--output-path", str(OUTPUTS[case]), "--output-format", "delta",
        *(write if case == "incremental" else ["--mode", "overwrite"]),
        "--log-level", "WARNING", "--output", str(summary),
    ]  # fmt: skip


def measure(case: str, label: str) -> dict:
    run, event_dir, outcome = run_score_job(partial(command, case, label), label, WORK)
    jobs, _, cpu, _ = event_counts(event_dir)
    incremental = outcome.get("incremental") or {}
    return {**run, "jobs": jobs, "task_cpu": cpu, "rows_scored": outcome["rows_scored"], "read": incremental}


def compare_outputs(spark) -> dict[str, int]:
    """Rows in each output, and the ids whose prediction differs or that only one output holds."""
    incremental = spark.read.format("delta").load(str(OUTPUTS["incremental"])).select("id", "prediction")
    full = spark.read.format("delta").load(str(OUTPUTS["full"])).select("id", "prediction")
    joined = incremental.alias("i").join(full.alias("f"), "id", "full_outer")
    differing = joined.where("NOT (i.prediction <=> f.prediction)").count()
    return {"incremental": incremental.count(), "full": full.count(), "differing": differing}


def summarise(rows: int, changed: float, runs: dict[str, list[dict]], nights: list[dict], outputs: dict) -> dict:
    seconds = {case: [run["seconds"] for run in runs[case]] for case in CASES}
    median = {case: statistics.median(seconds[case]) for case in CASES}
    return {
        "rows": rows,
        "changed": changed,
        "reps": len(nights),
        "nights": nights,
        "runs": runs,
        "outputs": outputs,
        "min": {case: min(seconds[case]) for case in CASES},
        "median": median,
        "ratio": median["incremental"] / median["full"],
        "paired": [i / f for i, f in zip(seconds["incremental"], seconds["full"], strict=True)],
        "task_cpu": {case: statistics.median(run["task_cpu"] for run in runs[case]) for case in CASES},
    }


def section(r: dict, meta: dict, analysis: str | None) -> str:
    met = "yes" if r["ratio"] <= TARGET else "no"
    scored = {case: sorted({run["rows_scored"] for run in r["runs"][case]}) for case in CASES}
    nights = ", ".join(f"{n['updated']:,} updated + {n['inserted']:,} inserted" for n in r["nights"])
    lines = [
        START,
        "## Incremental scoring: the changed rows of a Delta table against a full re-score",
        "",
        f"Measured {meta['finished']} by `{meta['command']}` (bench/score_incremental.py, "
        f"{meta['minutes']:.1f} min); a Delta table of {r['rows']:,} generated rows with an `id` and its Change "
        f"Data Feed on; each night {r['changed']:.0%} of its rows changed (half updated at random over the "
        "table, half inserted), then both cases ran as their own processes in an order that alternates; "
        f"whole-process wall time; Spark {' '.join(SPARK_ARGS[:2])} with Delta Lake on. *incremental*: "
        "`score --mode merge --incremental --merge-key id --run-key <night>`; *full*: `score --mode overwrite` "
        "of the whole table, into Delta.",
        "",
        f"- Machine: {meta['machine']}",
        f"- Library: {meta['version']}.",
        f"- Load average (1 min) at start / end: {meta['load_start']:.2f} / {meta['load_end']:.2f}; after each "
        f"measured run: {meta['load_runs']}.",
        f"- Nights: {nights}. Rows scored per run: incremental {', '.join(f'{n:,}' for n in scored['incremental'])}; "
        f"full {', '.join(f'{n:,}' for n in scored['full'])}.",
        f"- After the last night: incremental output {r['outputs']['incremental']:,} rows, full "
        f"{r['outputs']['full']:,}, ids whose prediction differs or that one lacks: {r['outputs']['differing']} "
        "(the benchmark refuses to report otherwise).",
        "",
        "| rows | changed | nights | full min / median s | incremental min / median s | incremental / full "
        "| paired | target | met | task CPU s full / incremental | jobs full / incremental |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | :---: | ---: | :---: |",
        f"| {r['rows']:,} | {r['changed']:.0%} | {r['reps']} | {r['min']['full']:.1f} / {r['median']['full']:.1f} "
        f"| {r['min']['incremental']:.1f} / {r['median']['incremental']:.1f} | **{r['ratio']:.1%}** "
        f"| {', '.join(f'{p:.1%}' for p in r['paired'])} | ≤ {TARGET:.0%} | {met} "
        f"| {r['task_cpu']['full']:.1f} / {r['task_cpu']['incremental']:.1f} "
        f"| {r['runs']['full'][0]['jobs']} / {r['runs']['incremental'][0]['jobs']} |",
        "",
        *analysis_lines(analysis, ANALYSIS_START, ANALYSIS_END),
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows, one night")
    parser.add_argument("--reps", type=int, default=3, help="nights, each measuring both cases (default 3)")
    parser.add_argument("--rows", type=int, default=10_000_000, help="generated rows (default 10,000,000)")
    parser.add_argument("--changed", type=float, default=0.01, help="share of rows changed a night (default 0.01)")
    args = parser.parse_args()
    reps, rows = (1, 1_000_000) if args.quick else (args.reps, args.rows)
    started, load_start, version = time.perf_counter(), os.getloadavg()[0], library_version()
    register_models()
    spark = session()
    try:
        build_input(spark, rows)
        for case in CASES:
            measure(case, f"incremental-{rows}-warmup-{case}")
        runs: dict[str, list[dict]] = {case: [] for case in CASES}
        nights = []
        for night in range(reps):
            nights.append(change_input(spark, night, args.changed))
            for case in CASES if night % 2 == 0 else CASES[::-1]:
                runs[case].append(measure(case, f"incremental-{rows}-{night}-{case}"))
                run = runs[case][-1]
                print(f"night {night + 1}  {case:<11}  {run['seconds']:6.1f} s  load {run['load']:.1f}", flush=True)
        outputs = compare_outputs(spark)
    finally:
        spark.stop()
    if outputs["differing"] or outputs["incremental"] != outputs["full"]:
        raise SystemExit(f"the outputs differ: {outputs}; no report")
    result = summarise(rows, args.changed, runs, nights, outputs)
    meta = run_meta("make bench-score-incremental", started, load_start, version, [*runs["incremental"], *runs["full"]])
    (WORK / "results.json").write_text(json.dumps({"meta": meta, "result": result}, indent=1))
    print(
        write_analysed_section(
            BENCH / "results.md", (START, END), (ANALYSIS_START, ANALYSIS_END), lambda a: section(result, meta, a)
        )
    )


if __name__ == "__main__":
    main()
