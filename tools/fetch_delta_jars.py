"""Fetch the pinned Delta Lake jars into a directory and check them against their pinned sha256.

Spark's own Ivy resolution first (`spark.jars.packages`: needs only Java and pyspark, which the
project's venv has); the ordinary Maven client (`mvn dependency:copy`) when Ivy cannot resolve.
A jar whose checksum differs is deleted and the command fails.

    python tools/fetch_delta_jars.py .jars
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from synapse_ml_track.spark.delta import JARS, Jar


def main(target: Path) -> int:
    target.mkdir(parents=True, exist_ok=True)
    missing = [jar for jar in JARS if not _verified(jar, target)]
    if not missing:
        print(f"delta jars: {', '.join(jar.file_name for jar in JARS)} present and verified in {target}")
        return 0
    try:
        _fetch_with_ivy(missing, target)
    except Exception as exc:  # noqa: BLE001 - any failure of Spark's resolution: try Maven next
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        print(f"delta jars: Spark's Ivy resolution failed ({reason}); trying mvn", file=sys.stderr)
        _fetch_with_maven(missing, target)
    bad = [jar for jar in missing if not _verified(jar, target)]
    for jar in bad:
        (target / jar.file_name).unlink(missing_ok=True)
    if bad:
        print(f"error: checksum mismatch or missing file for {', '.join(j.coordinate for j in bad)}", file=sys.stderr)
        return 1
    print(f"delta jars: fetched and verified {', '.join(jar.file_name for jar in missing)} into {target}")
    return 0


def _verified(jar: Jar, target: Path) -> bool:
    path = target / jar.file_name
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == jar.sha256


def _fetch_with_ivy(jars: list[Jar], target: Path) -> None:
    """What spark-submit --packages does: Spark resolves the coordinates into <ivy>/jars at start-up."""
    from pyspark.sql import SparkSession

    ivy = target / "ivy"
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("fetch-delta-jars")
        .config("spark.jars.packages", ",".join(jar.coordinate for jar in jars))
        .config("spark.jars.ivy", str(ivy.resolve()))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.stop()
    for jar in jars:
        group, artifact, version = jar.coordinate.split(":")
        shutil.copyfile(ivy / "jars" / f"{group}_{artifact}-{version}.jar", target / jar.file_name)


def _fetch_with_maven(jars: list[Jar], target: Path) -> None:
    if shutil.which("mvn") is None:
        raise SystemExit("error: Spark could not resolve the Delta jars and mvn is not installed; install Maven")
    with tempfile.TemporaryDirectory() as scratch:
        for jar in jars:
            subprocess.run(
                ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={jar.coordinate}", f"-DoutputDirectory={scratch}"],
                check=True,
                cwd=scratch,
            )
            shutil.copyfile(Path(scratch) / jar.file_name, target / jar.file_name)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".jars")))
