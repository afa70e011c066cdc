"""The pip requirements a registered model carries name releases pip can install.

AML's MLflow deployments, `mlflow models serve` and `spark_udf(env_manager=...)` rebuild the model's
environment from them, so each pin must be a PyPI release, whatever the training environment's own
build of the package calls itself.
"""

from importlib import metadata

import pytest
from packaging.requirements import Requirement

from synapse_ml_track.spark import models as spark_models

from synapse_runtime import runtime_packages

PINNED = ("pyspark", "mlflow-skinny", "pandas", "numpy")


def pins_with_installed(monkeypatch, versions: dict[str, str]) -> dict[str, str]:
    """The model's pins, with the training environment holding these versions (and nothing else)."""

    def version(name: str) -> str:
        if name not in versions:
            raise metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(metadata, "version", version)
    pins = [Requirement(pin) for pin in spark_models.model_pip_requirements()]
    return {pin.name: str(pin.specifier) for pin in pins}


def test_on_a_synapse_pool_the_model_pins_the_public_pyspark_release(monkeypatch):
    """The pool's pyspark is Microsoft's build 3.5.1.5.4.20240407 (the runtime's published package
    list, tests/data/synapse-runtime/); PyPI has no such release, 3.5.1 is the one it is built from."""
    pool = runtime_packages()
    assert pool["pyspark"].version == "3.5.1.5.4.20240407"
    pins = pins_with_installed(monkeypatch, {name: pool[name].version for name in PINNED})
    assert pins == {
        "pyspark": "==3.5.1",
        "mlflow-skinny": f"=={pool['mlflow-skinny'].version}",
        "pandas": f"=={pool['pandas'].version}",
        "numpy": f"=={pool['numpy'].version}",
    }


@pytest.mark.parametrize(
    ("installed", "pinned"),
    [
        ("3.5.9", "3.5.9"),  # a PyPI release is pinned as it is
        ("3.5.1.5.4.20240407", "3.5.1"),  # Microsoft's build of 3.5.1
        ("3.5.1.dev0", "3.5.1"),  # a build from Spark's source tree
        ("3.5.5+synapse.1", "3.5.5"),  # a local version label
    ],
)
def test_pyspark_is_pinned_to_the_release_it_was_built_from(installed, pinned, monkeypatch):
    pins = pins_with_installed(monkeypatch, {"pyspark": installed, "mlflow": "3.15.0", "pandas": "2.2.3"})
    assert pins == {"pyspark": f"=={pinned}", "mlflow-skinny": "==3.15.0", "pandas": "==2.2.3"}
