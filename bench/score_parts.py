"""What each part of `score`'s query costs per row: variants of the scoring query, written in turn.

    python bench/score_parts.py MODEL_DIR INPUT_PARQUET [--reps N] [--explain]

One SparkSession (the settings of bench/score.py), the model loaded once from MODEL_DIR (a
downloaded MLflow Spark model), then each variant's output written as Parquet, the variants
interleaved (the order alternates) after one unmeasured warm-up write:
  minimal     dropna, transform, the input's columns and the prediction (bench/plain_score.py)
  careful     minimal plus one probability column per class (one vector_to_array per row)
  careful-with-lineage    careful plus the columns `score` adds to every row (a null reason and the
              model's lineage), as literals: what the wider output costs to write
  score       scoring.score_frame as `score` runs it (every row kept: stand-ins, reasons,
              lineage literals, two observations)
  score-no-observations   the same without the observations
  score-before            with --before OLD_SCORING_PY: that file's score_frame (an earlier scoring.py),
                          to compare two versions in one session
Prints, per variant, the median wall seconds and the median CPU seconds of its tasks (from the Spark
event log: CPU time, unlike wall time, hardly grows when other processes share the cores), and the
differences that price one item each.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH)]  # the package: installed, or PYTHONPATH (a checkout to compare)

from pyspark.ml.functions import vector_to_array  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from synapse_ml_track.spark import scoring  # noqa: E402
from synapse_ml_track.spark.pipeline import class_labels, predictor  # noqa: E402

from eventlog import events  # noqa: E402


def plain(frame: DataFrame, model, columns: list[str], careful: bool, lineage: bool = False) -> DataFrame:
    scores = model.transform(frame.dropna(subset=columns))
    outputs = [*[frame[c] for c in frame.columns], "prediction"]
    if careful:
        scores = scores.withColumn("probabilities", vector_to_array(predictor(model).getProbabilityCol()))
        labels = class_labels(model)
        outputs += [scores["probabilities"][i].alias(f"probability_{label}") for i, label in enumerate(labels)]
    if lineage:  # the columns `score` adds to every row, as the same literals: what the wider output costs
        outputs += [
            F.lit(None).cast("string").alias(scoring.UNSCORABLE_REASON),
            F.lit("bench-score").alias("model_name"),
            F.lit("1").alias("model_version"),
            F.lit("0" * 32).alias("model_run_id"),
            F.lit(datetime.now(timezone.utc)).alias("scored_at"),
        ]
    return scores.select(*outputs)


def ours(frame: DataFrame, model, columns: list[str], observe: bool, module=scoring) -> DataFrame:
    ref = module.ModelRef("bench-score", "1", "0" * 32)
    original = DataFrame.observe
    if not observe:
        DataFrame.observe = lambda self, *_: self  # type: ignore[method-assign]
    try:
        scored, _ = module.score_frame(
            frame, columns, model, class_labels(model), ref, datetime.now(timezone.utc), False
        )
        return scored
    finally:
        DataFrame.observe = original  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("input")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--before", type=Path, help="an earlier scoring.py, run as the variant score-before")
    parser.add_argument("--explain", action="store_true", help="print each variant's physical plan and stop")
    args = parser.parse_args()
    from mlflow.models import get_model_info
    from pyspark.ml import PipelineModel

    with tempfile.TemporaryDirectory() as work:
        events_dir = Path(work) / "events"
        events_dir.mkdir()
        spark = (
            SparkSession.builder.appName("score-parts")
            .config("spark.eventLog.enabled", "true")
            .config("spark.eventLog.dir", events_dir.as_uri())
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        model = PipelineModel.load(str(Path(args.model_dir) / "sparkml"))
        frame = spark.read.parquet(args.input)
        columns = scoring.signature_columns(frame.schema, get_model_info(args.model_dir).signature, "bench")
        build = {
            "minimal": lambda: plain(frame, model, columns, careful=False),
            "careful": lambda: plain(frame, model, columns, careful=True),
            "careful-with-lineage": lambda: plain(frame, model, columns, careful=True, lineage=True),
            "score": lambda: ours(frame, model, columns, observe=True),
            "score-no-observations": lambda: ours(frame, model, columns, observe=False),
        }
        if args.before:
            spec = importlib.util.spec_from_file_location("scoring_before", args.before)
            before = sys.modules["scoring_before"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
            spec.loader.exec_module(before)
            build["score-before"] = lambda: ours(frame, model, columns, observe=True, module=before)
        variants = tuple(build)
        if args.explain:
            for name in variants:
                print(f"== {name}")
                build[name]().explain()
            return
        intervals = []
        build["minimal"]().write.mode("overwrite").parquet(f"{work}/out-warm-up")  # JIT, file cache; unmeasured
        for rep in range(args.reps):
            for name in variants if rep % 2 == 0 else tuple(reversed(variants)):
                started = time.time()
                build[name]().write.mode("overwrite").parquet(f"{work}/out-{name}")
                intervals.append((name, started, time.time()))
                print(f"rep {rep + 1}  {name:<22} {intervals[-1][2] - started:6.2f} s", flush=True)
        spark.stop()  # flushes the event log
        cpu = task_cpu(events_dir, intervals)
    report(variants, intervals, cpu)


def task_cpu(event_dir: Path, intervals: list[tuple[str, float, float]]) -> list[float]:
    """The CPU seconds of the tasks of the jobs submitted within each interval."""
    job_of_stage, interval_of_job = {}, {}
    cpu: dict[int, float] = defaultdict(float)
    for event in events(event_dir):
        if event["Event"] == "SparkListenerJobStart":
            submitted = event["Submission Time"] / 1000
            index = next((i for i, (_, a, b) in enumerate(intervals) if a <= submitted <= b), None)
            interval_of_job[event["Job ID"]] = index
            job_of_stage.update({stage: event["Job ID"] for stage in event["Stage IDs"]})
        elif event["Event"] == "SparkListenerTaskEnd":
            index = interval_of_job.get(job_of_stage.get(event["Stage ID"]))
            if index is not None:
                cpu[index] += (event.get("Task Metrics") or {}).get("Executor CPU Time", 0) / 1e9
    return [cpu[i] for i in range(len(intervals))]


def report(variants: tuple[str, ...], intervals: list[tuple[str, float, float]], cpu: list[float]) -> None:
    wall = {name: [b - a for n, a, b in intervals if n == name] for name in variants}
    used = {name: [c for (n, _, _), c in zip(intervals, cpu, strict=True) if n == name] for name in variants}
    median = {name: statistics.median(used[name]) for name in variants}
    print("| variant | wall s (median, min–max) | task CPU s (median, min–max) |")
    print("| --- | :---: | :---: |")
    for name in variants:
        w, c = wall[name], used[name]
        print(
            f"| {name} | {statistics.median(w):.2f} ({min(w):.2f}–{max(w):.2f}) "
            f"| {median[name]:.2f} ({min(c):.2f}–{max(c):.2f}) |"
        )
    print(f"probability columns (careful − minimal): {median['careful'] - median['minimal']:+.2f} CPU s")
    print(
        "the reason and lineage columns, written as literals (careful with lineage − careful): "
        f"{median['careful-with-lineage'] - median['careful']:+.2f} CPU s"
    )
    print(
        "every row kept: stand-ins and reasons (score without observations − careful with lineage): "
        f"{median['score-no-observations'] - median['careful-with-lineage']:+.2f} CPU s"
    )
    print(f"observations (score − score without): {median['score'] - median['score-no-observations']:+.2f} CPU s")
    if "score-before" in median:
        print(f"this scoring.py against the earlier one: {median['score'] - median['score-before']:+.2f} CPU s")


if __name__ == "__main__":
    main()
