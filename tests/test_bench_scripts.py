"""The benchmark scripts import. They run only by hand (`make bench`, `make bench-score`...), so
nothing else would notice a module they use moving or being renamed."""

import subprocess
import sys

from support import REPO

IMPORT_ALL = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)"


def test_every_benchmark_script_imports():
    names = sorted(path.stem for path in (REPO / "bench").glob("*.py"))
    assert "score_parts" in names
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *names], cwd=REPO / "bench", capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_training_benchmark_times_functions_that_exist():
    """bench/run.py wraps library functions by name: one moved away would stop `make bench` at start."""
    script = "from probe import Probe\nimport run\nprobe = Probe()\nrun.instrument(probe)\nprobe.restore()"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO / "bench", capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
