"""The command reference in README.md and docs/cli.md is what the parsers say (tools/cli_reference.py)."""

from __future__ import annotations

import shutil
import sys

from support import REPO

sys.path.insert(0, str(REPO / "tools"))
import cli_reference  # noqa: E402


def test_the_checked_in_reference_is_what_the_parsers_say():
    assert cli_reference.main(["--check"]) == 0, "run `python tools/cli_reference.py` and commit the result"


def test_a_reference_out_of_step_with_the_parsers_is_caught(tmp_path, monkeypatch):
    readme, doc = tmp_path / "README.md", tmp_path / "cli.md"
    shutil.copy(cli_reference.README, readme)
    shutil.copy(cli_reference.CLI_DOC, doc)
    monkeypatch.setattr(cli_reference, "README", readme)
    monkeypatch.setattr(cli_reference, "CLI_DOC", doc)
    monkeypatch.setattr(cli_reference, "REPO", tmp_path)
    assert cli_reference.main(["--check"]) == 0
    doc.write_text(doc.read_text().replace("--run-key RUN_KEY", "--run-id RUN_ID"))
    assert cli_reference.main(["--check"]) == 1
    assert cli_reference.main([]) == 0 and cli_reference.main(["--check"]) == 0  # regenerated
    every_option = {option for _, parser in cli_reference.subcommand_parsers().values() for option in
                    cli_reference.options_of(parser)}  # fmt: skip
    assert all(f"`{option}`" in readme.read_text() for option in every_option)
