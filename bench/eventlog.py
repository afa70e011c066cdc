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
