"""No hidden globals: library code writes neither the process environment nor MLflow's global URIs.

Where MLflow or its azureml plugin reads a process-wide setting, it is written at the entry point
(synapse_ml_track/entrypoint.py), and the HTTP settings in http.configure_process, which the entry
point calls once (cli/common.load_config).
"""

import ast
from pathlib import Path

import pytest

from support import REPO

WRITES_ENVIRONMENT = {"entrypoint.py", "http.py"}
SETS_MLFLOW_GLOBALS = {"entrypoint.py"}
ENVIRON_WRITES = {"setdefault", "update", "pop", "popitem", "clear", "__setitem__", "__delitem__"}
MLFLOW_GLOBALS = {"set_tracking_uri", "set_registry_uri", "set_experiment"}


def dotted(node: ast.AST) -> str:
    """`os.environ` for the expression os.environ, "" for anything that is not a dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def global_writes(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each write of os.environ and each call setting MLflow's global state."""
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else []
        targets = [node.target] if isinstance(node, ast.AugAssign) else targets
        for target in targets:
            if isinstance(target, ast.Subscript) and dotted(target.value) in ("os.environ", "environ"):
                found.append((node.lineno, "environ"))
        if isinstance(node, ast.Call):
            name = dotted(node.func)
            owner, _, method = name.rpartition(".")
            if (owner in ("os.environ", "environ") and method in ENVIRON_WRITES) or name in (
                "os.putenv",
                "os.unsetenv",
            ):
                found.append((node.lineno, "environ"))
            if method in MLFLOW_GLOBALS and owner.split(".")[0] == "mlflow":
                found.append((node.lineno, "mlflow"))
    return found


def package_sources() -> list[Path]:
    return [*(REPO / "synapse_ml_track").rglob("*.py"), *(REPO / "jobs").rglob("*.py")]


def test_only_the_entry_point_writes_process_globals():
    misplaced = [
        f"{path.relative_to(REPO)}:{line} writes {'os.environ' if kind == 'environ' else 'an MLflow global URI'}"
        for path in package_sources()
        for line, kind in global_writes(ast.parse(path.read_text(encoding="utf-8")))
        if path.name not in (WRITES_ENVIRONMENT if kind == "environ" else SETS_MLFLOW_GLOBALS)
    ]
    assert misplaced == []


@pytest.mark.parametrize(
    "source",
    [
        'os.environ["AZUREML_CURRENT_CLOUD"] = name',
        'os.environ.setdefault("X", "1")',
        "os.environ.update(values)",
        'del os.environ["X"]',
        'environ["X"] += "y"',
        'os.putenv("X", "1")',
        "mlflow.set_tracking_uri(uri)",
        "mlflow.tracking.set_registry_uri(uri)",
    ],
)
def test_the_scan_sees_each_kind_of_write(source):
    assert len(global_writes(ast.parse(source))) == 1


def test_the_scan_lets_reads_pass():
    reads = 'os.environ.get("X")\nos.environ["X"]\nvalue = dict(os.environ)\nmlflow.get_tracking_uri()\n'
    assert global_writes(ast.parse(reads)) == []
