"""The documentation, run as a reader types it.

README.md and the docs/ pages in RUN_IN_ORDER are prysk transcripts as they stand (prysk is the
maintained fork of cram): a line indented two spaces and starting `$ ` is a command, `> ` continues
it, the indented lines after it are its expected output (with `(re)`, `(glob)` or `(esc)` at the end
of a line that varies) and a non-zero exit shows as `[N]`; every other line is commentary. In the
Markdown these transcripts sit in ```console blocks. Nothing extracts commands from the Markdown
here: prysk reads each file whole, so what runs is exactly what a reader sees, in the order they
meet it.

They run in one fresh copy of the repository's tracked files (a clone as a reader has it; the
built .venv and the Delta jars linked in, so `make train` builds nothing), from its root, each
document in its own bash (a reader's terminal: README.md's `source .venv/bin/activate` is not
inherited, so every page that needs it says it), one after the other, so each page continues from
the state the ones before it left (README.md first, as a reader comes to the others from it).
The shell starts with none of the job's environment (no MLflow or Azure variables, the venv off
PATH); Spark's machine-dependent start-up warnings are turned off (tests/data/docs-spark-conf).

Blocks that need what this machine does not have (an Azure subscription, a Synapse workspace, the
test suite itself) are ```bash blocks: not run, and checked instead by tests/test_docs.py
(ShellCheck, the Azure CLI's commands and options, the job's parser, make targets). A page not
in RUN_IN_ORDER may not hold a transcript line: it would look tested and not be.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from support import REPO, VENV_BIN

pytestmark = pytest.mark.minutes(5)

RUN_IN_ORDER = [REPO / "README.md", REPO / "docs" / "lifecycle.md", REPO / "docs" / "delta.md"]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL = REPO / "tests" / "docs_shell.sh"
SPARK_CONF = REPO / "tests" / "data" / "docs-spark-conf"
COMMAND = "  $ "  # prysk's default --indent of 2
# What a reader's fresh terminal does not have, and the job reads: left out of the documents' shell.
# make's own variables too: under `make test` they would make the documents' `make train` a sub-make,
# which prints "make[1]: Entering directory" lines that a reader's terminal does not show.
NOT_IN_A_FRESH_SHELL = (
    "VIRTUAL_ENV", "PYTHONUNBUFFERED", "PYTHONPATH", "SPARK_HOME", "SPARK_CONF_DIR",
    "MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR",
)  # fmt: skip
NOT_IN_A_FRESH_SHELL_PREFIXES = ("MLFLOW_", "AZURE_", "AZUREML_", "SMT_")


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [name for name in listed.decode().split("\0") if name]


def fresh_copy(root: Path) -> Path:
    """The repository's tracked files as they are in the work tree (modification times kept, so
    make rebuilds nothing), with .venv and .jars linked in."""
    for name in tracked_files():
        source = REPO / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not committed yet: a clone would not have it either
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    for built in (".venv", ".jars"):
        (root / built).symlink_to(REPO / built)
    return root


def shell_environment(clone: Path) -> dict[str, str]:
    venv_bins = {str(VENV_BIN), str(REPO / ".venv" / "bin")}
    environ = {
        name: value
        for name, value in os.environ.items()
        if name not in NOT_IN_A_FRESH_SHELL and not name.startswith(NOT_IN_A_FRESH_SHELL_PREFIXES)
    }
    environ["PATH"] = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p not in venv_bins)
    environ["SMT_DOCS_CLONE"] = str(clone)
    environ["SPARK_CONF_DIR"] = str(SPARK_CONF)
    return environ


class DocumentRun:
    """Runs the documents of RUN_IN_ORDER once each, in order, in one fresh copy: asking for a
    page runs the pages before it first (they leave the state it continues from)."""

    def __init__(self, clone: Path):
        self.clone = clone
        self.results: dict[Path, subprocess.CompletedProcess] = {}
        self.seconds: dict[Path, float] = {}

    def result(self, document: Path) -> subprocess.CompletedProcess:
        for earlier in RUN_IN_ORDER[: RUN_IN_ORDER.index(document) + 1]:
            if earlier not in self.results:
                started = time.monotonic()
                self.results[earlier] = subprocess.run(
                    [str(VENV_BIN / "prysk"), "--shell", str(SHELL), "--color", "never", "--indent", "2",
                     str(self.clone / earlier.relative_to(REPO))],
                    cwd=self.clone, env=shell_environment(self.clone), capture_output=True, text=True,
                )  # fmt: skip
                self.seconds[earlier] = time.monotonic() - started
        return self.results[document]


@pytest.fixture(scope="session")
def documents_run(tmp_path_factory) -> DocumentRun:
    up_to_date = subprocess.run(["make", "-q", ".venv/.installed"], cwd=REPO, capture_output=True)
    assert up_to_date.returncode == 0 and (REPO / ".jars").is_dir(), (
        "the documents' `make train` would rebuild the environment: run `make .venv/.installed delta-jars` first"
    )
    return DocumentRun(fresh_copy(tmp_path_factory.mktemp("docs") / "synapse-ml-track"))


@pytest.mark.parametrize("document", RUN_IN_ORDER, ids=lambda d: str(d.relative_to(REPO)))
def test_the_document_runs_as_written(document, documents_run):
    result = documents_run.result(document)
    seconds = documents_run.seconds[document]
    assert result.returncode == 0, (
        f"{document.relative_to(REPO)} does not run as written ({seconds:.0f} s); prysk's diff, `-` the "
        f"document, `+` what the commands printed:\n{result.stdout}{result.stderr}"
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: str(d.relative_to(REPO)))
def test_a_transcript_is_only_where_it_runs(document):
    lines = document.read_text(encoding="utf-8").splitlines()
    if document in RUN_IN_ORDER:
        assert any(line.startswith(COMMAND) for line in lines), f"{document.name} is run but holds no command"
    else:
        shown = [line for line in lines if line.startswith(COMMAND)]
        assert not shown, f"{document.name} is not run (RUN_IN_ORDER), yet shows commands as run: {shown}"


def test_the_fresh_copy_is_the_tracked_files_and_the_shell_a_fresh_one(tmp_path, monkeypatch):
    """The copy holds what a clone holds and nothing the work tree has beside it; the shell has
    no job settings and no venv on PATH, so a page that forgets to activate it fails."""
    clone = fresh_copy(tmp_path / "clone")
    copied = {str(p.relative_to(clone)) for p in clone.rglob("*") if not p.is_dir() and ".venv" not in p.parts}
    assert copied - {".jars"} == {name for name in tracked_files() if (REPO / name).exists()}
    assert (clone / "Makefile").stat().st_mtime == (REPO / "Makefile").stat().st_mtime
    assert (clone / ".venv" / "bin" / "python").exists() and (clone / ".jars").resolve() == REPO / ".jars"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere")
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    environ = shell_environment(clone)
    assert "MLFLOW_TRACKING_URI" not in environ and str(VENV_BIN) not in environ["PATH"].split(os.pathsep)
    typed = subprocess.run(
        [str(SHELL), "-c", "pwd; command -v synapse-ml-track || echo none"],
        env=environ, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert typed.stdout.split() == [str(clone), "none"]
