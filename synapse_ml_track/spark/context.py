"""Where a run came from: package, Spark, git commit, Synapse workspace, pool and job."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pyspark.sql import SparkSession

import synapse_ml_track
from synapse_ml_track.vocabulary import PACKAGE_VERSION_TAG, RUN_KEY_TAG, SPARK_VERSION_TAG

# Spark conf keys recorded as run tags: where the job ran (the master), and the keys Synapse sets
# on its pools (absent locally).
SYNAPSE_CONF_TAGS = {
    "spark.master": "spark.master",
    "spark.synapse.workspace.name": "synapse.workspace",
    "spark.synapse.pool.name": "synapse.pool",
    "spark.app.id": "spark.app_id",
}


def git_commit() -> str | None:
    """The commit of the checkout the package runs from, or SMT_GIT_COMMIT (set by deploy)."""
    if os.environ.get("SMT_GIT_COMMIT"):
        return os.environ["SMT_GIT_COMMIT"]
    package_dir = Path(synapse_ml_track.__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(package_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def run_tags(spark: SparkSession, run_key: str | None) -> dict[str, str]:
    tags = {
        PACKAGE_VERSION_TAG: synapse_ml_track.__version__,
        SPARK_VERSION_TAG: spark.version,
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    conf = spark.sparkContext.getConf()
    for key, tag in SYNAPSE_CONF_TAGS.items():
        value = conf.get(key, None)
        if value:
            tags[tag] = value
    if run_key:
        tags[RUN_KEY_TAG] = run_key
    return tags
