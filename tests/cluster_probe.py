"""Submitted by tests/test_cluster.py: where the driver and each executor's Python worker import
synapse_ml_track from, and what they run on. Prints one JSON line.

One barrier task per executor (each has one core, so the stage needs both at once): every
executor answers, each from its own Python worker.
"""

import json
import os
import sys

from pyspark.sql import SparkSession


def where() -> dict:
    from importlib import resources

    try:
        import synapse_ml_track
    except ImportError as exc:
        return {"error": repr(exc), "pid": os.getpid(), "cwd": os.getcwd()}
    data = resources.files("synapse_ml_track").joinpath("data", "penguins.csv").read_bytes()
    return {
        "package": synapse_ml_track.__file__,
        "data_bytes": len(data),
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "executable": sys.executable,
        "no_site": bool(sys.flags.no_site),
        "editable_finder": any("__editable__" in repr(finder) for finder in sys.meta_path),
    }


if __name__ == "__main__":
    spark = SparkSession.builder.appName("cluster-probe").getOrCreate()
    context = spark.sparkContext
    tasks = context.parallelize(range(2), 2).barrier().mapPartitions(lambda _: [where()]).collect()
    print(json.dumps({"app_id": context.applicationId, "driver": where(), "executors": tasks}))
    spark.stop()
