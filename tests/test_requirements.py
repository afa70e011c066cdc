"""The Spark pool's requirements.txt: Synapse's format rules, the runtime floor, the package's own
pins, and a resolver check that the set installs together with PySpark 3.5 on Python 3.11."""

from __future__ import annotations

import configparser
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s=;#]+)$")
# Versions the Synapse Spark 3.5 runtime preinstalls: a pool requirements.txt cannot downgrade them.
RUNTIME_PREINSTALLED = {"mlflow-skinny": "2.18.0", "azureml-mlflow": "1.60.0", "azure-ai-ml": "1.28.1"}
# The pool runs Linux x86-64 with CPython 3.11.
POOL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")
NETWORK_FAILURES = (
    "NewConnectionError",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Max retries exceeded",
)


def pins() -> dict[str, Version]:
    found = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        assert match, f"not a name==version line: {line!r}"
        found[canonicalize_name(match["name"])] = Version(match["version"])
    return found


def package_requirements() -> list[Requirement]:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg", encoding="utf-8")
    lines = setup["options"]["install_requires"].strip().splitlines()
    return [Requirement(line.strip()) for line in lines if line.strip()]


def test_format_is_what_synapse_accepts():
    text = REQUIREMENTS.read_text(encoding="utf-8")
    assert text.endswith("\n") and not text.endswith("\n\n"), "end with exactly one newline"
    lines = text.splitlines()
    assert lines, "requirements.txt is empty"
    for line in lines:
        assert line.strip(), "blank line"
        assert line == line.strip(), f"surrounding whitespace in {line!r}"
        assert not line.startswith("-"), f"option line {line!r}: Synapse takes name==version only"
        match = PIN.match(line)
        assert match, f"{line!r} is not name==version (no comments, markers, hashes or ranges)"
        try:
            Version(match["version"])
        except InvalidVersion:
            pytest.fail(f"{line!r}: {match['version']!r} is not a valid version")
    names = [canonicalize_name(PIN.match(line)["name"]) for line in lines]
    assert len(names) == len(set(names)), f"a package is pinned twice: {names}"


def test_pins_never_downgrade_the_runtime():
    for name, version in pins().items():
        floor = RUNTIME_PREINSTALLED.get(name)
        if floor:
            assert version >= Version(
                floor
            ), f"{name}=={version} is below the runtime's {floor}: the pool cannot downgrade"


def test_pins_are_package_dependencies_within_its_ranges():
    declared = {canonicalize_name(requirement.name): requirement for requirement in package_requirements()}
    for name, version in pins().items():
        assert name != "pyspark", "the pool provides pyspark; never install it there"
        assert name in declared, f"{name} is pinned for the pool but is not a dependency in setup.cfg"
        assert declared[name].specifier.contains(
            version, prereleases=True
        ), f"{name}=={version} is outside setup.cfg's {declared[name]}"


def pyspark_requirements() -> list[str]:
    version = Version(importlib.metadata.version("pyspark"))
    assert (version.major, version.minor) == (3, 5), f"the test environment has pyspark {version}, not 3.5"
    # PySpark is published as a large sdist only; resolve against its declared requirements instead
    # (its core and the extras the jobs use: sql, ml and pandas-on-Spark).
    wanted = {"sql", "ml", "pandas-on-spark"}
    chosen = []
    for line in importlib.metadata.requires("pyspark") or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in wanted):
            requirement.marker = None
            chosen.append(str(requirement))
    return sorted(set(chosen))


def package_index() -> str:
    configured = os.environ.get("PIP_INDEX_URL")
    if not configured:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
            check=False,
        )
        configured = result.stdout.strip() if result.returncode == 0 else ""
    return (configured or "https://pypi.org/simple").rstrip("/")


def test_pool_requirements_resolve_with_pyspark_35_on_python_311(tmp_path):
    index = package_index()
    try:
        urllib.request.urlopen(f"{index}/pip/", timeout=15).close()
    except (urllib.error.URLError, OSError) as exc:
        pytest.skip(f"package index {index} is unreachable ({exc}); the resolver check needs it")
    report = tmp_path / "report.json"
    command = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:",
        *[arg for platform in POOL_PLATFORMS for arg in ("--platform", platform)],
        "--report", str(report), "-r", str(REQUIREMENTS),
        *pyspark_requirements(), *[str(requirement) for requirement in package_requirements()],
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0 and any(marker in result.stderr for marker in NETWORK_FAILURES):
        pytest.skip(f"package index {index} became unreachable during resolution")
    assert result.returncode == 0, f"the pool requirements do not resolve with pyspark 3.5:\n{result.stderr[-3000:]}"
    installed = {
        canonicalize_name(item["metadata"]["name"]): Version(item["metadata"]["version"])
        for item in json.loads(report.read_text(encoding="utf-8"))["install"]
    }
    for name, version in pins().items():
        assert installed.get(name) == version, f"resolver chose {name} {installed.get(name)}, not the pinned {version}"
    assert "py4j" in installed
