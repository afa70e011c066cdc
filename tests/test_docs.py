"""The shell in the documentation, checked as a user would run it: each document's ```bash blocks,
in order, as one bash script (later blocks use earlier blocks' variables). These are the blocks
that cannot run here (Azure, a Synapse workspace, the test suite itself); the ```console
transcripts of README.md and docs/ are run instead, by tests/test_docs_run.py.

- ShellCheck finds nothing (quoting, word splitting, unset variables...).
- Every `az` command and option exists in the Azure CLI (tests/data/az_cli_flags.json, read off
  azure-cli 2.91.0's help), every `synapse-ml-track` command line parses with the real parser,
  every `make` target and every option of infra/*.sh exists.
- Every repository path the documents name exists (braces expanded).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from synapse_ml_track.cli import build_parser
from synapse_ml_track.config import AzureConfig
from synapse_ml_track.errors import CredentialError
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking import auth

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


# ---- who a Synapse job runs as (issue 21, defect 10) ----------------------------------------------
# A Spark job definition submitted from Synapse Studio runs as the user who submits it; run by a
# pipeline, as the workspace's managed identity (Microsoft Tech Community, "Understand the identity
# used during component execution in Synapse"). The roles a job needs belong to that identity, so
# every statement of it names both cases.

IDENTITY_DOCUMENTS = [REPO / "README.md", REPO / "docs" / "aml.md", REPO / "docs" / "run-on-synapse.md"]
WORKSPACE_IDENTITY = re.compile(
    r"\b(?:workspace|synapse)(?:'s)? (?:managed |system-assigned )?identity\b|\bmanaged identity\b"
    r"|\bsystem-assigned identity\b",
    re.I,
)
A_JOB = re.compile(r"\bjobs?\b|\bbatch\b", re.I)


def flat(text: str) -> str:
    return " ".join(text.replace("`", "").replace("*", "").split())


def sentences(text: str) -> list[str]:
    """Sentences and their clauses (split at `.`, `;` and table cells), whitespace collapsed."""
    return [part for part in re.split(r"(?<=[.;|])\s+|\s\|\s", flat(text)) if part.strip()]


def texts_naming_identities() -> list[tuple[str, str]]:
    """What a user reads about identities, as (where, text): the documents, the infra comments and
    descriptions, and every string in the package (messages and docstrings)."""
    found = [(document.name, document.read_text(encoding="utf-8")) for document in DOCUMENTS]
    for path in sorted((REPO / "infra").rglob("*")):
        if path.suffix in (".bicep", ".json", ".sh"):
            text = path.read_text(encoding="utf-8")
            comments = re.findall(r"(?:^[ \t]*(?://|#)[^\n]*\n)+", text, flags=re.M)
            descriptions = re.findall(r"@description\('((?:[^'\\]|\\.)*)'\)|\"description\": \"([^\"]*)\"", text)
            chunks = comments + [one or other for one, other in descriptions]
            found += [(str(path.relative_to(REPO)), chunk.replace("//", " ").replace("#", " ")) for chunk in chunks]
    for path in sorted((REPO / "synapse_ml_track").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            found.append((str(path.relative_to(REPO)), text))
    return found


def misstatements(text: str) -> list[str]:
    """Sentences that tie a job to the workspace's identity without saying it is a pipeline's, or
    put job definitions there without Studio. A linked service's credential is its own matter."""
    found = []
    for sentence in sentences(text):
        if not (WORKSPACE_IDENTITY.search(sentence) and A_JOB.search(sentence)):
            continue
        if re.search(r"linked service's credential", sentence, re.I):
            continue
        pipeline = re.search(r"pipeline", sentence, re.I)
        unqualified_definition = re.search(r"job definition", sentence, re.I) and not re.search(
            r"Studio|submit", sentence, re.I
        )
        if not pipeline or unqualified_definition:
            found.append(sentence)
    return found


def test_nothing_says_a_synapse_job_runs_as_the_workspace_identity_alone():
    wrong = [f"{where}: {sentence}" for where, text in texts_naming_identities() for sentence in misstatements(text)]
    assert not wrong, "a job runs as its submitter from Studio, as the workspace identity from a pipeline:\n" + (
        "\n".join(wrong)
    )


@pytest.mark.parametrize("document", IDENTITY_DOCUMENTS, ids=lambda d: d.name)
def test_the_documents_say_who_a_synapse_job_runs_as(document):
    assert flat(auth.SYNAPSE_RUNS_AS).lower() in flat(document.read_text(encoding="utf-8")).lower()


def test_the_preflight_says_whose_roles_a_synapse_job_needs():
    """The credential lines of `check` (and of every job's preflight) on a Synapse pool, where the
    pool's token service and Key Vault answer for whoever runs the job (mssparkutils exists only on
    a pool: stood in for here)."""

    class Pool:
        credentials = SimpleNamespace(getSecret=lambda *args: (_ for _ in ()).throw(RuntimeError("Forbidden")))

    on_a_pool = lambda: Pool  # noqa: E731
    managed = auth.resolve_credential(AzureConfig(auth="managed_identity"), {}, Redactor(), on_a_pool)
    with pytest.raises(CredentialError) as user_assigned:
        auth.resolve_credential(
            AzureConfig(auth="managed_identity", managed_identity_client_id="1f0e"), {}, Redactor(), on_a_pool
        )
    with pytest.raises(CredentialError) as key_vault:
        auth.resolve_credential(AzureConfig(auth="keyvault", key_vault_name="kv-jobs"), {}, Redactor(), on_a_pool)
    for message in (managed.source, str(user_assigned.value), str(key_vault.value)):
        assert auth.SYNAPSE_RUNS_AS in message, message
        assert not misstatements(message), message


def test_the_identity_check_catches_what_it_is_for():
    """The wording the documents had before (issue 21, defect 10) is caught; the rule itself is not."""
    assert misstatements("On Synapse the job reads it in a batch job as the workspace's managed identity.")
    assert misstatements(
        "Without a linked service, getSecret runs as the workspace identity in job definitions and pipelines."
    )
    assert misstatements("without it: in a Spark job definition or a pipeline, the workspace's managed identity;")
    assert misstatements("Synapse job definitions run as the system-assigned identity only.")
    assert not misstatements(f"Whose roles a job needs: {auth.SYNAPSE_RUNS_AS}.")
    assert sentences("a. b; c | d") == ["a.", "b;", "c", "d"]
