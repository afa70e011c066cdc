"""The baselines `score` is measured against: what a user writes by hand to batch-score a model.

    python bench/plain_score.py MODEL_URI INPUT_PARQUET OUTPUT_PATH [FORMAT MODE] [--careful] [--lineage]

Read, drop the rows with a null model input (the assembler refuses them), load the registered model,
transform, write (Parquet, overwrite unless FORMAT and MODE say otherwise, e.g. `delta append`): no
checks, no counts, no tracking run. The minimal script writes the input's columns and the
prediction; the careful one (--careful) also one probability column per class, as `score` does,
from one `vector_to_array` per row. --lineage (implies --careful) adds the other columns `score`
writes on every row, as literals: a null `unscorable_reason`, `model_name` and `model_version` (from
the URI: the registered name and its version or alias as given), `model_run_id` (from the model's
MLmodel file) and `scored_at`; so the output has score's columns, in score's order.
"""

import sys
from datetime import datetime, timezone

import mlflow.spark
from mlflow.models import get_model_info
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def lineage_columns(model_uri: str, run_id: str | None) -> list:
    """score's reason and lineage columns, as literals (a models:/NAME/VERSION URI gives the first two)."""
    name, _, version = model_uri.removeprefix("models:/").partition("/")
    return [
        F.lit(None).cast("string").alias("unscorable_reason"),
        F.lit(name).alias("model_name"),
        F.lit(version).alias("model_version"),
        F.lit(run_id).cast("string").alias("model_run_id"),
        F.lit(datetime.now(timezone.utc)).alias("scored_at"),
    ]


def main(
    model_uri: str, input_path: str, output_path: str, fmt: str = "parquet", mode: str = "overwrite",
    careful: bool = False, lineage: bool = False,
) -> None:  # fmt: skip
    spark = SparkSession.builder.appName("plain-score").getOrCreate()
    frame = spark.read.parquet(input_path)
    info = get_model_info(model_uri)
    inputs = info.signature.inputs.input_names()
    model = mlflow.spark.load_model(model_uri)
    scores = model.transform(frame.dropna(subset=inputs))
    outputs = [*[frame[c] for c in frame.columns], "prediction"]
    if careful or lineage:
        classifier, decoder = model.stages[-2:]  # the pipeline ends with the classifier and an IndexToString
        scores = scores.withColumn("probabilities", vector_to_array(classifier.getProbabilityCol()))
        outputs += [
            scores["probabilities"][i].alias(f"probability_{label}") for i, label in enumerate(decoder.getLabels())
        ]
    if lineage:
        outputs += lineage_columns(model_uri, info.run_id)
    scores.select(*outputs).write.format(fmt).mode(mode).save(output_path)
    spark.stop()


if __name__ == "__main__":
    flags = ("--careful", "--lineage")
    positional = [arg for arg in sys.argv[1:] if arg not in flags]
    main(*positional[:5], careful="--careful" in sys.argv[1:], lineage="--lineage" in sys.argv[1:])
