"""A class-data-sharing archive of the classes a job's JVM loads, so each JVM the tests start maps them
instead of parsing and verifying them again.

A Spark driver loads some 15,000 classes before it trains anything. JDK 17 can write those it loaded
to an archive at exit (-XX:ArchiveClassesAtExit) and map that archive at the next start
(-XX:SharedArchiveFile): measured side by side, a `train` job process's JVM burns 14-15 s of CPU
with it against 20-22 s without, and a bare session 3.5-4 s against 6-7 s.

The archive is written once per virtual environment and Java (under the venv, keyed by both), by
one process doing a job's Spark work on the bundled data (WORKLOAD). A JVM whose class path
differs (the test cluster's daemons, a conf directory put first) or a stale archive is refused by the
JVM itself, which then runs as it would without one; its messages about the archive are switched off
(`-Xlog:cds*=off`: they go to stdout, where a job prints its JSON summary). The archive only changes
how the JVM loads the same classes: every job still runs its own JVM from its first line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

QUIET = "-Xlog:cds*=off"
# What a job's JVM does, in one JVM, on both environments' packages (the runtime's MLflow has no local
# store, so no tracking): the job's own local session with Delta, the bundled data read, a pipeline
# fitted, evaluated, saved, loaded and applied, scores written to Delta and parquet and read back.
# The JVM writes the archive only as it exits: closing the gateway's stdin is how pyspark tells it
# to, and waiting for it is waiting for the archive.
WORKLOAD = """
import tempfile
from pyspark import SparkContext
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
from synapse_ml_track.spark import delta
from synapse_ml_track.spark.session import get_or_create_spark
from synapse_ml_track.spark.sources import BUNDLED_PENGUINS_SCHEMA, bundled_penguins_path

spark = get_or_create_spark("jvm-class-archive")
data = spark.read.csv(bundled_penguins_path(), header=True, schema=BUNDLED_PENGUINS_SCHEMA).dropna()
train, test = data.randomSplit([0.8, 0.2], seed=7)
features = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island_vector"]
stages = [
    StringIndexer(inputCol="species", outputCol="label"),
    StringIndexer(inputCol="island", outputCol="island_index"),
    OneHotEncoder(inputCol="island_index", outputCol="island_vector"),
    VectorAssembler(inputCols=features, outputCol="assembled"),
    StandardScaler(inputCol="assembled", outputCol="features"),
]
out = tempfile.mkdtemp()
for estimator in (LogisticRegression(), RandomForestClassifier(numTrees=5)):
    model = Pipeline(stages=[*stages, estimator]).fit(train)
    scored = model.transform(test)
    MulticlassClassificationEvaluator(metricName="f1").evaluate(scored)
    path = f"{out}/{type(estimator).__name__}"
    model.write().overwrite().save(path)
    scored = PipelineModel.load(path).transform(test).drop("assembled", "features", "island_vector")
    scored.write.mode("overwrite").parquet(path + "-scores.parquet")
    if delta.has_delta(spark):
        scored.write.format("delta").mode("overwrite").save(path + "-scores")
        spark.read.format("delta").load(path + "-scores").count()
spark.stop()
SparkContext._gateway.proc.stdin.close()
SparkContext._gateway.proc.wait()
"""


# Every JVM the tests start works on a few hundred rows, so much of its CPU goes on compiling and
# collecting: the C1 compiler alone and the serial collector take a third less CPU per `train` job
# process (42 s to 28 s, measured), and the suite is CPU-bound on two cores.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def jvm_options() -> str:
    """TEST_JVM_OPTIONS, and the archive's options when `make test` has written it (write_archive)."""
    path = archive_path()
    if path is None or not path.is_file():
        return TEST_JVM_OPTIONS
    return f"{TEST_JVM_OPTIONS} -XX:SharedArchiveFile={path} {QUIET}"


def write_archive() -> Path | None:
    """The archive for this environment, written first when it is missing; None when it cannot be
    written (no Java, a workload that fails): the tests then run without it."""
    path = archive_path()
    if path is not None and (path.is_file() or _write(path)):
        return path
    return None


def archive_path() -> Path | None:
    """Where the archive for this interpreter's pyspark jars and this Java belongs."""
    java = shutil.which("java", path=_java_search_path())
    if java is None:
        return None
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar"))
    fingerprint = hashlib.sha256(TEST_JVM_OPTIONS.encode())
    for path in [Path(java).resolve(), *jars]:
        stat = path.stat()
        fingerprint.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return Path(sys.prefix) / "jvm-class-archives" / f"{fingerprint.hexdigest()[:16]}.jsa"


def _write(path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The JVM writes the archive in place, and a JVM that maps a half-written one crashes: written
    # under a name of its own, then renamed, so a concurrent run sees all of it or none.
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial")
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "PYSPARK_"))}
    environ["SPARK_SUBMIT_OPTS"] = f"{TEST_JVM_OPTIONS} -XX:ArchiveClassesAtExit={partial} {QUIET}"
    with tempfile.TemporaryDirectory(prefix="smt-jvm-archive-") as workdir:
        completed = subprocess.run(
            [sys.executable, "-c", WORKLOAD], cwd=workdir, env=environ, capture_output=True, text=True, timeout=600
        )
    if completed.returncode != 0 or not partial.is_file():
        print(f"tests run without a JVM class archive: its job exited {completed.returncode}", file=sys.stderr)
        print(completed.stderr[-2000:], file=sys.stderr)
        partial.unlink(missing_ok=True)
        return False
    os.replace(partial, path)
    return True


def _java_search_path() -> str:
    home = os.environ.get("JAVA_HOME")
    return os.pathsep.join([*([str(Path(home) / "bin")] if home else []), os.environ.get("PATH", "")])


if __name__ == "__main__":
    written = write_archive()
    print(f"JVM class archive: {written or 'none, the tests run without it'}")
