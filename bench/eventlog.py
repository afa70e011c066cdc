"""Spark's event logs (spark.eventLog.enabled, uncompressed): what a benchmarked process ran."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def events(event_dir: Path) -> Iterator[dict]:
    """Every event of every application logged in event_dir, in order."""
    for log in sorted(event_dir.iterdir()):
        for line in log.read_text().splitlines():
            if line.strip():
                yield json.loads(line)


# What Delta 3.2.1 shows in the event log: the first line of an execution's physical plan, or its description.
HISTORY_PLAN = "Execute DescribeDeltaHistoryCommand"
WRITE_PLAN = "Execute SaveIntoDataSourceCommand"
SNAPSHOT_DESCRIPTION = "Compute snapshot for version"  # "Delta: [<job group>: ]Compute snapshot …"


def delta_costs(event_dir: Path) -> dict:
    """Seconds of Delta's own work in one process, from its SQL executions: the DESCRIBE HISTORY reads,
    the snapshot state computed inside the write, the write command, the data pass within it, and what the
    command spent after that pass (the commit and its post-commit work)."""
    executions: dict[int, dict] = {}
    for event in events(event_dir):
        if event["Event"].endswith("SparkListenerSQLExecutionStart"):
            plan = event.get("physicalPlanDescription", "").splitlines()
            executions[event["executionId"]] = {
                "start": event["time"],
                "end": event["time"],
                "description": event.get("description", ""),
                "node": plan[1] if len(plan) > 1 else "",
            }
        elif event["Event"].endswith("SparkListenerSQLExecutionEnd"):
            executions[event["executionId"]]["end"] = event["time"]
    history = [e for e in executions.values() if e["node"].startswith(HISTORY_PLAN)]
    writes = [e for e in executions.values() if e["node"].startswith(WRITE_PLAN)]
    if len(writes) != 1:
        raise SystemExit(f"{event_dir}: expected one Delta write command, found {len(writes)}")
    write = writes[0]
    data = [
        e
        for e in executions.values()
        if e is not write and e["description"] == write["description"] and write["start"] <= e["start"] <= write["end"]
    ]
    data_end = max((e["end"] for e in data), default=write["end"])
    return {
        "history_reads": len(history),
        "history_s": sum(e["end"] - e["start"] for e in history) / 1000,
        "snapshot_s": sum(
            e["end"] - e["start"] for e in executions.values() if SNAPSHOT_DESCRIPTION in e["description"]
        )
        / 1000,
        "write_s": (write["end"] - write["start"]) / 1000,
        "data_write_s": sum(e["end"] - e["start"] for e in data) / 1000,
        "after_data_s": (write["end"] - data_end) / 1000,
    }
