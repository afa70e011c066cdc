"""mypy passes on the package as pyproject.toml [tool.mypy] sets it: the tracking layer strictly.

Outside tests/unit: a cold mypy run takes about 30 s, the whole budget of `make test-fast`."""

import subprocess
import sys

from support import REPO


def test_mypy_passes():
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert checked.returncode == 0, f"mypy found errors:\n{checked.stdout}{checked.stderr}"
