"""Run one scoring case in this process with Python timers around each step, for bench/score.py.

    python bench/timed_score.py TIMINGS_JSON plain|careful|lineage MODEL_URI INPUT OUTPUT [FORMAT MODE]
    python bench/timed_score.py TIMINGS_JSON score SCORE_ARGS...

Writes to TIMINGS_JSON the seconds spent in each item of the run (bench/probe.py timers: nested
calls of one item count once; an item called inside another is taken out of the outer one, so the
items add up to the wall time they cover), the wall-clock interval of each call (to attribute the
Spark event log's jobs to items), and the time from the interpreter's start to this script's first
line (interpreter start-up, before any import of ours). The timers cost microseconds per call and
wrap a few dozen calls. `lineage` is bench/plain_score.py --lineage (score's columns, as literals).

A Delta write by `score` is split into its calls (synapse_ml_track.spark.delta_tables): the
existence check on the file system (`exists`), the history reads (`_commits`: DESCRIBE HISTORY, and
`earlier_write` for a run key), the Delta writer's save (`_write`: the query and the commit), and
the rest of `write_once` (session settings, schema check).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

STARTED = time.time()
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

from probe import Probe  # noqa: E402


def process_start() -> float:
    """When this process started (Linux: /proc/self/stat field 22, in clock ticks after boot)."""
    ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


class Intervals(Probe):
    """A Probe that also keeps each outermost call's (item, start, end) in wall-clock seconds, and
    counts each item's own time: a call of another item inside it is that item's, not its own."""

    def __init__(self) -> None:
        super().__init__()
        self.intervals: list[tuple[str, float, float]] = []
        self.inner: dict[str, float] = {}  # per item, the seconds of other items' calls inside its calls

    def _enter(self, keys):
        opened = super()._enter(keys)
        self._local.started = getattr(self._local, "started", {})
        self._local.stack = getattr(self._local, "stack", [])
        for key in opened:
            self._local.started[key] = time.time()
            self._local.stack.append(key)
        return opened

    def _exit(self, keys, opened, elapsed):
        super()._exit(keys, opened, elapsed)
        for key in opened:
            self.intervals.append((key, self._local.started.pop(key), time.time()))
            self._local.stack.remove(key)
            if self._local.stack:
                outer = self._local.stack[-1]
                with self._lock:
                    self.inner[outer] = self.inner.get(outer, 0.0) + elapsed

    def idle(self, *_) -> bool:
        """Whether no item is open in this thread (a `when` for calls that belong to whichever item makes them)."""
        return not getattr(self._local, "stack", None)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {key: seconds - self.inner.get(key, 0.0) for key, seconds in self.seconds.items()}


def wrap_plain(probe: Intervals, plain_module) -> None:
    import mlflow.spark
    from pyspark.ml.base import Transformer
    from pyspark.sql import DataFrameWriter, SparkSession
    from pyspark.sql.readwriter import DataFrameReader

    probe.wrap(SparkSession.Builder, "getOrCreate", "spark start")
    probe.wrap(DataFrameReader, "parquet", "read", when=probe.idle)  # not the model's reads of its own data
    probe.wrap(plain_module, "get_model_info", "signature check")
    probe.wrap(mlflow.spark, "load_model", "model download + load")
    probe.wrap(Transformer, "transform", "transform (plan)")
    probe.wrap(DataFrameWriter, "save", "write (runs the query)")  # what plain_score calls, any format
    probe.wrap(SparkSession, "stop", "spark stop")


def wrap_score(probe: Intervals) -> None:
    from synapse_ml_track.cli import score as cli_score
    from synapse_ml_track.spark import data, scoring
    from synapse_ml_track.spark import models as spark_models
    from synapse_ml_track.spark import session as spark
    from synapse_ml_track.tracking import session

    probe.wrap(cli_score, "config_of", "config")
    probe.wrap(session, "open_session", "mlflow client + experiment")
    probe.wrap(spark, "get_or_create_spark", "spark start")
    probe.wrap(scoring, "_end_interrupted_attempt", "mlflow client + experiment")
    probe.wrap(scoring, "resolve_model", "registry calls")
    probe.wrap(session.TrackingSession, "start_run", "tracking calls")
    for name in ("log_params", "log_metrics", "finish"):
        probe.wrap(session.RunTracker, name, "tracking calls")
    probe.wrap(session.TrackingSession, "download_artifacts", "model download")
    import mlflow.models

    probe.wrap(mlflow.models, "get_model_info", "signature check")
    probe.wrap(scoring, "signature_columns", "signature check")
    probe.wrap(spark_models, "load_spark_model", "model load")
    probe.wrap(data, "pin_version", "read")
    probe.wrap(data, "read_input", "read")
    probe.wrap(scoring, "score_frame", "transform (plan)")
    probe.wrap(scoring, "_write", "write (runs the query)")
    probe.wrap(scoring.Counting, "counts", "observations (read)")
    wrap_delta(probe)


DELTA_ITEMS = (
    ("write_once", "delta: write_once (own: settings, checks)"),
    ("_write", "write (runs the query)"),  # the Delta writer's save: the query and the commit
    ("exists", "delta: exists (file system)"),
    ("earlier_write", "delta: history read (DESCRIBE HISTORY)"),
    ("_commits", "delta: history read (DESCRIBE HISTORY)"),
    ("_require_delta", "delta: write_once (own: settings, checks)"),
)


def wrap_delta(probe: Intervals) -> None:
    """score's Delta write, call by call (write_once calls the others)."""
    from synapse_ml_track.spark import delta_tables

    for name, item in DELTA_ITEMS:
        probe.wrap(delta_tables, name, item)


def main() -> int:
    timings_path, case, *args = sys.argv[1:]
    probe = Intervals()
    before_imports = time.time()
    if case == "score":
        from synapse_ml_track.cli import main as cli_main

        wrap_score(probe)
        imported = time.time()
        code = cli_main(["score", *args])
    else:
        import plain_score

        wrap_plain(probe, plain_score)
        imported = time.time()
        code = plain_score.main(*args, careful=case == "careful", lineage=case == "lineage") or 0
    ended = time.time()
    items = {"interpreter start": STARTED - process_start(), "imports": imported - before_imports}
    items.update(probe.snapshot())
    Path(timings_path).write_text(
        json.dumps({"items": items, "main": ended - imported, "intervals": probe.intervals, "ended": ended})
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
