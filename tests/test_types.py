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


def test_a_callers_code_is_checked_against_the_api(tmp_path):
    """What an editor or mypy tells a notebook user. The API is served lazily by the package's
    __getattr__, which made every name Any: a misspelt keyword passed the check."""
    user = tmp_path / "user_code.py"
    user.write_text(
        "import synapse_ml_track as smt\n\n"
        "smt.train(spak=None)\n"
        "reveal_type(smt.predict(None))\n"
        "reveal_type(smt.score(output_path='s').rows_scored)\n"
        "reveal_type(smt.report('penguins').best_model_version)\n"
        "reveal_type(smt.train)\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), str(user)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = checked.stdout.splitlines()
    assert any('Unexpected keyword argument "spak" for "train"' in line for line in lines), checked.stdout
    assert any('Revealed type is "pyspark.sql.dataframe.DataFrame"' in line for line in lines), checked.stdout
    assert any('Revealed type is "int | None"' in line for line in lines), checked.stdout
    assert any('Revealed type is "str | None"' in line for line in lines), checked.stdout
    train = next(line for line in lines if "def (config:" in line)
    assert (
        "spark: pyspark.sql.session.SparkSession | None" in train and "synapse_ml_track.results.TrainingResult" in train
    )
