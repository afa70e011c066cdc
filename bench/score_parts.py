"""What each part of `score`'s query costs per row: variants of the scoring query, written in turn.

    python bench/score_parts.py MODEL_DIR INPUT_PARQUET [--reps N] [--explain]

One SparkSession (the settings of bench/score.py), the model loaded once from MODEL_DIR (a
downloaded MLflow Spark model), then each variant's output written as Parquet, the variants
interleaved (the order alternates) after an unmeasured warm-up of each:
  minimal     dropna, transform, the input's columns and the prediction (bench/plain_score.py)
  careful     minimal plus one probability column per class (one vector_to_array per row)
  score       scoring.score_frame as `score` runs it (every row kept: stand-ins, reasons,
              lineage literals, two observations)
  score-no-observations   the same without the observations
Prints the median seconds of each variant and the differences that price one item each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent)]

from pyspark.ml.functions import vector_to_array  # noqa: E402
from pyspark.sql import DataFrame, SparkSession  # noqa: E402

from synapse_ml_track import scoring  # noqa: E402
from synapse_ml_track.pipeline import class_labels, predictor  # noqa: E402

VARIANTS = ("minimal", "careful", "score", "score-no-observations")


def plain(frame: DataFrame, model, columns: list[str], careful: bool) -> DataFrame:
    scores = model.transform(frame.dropna(subset=columns))
    outputs = [*[frame[c] for c in frame.columns], "prediction"]
    if careful:
        scores = scores.withColumn("probabilities", vector_to_array(predictor(model).getProbabilityCol()))
        labels = class_labels(model)
        outputs += [scores["probabilities"][i].alias(f"probability_{label}") for i, label in enumerate(labels)]
    return scores.select(*outputs)


def ours(frame: DataFrame, model, columns: list[str], observe: bool) -> DataFrame:
    ref = scoring.ModelRef("bench-score", "1", "0" * 32)
    original = DataFrame.observe
    if not observe:
        DataFrame.observe = lambda self, *_: self  # type: ignore[method-assign]
    try:
        scored, _ = scoring.score_frame(
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
    parser.add_argument("--explain", action="store_true", help="print each variant's physical plan and stop")
    args = parser.parse_args()
    from mlflow.models import get_model_info
    from pyspark.ml import PipelineModel

    spark = SparkSession.builder.appName("score-parts").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    model = PipelineModel.load(str(Path(args.model_dir) / "sparkml"))
    frame = spark.read.parquet(args.input)
    columns = scoring.signature_columns(frame.schema, get_model_info(args.model_dir).signature, "bench")
    build = {
        "minimal": lambda: plain(frame, model, columns, careful=False),
        "careful": lambda: plain(frame, model, columns, careful=True),
        "score": lambda: ours(frame, model, columns, observe=True),
        "score-no-observations": lambda: ours(frame, model, columns, observe=False),
    }
    if args.explain:
        for name in VARIANTS:
            print(f"== {name}")
            build[name]().explain()
        return
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as out:
        for rep in range(-1, args.reps):
            for name in VARIANTS if rep % 2 == 0 else tuple(reversed(VARIANTS)):
                started = time.perf_counter()
                build[name]().write.mode("overwrite").parquet(f"{out}/{name}")
                if rep >= 0:
                    seconds[name].append(time.perf_counter() - started)
                    print(f"rep {rep + 1}  {name:<22} {seconds[name][-1]:6.2f} s", flush=True)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print("| variant | median s | min–max s |")
    print("| --- | ---: | :---: |")
    for name in VARIANTS:
        print(f"| {name} | {median[name]:.2f} | {min(seconds[name]):.2f}–{max(seconds[name]):.2f} |")
    print(f"probability columns (careful − minimal): {median['careful'] - median['minimal']:+.2f} s")
    print(
        f"reasons, stand-ins, lineage (score without observations − careful): "
        f"{median['score-no-observations'] - median['careful']:+.2f} s"
    )
    print(f"observations (score − score without): {median['score'] - median['score-no-observations']:+.2f} s")
    spark.stop()


if __name__ == "__main__":
    main()
