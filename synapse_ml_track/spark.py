"""The SparkSession: the pool's own on Synapse or under spark-submit, a local one on a laptop."""

from __future__ import annotations

from pyspark import SparkConf
from pyspark.sql import SparkSession

# Only for sessions this package starts itself (no spark-submit, no Synapse pool).
LOCAL_DEFAULTS = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "4g",
    "spark.sql.session.timeZone": "UTC",
}


def get_or_create_spark(app_name: str) -> SparkSession:
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName(app_name)
    if not SparkConf().contains("spark.master"):
        builder = builder.master("local[*]")
        for key, value in LOCAL_DEFAULTS.items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
