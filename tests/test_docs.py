"""The shell in the documentation, checked as a user would run it: each document's ```bash blocks,
in order, as one bash script (later blocks use earlier blocks' variables).

- ShellCheck finds nothing (quoting, word splitting, unset variables...).
- Every `az` command and option exists in the Azure CLI (tests/data/az_cli_flags.json, read off
  azure-cli 2.91.0's help), every `synapse-ml-track` command line parses with the real parser,
  every `make` target and every option of infra/*.sh exists.
- Every repository path the documents name exists (braces expanded).
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from synapse_ml_track.cli import build_parser

from support import REPO, VENV_BIN

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
AZ_FLAGS = json.loads((REPO / "tests" / "data" / "az_cli_flags.json").read_text())["commands"]
CONTROL = {"&&", "||", ";", "|", "(", ")", "<", ">", ">>", "&", "$(", "`"}
REPOSITORY_PATH = re.compile(r"(?<![\w./$-])((?:infra|jobs|tests|docs|bench|synapse_ml_track)/[\w./{},*-]*[\w*}])")


def bash_blocks(document: Path) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", document.read_text(encoding="utf-8"), flags=re.S | re.M)


def script_of(document: Path) -> str:
    return "#!/usr/bin/env bash\nset -euo pipefail\n" + "\n".join(bash_blocks(document))


def logical_lines(script: str) -> list[str]:
    """Lines with backslash continuations joined and comments dropped."""
    joined = script.replace("\\\n", " ")
    return [
        line.split(" #", 1)[0].strip()
        for line in joined.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def commands(line: str, program: str) -> list[list[str]]:
    """The words of each call of `program` on a line, up to the next shell operator."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="();<>|&")
    lexer.whitespace_split = True
    tokens = list(lexer)
    found = []
    for index, token in enumerate(tokens):
        at_command_start = (
            index == 0 or tokens[index - 1] in CONTROL | {"{", "then", "do", "$("} or "=" in tokens[index - 1]
        )
        if (at_command_start and token.rsplit("/", 1)[-1] == program) or token.endswith(f"$({program}"):
            words = []
            for word in tokens[index + 1 :]:
                if word in CONTROL or word.startswith((")", "|", ";")):
                    break
                words.append(word.rstrip(")"))
            found.append(words)
    return found


DOCUMENTS_WITH_SHELL = [d for d in DOCUMENTS if bash_blocks(d)]


@pytest.mark.parametrize("document", DOCUMENTS_WITH_SHELL, ids=lambda d: d.name)
def test_shell_blocks_pass_shellcheck(document, tmp_path):
    script = tmp_path / f"{document.stem}.sh"
    script.write_text(script_of(document))
    result = subprocess.run([str(VENV_BIN / "shellcheck"), "--shell=bash", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, f"{document.name}:\n{result.stdout}"


@pytest.mark.parametrize("document", DOCUMENTS_WITH_SHELL, ids=lambda d: d.name)
def test_az_commands_and_options_exist(document):
    for line in logical_lines(script_of(document)):
        for words in commands(line, "az"):
            names = list(itertools.takewhile(lambda w: not w.startswith("-"), words))
            command = " ".join(names)
            assert command in AZ_FLAGS, f"{document.name}: `az {command}` is not an Azure CLI command here: {line}"
            options = [w.split("=", 1)[0] for w in words[len(names) :] if re.match(r"^--?[a-z]", w)]
            unknown = [o for o in options if o not in AZ_FLAGS[command]]
            assert not unknown, f"{document.name}: `az {command}` has no option {unknown}: {line}"


@pytest.mark.parametrize("document", DOCUMENTS_WITH_SHELL, ids=lambda d: d.name)
def test_synapse_ml_track_command_lines_parse(document):
    parser = build_parser()
    for line in logical_lines(script_of(document)):
        for words in commands(line, "synapse-ml-track"):
            words = [w for w in words if w != "$@"]
            try:
                parser.parse_args(words)
            except SystemExit:
                pytest.fail(f"{document.name}: `synapse-ml-track {' '.join(words)}` does not parse")


def script_options(script: Path) -> set[str]:
    patterns = re.findall(r"^\s+((?:-[-\w]+)(?:\s*\|\s*-[-\w]+)*)\)", script.read_text(), flags=re.M)
    return {option.strip() for pattern in patterns for option in pattern.split("|")}


@pytest.mark.parametrize("document", DOCUMENTS_WITH_SHELL, ids=lambda d: d.name)
def test_make_targets_and_infra_script_options_exist(document):
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M))
    for line in logical_lines(script_of(document)):
        for words in commands(line, "make"):
            assert words and words[0] in targets, f"{document.name}: no make target {words[:1]}: {line}"
        for script in ("deploy.sh", "teardown.sh"):
            for words in commands(line, script):
                given = [w for w in itertools.takewhile(lambda w: w != "--", words) if w.startswith("-")]
                unknown = set(given) - script_options(REPO / "infra" / script)
                assert not unknown, f"{document.name}: infra/{script} has no option {sorted(unknown)}: {line}"


def expand(path: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    return [
        p for option in match.group(1).split(",") for p in expand(path[: match.start()] + option + path[match.end() :])
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.name)
def test_repository_paths_exist(document):
    text = document.read_text(encoding="utf-8")
    for mention in sorted(set(REPOSITORY_PATH.findall(text))):
        for path in expand(mention):
            assert list(REPO.glob(path)) or (REPO / path).exists(), (
                f"{document.name} names {path}, which does not exist"
            )


def test_the_checks_catch_what_they_are_for():
    """The extraction finds what a document's shell calls, so a wrong option would fail above."""
    line = 'X=$(az keyvault secret set --vault-name "$V" --nmae s --file "$F") && make tset'
    (az,) = commands(line, "az")
    assert commands("synapse-ml-track report --experiment synapse-ml-track", "synapse-ml-track") == [
        ["report", "--experiment", "synapse-ml-track"]
    ]
    assert (
        az[:3] == ["keyvault", "secret", "set"] and "--nmae" in az and "--nmae" not in AZ_FLAGS["keyvault secret set"]
    )
    assert commands(line, "make") == [["tset"]]
    assert script_options(REPO / "infra" / "deploy.sh") >= {"--resource-group", "-g", "--parameters", "--dry-run"}
    assert expand("infra/modules/{aml,storage}.bicep") == ["infra/modules/aml.bicep", "infra/modules/storage.bicep"]
