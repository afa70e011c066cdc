"""Which model a scoring job scores with: a registered version, or a run's model (runs:/)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelRef:
    name: str  # "" for a run's model
    version: str  # "" for a run's model
    run_id: str
    artifact_path: str = "model"  # where in its run the version's files are

    @classmethod
    def recorded(cls, fields: Mapping[str, object]) -> ModelRef:
        """The model a Delta commit recorded (`fields()`), as far as it says."""
        name, version, run_id, path = (fields.get(key) for key in ("name", "version", "run_id", "artifact_path"))
        return cls(str(name or ""), str(version or ""), str(run_id or ""), str(path or "model"))

    @property
    def uri(self) -> str:
        """The pinned URI: an alias moved while the job runs does not change what it loads."""
        return f"models:/{self.name}/{self.version}" if self.name else f"runs:/{self.run_id}/{self.artifact_path}"

    @property
    def described(self) -> str:
        """As messages name it: a registered version by name and version, a run's model by its URI."""
        return f"{self.name} version {self.version}" if self.name else self.uri

    def fields(self) -> dict[str, str]:
        """What a Delta commit records of the model whose scores it holds."""
        return {"name": self.name, "version": self.version, "run_id": self.run_id, "artifact_path": self.artifact_path}
