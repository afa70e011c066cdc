"""infra/'s Bicep files, parsed offline for the tests of infra/ (test_infra.py, test_infra_models.py).

pycep-parser lives in its own virtualenv (its pins clash with MLflow's); it runs as a subprocess
from SMT_TOOLS_BIN (default .venv-tools/bin). conftest.py parses infra/ once per session (fixtures
`parsed` and `trees`)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
INSTALL_HINT = "python3.11 -m venv .venv-tools && .venv-tools/bin/pip install -r tools-requirements.txt"
PARSE_SCRIPT = """
import json, sys
from pathlib import Path
from pycep import BicepParser
parser = BicepParser()
result = {}
for name in sys.argv[1:]:
    try:
        result[name] = {"tree": parser.parse(file_path=Path(name))}
    except Exception as exc:  # report every file's parse error, not just the first
        result[name] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(result, default=str))
"""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def tool(name: str) -> Path:
    bin_dir = Path(os.environ.get("SMT_TOOLS_BIN", REPO / ".venv-tools" / "bin"))
    path = bin_dir / name
    if path.exists():
        return path
    message = f"{name} not found in {bin_dir}; install the tools with `{INSTALL_HINT}` or set SMT_TOOLS_BIN"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def parse_bicep(files: Iterable[Path], root: Path) -> dict[str, dict[str, Any]]:
    """Each file's {"tree": ...} or {"error": ...}, by its path under root, from one pycep-parser run."""
    python = tool("python")
    result = subprocess.run(
        [str(python), "-c", PARSE_SCRIPT, *map(str, files)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return {Path(name).relative_to(root).as_posix(): outcome for name, outcome in json.loads(result.stdout).items()}


def trees_of(parsed: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    failed = {name: outcome["error"] for name, outcome in parsed.items() if "error" in outcome}
    assert not failed, f"Bicep files that do not parse: {failed}"
    return {name: outcome["tree"] for name, outcome in parsed.items()}


def resources(tree: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: body for name, body in tree.get("resources", {}).items() if body["type"] == kind}


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's (or module's) properties, looking through an `if (...)` condition or a `for` loop."""
    config = resource["config"]
    return config["config"] if "condition" in config else config
