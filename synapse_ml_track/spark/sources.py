"""Where a job's data is: an input (a path, a catalog table or a DataFrame) and locations as users
give them (relative paths, absolute paths, file: URIs, abfss:// URIs).

Spark resolves a relative path against the driver's working directory, but Delta's SQL form
delta.`<path>` only reads a path when it is absolute: a relative one is looked up as a table named
<path> in a database named delta. So every local path is made absolute here, once, before any
module turns it into an identifier or a run param.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synapse_ml_track.config import DataConfig
from synapse_ml_track.errors import DataError
from synapse_ml_track.vocabulary import DATAFRAME, INPUT_FORMATS, format_of_suffix

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

BUNDLED_PENGUINS_SCHEMA = (
    "species STRING, island STRING, bill_length_mm DOUBLE, bill_depth_mm DOUBLE, "
    "flipper_length_mm DOUBLE, body_mass_g DOUBLE, sex STRING, year INT"
)


def bundled_penguins_path() -> str:
    return str(resources.files("synapse_ml_track") / "data" / "penguins.csv")


def absolute_location(location: str) -> str:
    """A local path made absolute (against the working directory, ~ expanded); a URI unchanged."""
    if is_uri(location):
        return location
    return os.path.abspath(os.path.expanduser(location))


def is_uri(location: str) -> bool:
    """abfss://, wasbs://, file:///x, and file:/x as Spark writes table locations."""
    return "://" in location or location.startswith("file:")


def is_local(location: str) -> bool:
    return not is_uri(location) or location.startswith("file:")


def local_path(location: str) -> str:
    """The file system path of a local location: a path, file:///x, or file:/x."""
    for scheme in ("file://", "file:"):
        if location.startswith(scheme):
            return location[len(scheme) :]
    return location


@dataclass(frozen=True)
class InputSource:
    path: str  # or, for a catalog table, its name
    format: str  # a catalog table's: "table" until pinned, then its provider (delta, parquet...)
    schema: str | None
    bundled: bool = False
    table: bool = False
    version: int | None = None  # Delta: the version asked for, and once pinned, the version read
    timestamp: str | None = None  # Delta: read the version current at this time
    commit_time: str | None = None  # Delta, once pinned: when the version read was committed
    frame: DataFrame | None = field(default=None, compare=False, repr=False)  # format DATAFRAME: the input itself
    identity: str | None = None  # a frame's, where its plan cannot say what it holds (frame_source)

    @property
    def pinned(self) -> bool:
        return self.commit_time is not None

    def named(self) -> str:
        """The input as named, which tells one job's input from another's: its path or table, or a
        frame's identity, else its plan's hash."""
        if self.frame is None:
            return self.path
        return self.identity or str(self.frame.semanticHash())

    def delta_source(self) -> dict[str, Any] | None:
        """A pinned Delta input as mlflow.data's DeltaDatasetSource writes it (path or delta_table_name,
        delta_table_version), with the version's commit time; None for other inputs."""
        if self.format != "delta" or self.commit_time is None:
            return None
        return {
            "delta_table_name" if self.table else "path": self.path,
            "delta_table_version": self.version,
            "commit_time": self.commit_time,
        }

    def params(self) -> dict[str, Any]:
        """A pinned Delta input's version read and its commit time, or that the input was a DataFrame,
        as run params; none for others."""
        if self.frame is not None:
            return {"data.source": DATAFRAME}
        pinned = self.delta_source()
        if not pinned:
            return {}
        return {"data.version_read": pinned["delta_table_version"], "data.commit_time": pinned["commit_time"]}


def resolve_source(data: DataConfig) -> InputSource:
    if data.table:
        return InputSource(data.table, "table", data.schema, table=True, version=data.version, timestamp=data.timestamp)
    if not data.path:
        return InputSource(bundled_penguins_path(), "csv", data.schema or BUNDLED_PENGUINS_SCHEMA, bundled=True)
    path = absolute_location(data.path)
    input_format = data.format or _format_from_path(path)
    if input_format != "delta" and (data.version is not None or data.timestamp):
        raise DataError(f"data.version and data.timestamp need a Delta input; {data.path} is {input_format}")
    return InputSource(path, input_format, data.schema, version=data.version, timestamp=data.timestamp)


def frame_source(frame: DataFrame, identity: str | None = None) -> InputSource:
    """An input handed over as a DataFrame: read as it is; it has no path (the run records none).
    `identity`: what it holds, where its plan cannot say: a frame made from a pandas one scans a new
    RDD each time, so the plan of the same rows handed over again hashes differently."""
    return InputSource("", DATAFRAME, None, frame=frame, identity=identity)


def _format_from_path(path: str) -> str:
    named = format_of_suffix(Path(path.rstrip("/")).suffix)
    if named:
        return named
    if is_local(path) and Path(local_path(path), "_delta_log").is_dir():
        return "delta"
    if is_local(path) and Path(local_path(path)).is_dir():
        return "parquet"
    raise DataError(
        f"cannot tell the format of {path!r} from its name; set data.format to {' or '.join(INPUT_FORMATS)}"
    )
