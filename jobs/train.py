"""Spark job entry point for training: `spark-submit jobs/train.py [flags]` or a Synapse job definition."""

import sys

from synapse_ml_track.cli import run

if __name__ == "__main__":
    run(["train", *sys.argv[1:]])
