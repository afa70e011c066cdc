"""The Spark pool's requirements.txt against the Synapse Spark 3.5 runtime it is installed on.

The runtime's package list is Microsoft's own (tests/data/synapse-runtime/, see SOURCE.md). The
check installs nothing: pip resolves requirements.txt and the job's own dependencies (its wheel's
install_requires) in an empty virtualenv in which every runtime package is present as an installed
distribution, so pip keeps what satisfies the requirements, as it does on a pool. What it would
install must downgrade no runtime package and upgrade none across a major version.
"""

from __future__ import annotations

import configparser
import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from support import REPO
from synapse_runtime import CONSTRAINTS, constraints_text, runtime_packages

REQUIREMENTS = REPO / "requirements.txt"


def requirement_lines() -> list[str]:
    return REQUIREMENTS.read_text(encoding="utf-8").splitlines()


def package_requirements() -> list[Requirement]:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg", encoding="utf-8")
    lines = setup["options"]["install_requires"].strip().splitlines()
    return [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]


def test_format_is_what_synapse_accepts():
    """One name==version a line, no blank lines, no options, comments or ranges (Synapse's pool
    library format). An empty file is the goal: the runtime already has everything."""
    text = REQUIREMENTS.read_text(encoding="utf-8")
    if not text:
        return
    assert text.endswith("\n") and not text.endswith("\n\n"), "end with exactly one newline"
    names = []
    for line in text.splitlines():
        assert line and line == line.strip(), f"blank line or surrounding whitespace: {line!r}"
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and not requirement.marker, f"{line!r} is not name==version"
        try:
            Version(specifier.version)
        except InvalidVersion:
            pytest.fail(f"{line!r}: {specifier.version!r} is not a valid version")
        names.append(canonicalize_name(requirement.name))
    assert len(names) == len(set(names)), f"a package is pinned twice: {names}"
    assert "pyspark" not in names, "the pool provides pyspark; never install it there"


def test_the_vendored_runtime_list_is_whole():
    packages = runtime_packages()
    assert len(packages) > 400
    for name, version in {"mlflow-skinny": "2.18.0", "azureml-mlflow": "1.60.0", "azure-ai-ml": "1.28.1",
                          "pandas": "2.2.3", "numpy": "1.26.4", "cryptography": "44.0.1"}.items():  # fmt: skip
        assert packages[name].version == version, f"runtime list: {name} {packages[name].version}"


def test_runtime_constraints_are_made_from_the_runtime_list():
    """tests/data/synapse-runtime/constraints.txt pins the runtime test environment; it must be the
    list's (regenerate with `python tests/synapse_runtime.py`)."""
    assert CONSTRAINTS.read_text(encoding="utf-8") == constraints_text()


def test_the_runtime_satisfies_the_jobs_own_requirements():
    """The wheel's install_requires, met by the runtime's versions: the pool installs nothing for them."""
    packages = runtime_packages()
    for requirement in package_requirements():
        installed = packages.get(canonicalize_name(requirement.name))
        assert installed is not None, f"{requirement.name} is not in the Synapse runtime: pin it in requirements.txt"
        assert requirement.specifier.contains(Version(installed.version), prereleases=True), (
            f"the runtime's {requirement.name} {installed.version} is outside setup.cfg's {requirement}"
        )


@pytest.fixture(scope="module")
def runtime_site(tmp_path_factory) -> Path:
    """An empty virtualenv holding every runtime package as an installed distribution (metadata only)."""
    root = tmp_path_factory.mktemp("synapse-runtime")
    venv.EnvBuilder(with_pip=False).create(root)
    (site,) = root.glob("lib/python3.*/site-packages")
    for package in runtime_packages().values():
        dist_info = site / f"{package.name.replace('-', '_')}-{package.version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {package.name}\nVersion: {package.version}\n"
        )
        (dist_info / "INSTALLER").write_text("conda\n" if package.source == "conda" else "pip\n")
    return root


def test_installing_the_pool_libraries_replaces_no_runtime_package(runtime_site, tmp_path):
    report = tmp_path / "report.json"
    requirements = [*requirement_lines(), *map(str, package_requirements())]
    command = [
        sys.executable, "-m", "pip", "--python", str(runtime_site / "bin" / "python"), "install", "--dry-run",
        "--quiet", "--report", str(report), *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, f"the pool libraries do not resolve on the runtime:\n{result.stderr[-2000:]}"
    installed = runtime_packages()
    replaced = []
    for item in json.loads(report.read_text(encoding="utf-8"))["install"]:
        name, version = canonicalize_name(item["metadata"]["name"]), Version(item["metadata"]["version"])
        runtime = installed.get(name)
        if runtime and runtime.release and (version < runtime.release or version.major != runtime.release.major):
            replaced.append(f"{name} {runtime.version} -> {version}")
    assert replaced == [], f"downgrades or major upgrades of runtime packages: {replaced}"
    assert json.loads(report.read_text(encoding="utf-8"))["install"] == [], "the runtime already has every library"
