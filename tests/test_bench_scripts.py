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


def test_the_scoring_benchmark_times_functions_that_exist():
    """bench/timed_score.py wraps the scripts', the library's and Delta's write functions by name (make bench-score)."""
    script = (
        "import plain_score, timed_score\n"
        "probe = timed_score.Intervals()\n"
        "timed_score.wrap_plain(probe, plain_score)\n"
        "timed_score.wrap_score(probe)\n"
        "probe.restore()"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO / "bench", capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_scoring_timers_count_an_item_inside_another_once():
    """An item called inside another (score's Delta write inside write_once) is taken out of the outer one."""
    script = (
        "import time, types, timed_score\n"
        "calls = types.SimpleNamespace()\n"
        "calls.inner = lambda: time.sleep(0.5)\n"
        "def outer():\n"
        "    time.sleep(0.05)\n"
        "    calls.inner()\n"
        "calls.outer = outer\n"
        "probe = timed_score.Intervals()\n"
        "probe.wrap(calls, 'outer', 'outer')\n"
        "probe.wrap(calls, 'inner', 'inner')\n"
        "calls.outer()\n"
        "items = probe.snapshot()\n"
        "assert 0.05 <= items['outer'] < 0.3 and items['inner'] >= 0.5, items\n"
        "assert [key for key, *_ in probe.intervals] == ['inner', 'outer'], probe.intervals"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO / "bench", capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
