"""Delta Lake on a local session: the pinned jars, where they live, and the settings that turn Delta on.

A Synapse pool (Spark 3.5 runtime) ships Delta Lake 3.2.1 with both settings already made; a laptop
or a test run needs the jars, fetched by `make delta-jars` (tools/fetch_delta_jars.py) into .jars/.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

DELTA_VERSION = "3.2.1"  # the release the Synapse Spark 3.5 runtime ships


@dataclass(frozen=True)
class Jar:
    coordinate: str  # group:artifact:version on Maven Central
    sha256: str  # of the file on Maven Central (its published .sha1 checked too when pinned)

    @property
    def file_name(self) -> str:
        _, artifact, version = self.coordinate.split(":")
        return f"{artifact}-{version}.jar"


# delta-spark's only other dependency, antlr4-runtime 4.9.3, is one of Spark's own jars.
JARS = (
    Jar(
        f"io.delta:delta-spark_2.12:{DELTA_VERSION}",
        "088e187da689a347a6a8556dcb22318e3dfcfb995d807f5e2c19b4d0a7ee9499",
    ),
    Jar(
        f"io.delta:delta-storage:{DELTA_VERSION}",
        "4dcc179fc4076bda5060a4038f979c53e1f5916cf04971e28f9441db390763c7",
    ),
)
EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
SESSION_CONF = {
    "spark.sql.extensions": EXTENSION,
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
LOCAL_TUNING = {
    # Delta's defaults are sized for a cluster: a table's snapshot state rebuilt in 50 partitions, and
    # VACUUM listing files in spark.sql.sources.parallelPartitionDiscovery.parallelism (10000) tasks.
    # A local session's tables are small: VACUUM of a two-commit table took 198 s with the defaults,
    # 15 s with these (local[1], under load).
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "1",
}
JARS_DIR_VARIABLE = "SMT_DELTA_JARS"
MISSING = (
    "Delta Lake is not on this Spark session's classpath: run `make delta-jars` (fetches the pinned "
    f"delta-spark_2.12 and delta-storage {DELTA_VERSION} jars into .jars/) or set {JARS_DIR_VARIABLE} to a "
    "directory holding them; a Synapse pool has Delta already"
)


def jars_dir() -> Path:
    """SMT_DELTA_JARS, else the checkout's .jars/ (where `make delta-jars` puts them)."""
    configured = os.environ.get(JARS_DIR_VARIABLE)
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / ".jars"


def local_jars() -> list[str] | None:
    """The pinned jars' paths when all of them are in jars_dir(), else None."""
    paths = [jars_dir() / jar.file_name for jar in JARS]
    return [str(path) for path in paths] if all(path.is_file() for path in paths) else None


def local_session_conf() -> dict[str, str]:
    """The settings that put Delta on a session this package starts locally, sized for a laptop's tables;
    none without the jars. A pool's or spark-submit's session keeps Delta's own defaults."""
    jars = local_jars()
    return {"spark.jars": ",".join(jars), **SESSION_CONF, **LOCAL_TUNING} if jars else {}


def has_delta(spark: SparkSession) -> bool:
    return EXTENSION in (spark.conf.get("spark.sql.extensions", "") or "")
