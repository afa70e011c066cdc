"""Spark job entry point for batch scoring: `spark-submit jobs/score.py [flags]` or a Synapse job definition."""

import sys

from synapse_ml_track.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
