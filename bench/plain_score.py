"""The baseline `score` is measured against: what a user writes by hand to batch-score a model.

    python bench/plain_score.py MODEL_URI INPUT_PARQUET OUTPUT_PATH [FORMAT MODE]

Read, drop the rows with a null model input (the assembler refuses them), load the registered model,
transform, write (Parquet, overwrite unless FORMAT and MODE say otherwise, e.g. `delta append`):
no checks, no counts, no tracking run.
"""

import sys

import mlflow.spark
from mlflow.models import get_model_info
from pyspark.sql import SparkSession


def main(model_uri: str, input_path: str, output_path: str, fmt: str = "parquet", mode: str = "overwrite") -> None:
    spark = SparkSession.builder.appName("plain-score").getOrCreate()
    frame = spark.read.parquet(input_path)
    inputs = get_model_info(model_uri).signature.inputs.input_names()
    model = mlflow.spark.load_model(model_uri)
    scores = model.transform(frame.dropna(subset=inputs)).select(*[frame[c] for c in frame.columns], "prediction")
    scores.write.format(fmt).mode(mode).save(output_path)
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:6])
