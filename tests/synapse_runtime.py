"""The Synapse Spark 3.5 runtime's Python packages, read from Microsoft's published list
(tests/data/synapse-runtime/, see SOURCE.md there).

    python tests/synapse_runtime.py > tests/data/synapse-runtime/constraints.txt

writes the pip constraints that pin the "runtime" test environment to the runtime's versions.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

RUNTIME_DIR = Path(__file__).parent / "data" / "synapse-runtime"
PACKAGE_LIST = RUNTIME_DIR / "Synapse-Python311-CPU.yml"
CONSTRAINTS = RUNTIME_DIR / "constraints.txt"
_CONDA = re.compile(r"^  - (?P<name>[A-Za-z0-9_.-]+)=(?P<version>[^=]+)=(?P<build>\S+)$")
_PIP = re.compile(r"^      - (?P<name>[A-Za-z0-9_.-]+)==(?P<version>\S+)$")
# conda builds of Python packages are built per Python version (py311...) or noarch (py_0, pyh...);
# the rest (zlib, openssl, libgcc...) are not pip packages.
_PYTHON_BUILD = re.compile(r"^py")
# Versions that are dates of Microsoft's conda meta-builds, not releases on PyPI.
_DATE_VERSION = re.compile(r"^20\d\d\.\d\d\.\d\d$")


@dataclass(frozen=True)
class Package:
    name: str  # canonical
    version: str
    source: str  # "conda" or "pip"

    @property
    def release(self) -> Version | None:
        """The PyPI release this entry is, or None (a date-named meta-build, Microsoft's own pyspark)."""
        if _DATE_VERSION.match(self.version) or self.name == "pyspark":
            return None
        try:
            return Version(self.version)
        except InvalidVersion:
            return None


def runtime_packages() -> dict[str, Package]:
    """Every Python package of the runtime, by canonical name (pip entries win over conda ones)."""
    packages: dict[str, Package] = {}
    for line in PACKAGE_LIST.read_text(encoding="utf-8").splitlines():
        conda, pip = _CONDA.match(line), _PIP.match(line)
        if conda and _PYTHON_BUILD.match(conda["build"]):
            name = canonicalize_name(conda["name"])
            packages.setdefault(name, Package(name, conda["version"], "conda"))
        elif pip:
            name = canonicalize_name(pip["name"])
            packages[name] = Package(name, pip["version"], "pip")
    return packages


def constraints_text() -> str:
    lines = [f"{p.name}=={p.release}" for p in sorted(runtime_packages().values(), key=lambda p: p.name) if p.release]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(constraints_text())
