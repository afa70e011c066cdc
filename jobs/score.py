"""Spark job entry point for batch scoring: `spark-submit jobs/score.py [flags]` or a Synapse job definition."""

import sys

from synapse_ml_track.cli import run

if __name__ == "__main__":
    run(["score", *sys.argv[1:]])
