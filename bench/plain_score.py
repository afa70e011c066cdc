"""The baselines `score` is measured against: what a user writes by hand to batch-score a model.

    python bench/plain_score.py MODEL_URI INPUT_PARQUET OUTPUT_PATH [FORMAT MODE] [--careful]

Read, drop the rows with a null model input (the assembler refuses them), load the registered model,
transform, write (Parquet, overwrite unless FORMAT and MODE say otherwise, e.g. `delta append`): no
checks, no counts, no tracking run. The minimal script writes the input's columns and the
prediction; the careful one (--careful) also one probability column per class, as `score` does,
from one `vector_to_array` per row.
"""

import sys

import mlflow.spark
from mlflow.models import get_model_info
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession


def main(
    model_uri: str, input_path: str, output_path: str, fmt: str = "parquet", mode: str = "overwrite",
    careful: bool = False,
) -> None:  # fmt: skip
    spark = SparkSession.builder.appName("plain-score").getOrCreate()
    frame = spark.read.parquet(input_path)
    inputs = get_model_info(model_uri).signature.inputs.input_names()
    model = mlflow.spark.load_model(model_uri)
    scores = model.transform(frame.dropna(subset=inputs))
    outputs = [*[frame[c] for c in frame.columns], "prediction"]
    if careful:
        classifier, decoder = model.stages[-2:]  # the pipeline ends with the classifier and an IndexToString
        scores = scores.withColumn("probabilities", vector_to_array(classifier.getProbabilityCol()))
        outputs += [
            scores["probabilities"][i].alias(f"probability_{label}") for i, label in enumerate(decoder.getLabels())
        ]
    scores.select(*outputs).write.format(fmt).mode(mode).save(output_path)
    spark.stop()


if __name__ == "__main__":
    positional = [arg for arg in sys.argv[1:] if arg != "--careful"]
    main(*positional[:5], careful="--careful" in sys.argv[1:])
