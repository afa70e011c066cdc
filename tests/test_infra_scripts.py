"""infra/deploy.sh and infra/teardown.sh against a stand-in Azure CLI (tests/fake_az.py): a first
deployment, a redeployment, a teardown and a recreation of the same resource group, with Azure's
soft-delete rules for Key Vault and Azure ML. Both scripts pass ShellCheck."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support import REPO, VENV_BIN

GROUP = "rg-mltrack-dev"
PARAMETERS = REPO / "infra" / "main.parameters.dev.json"


@pytest.fixture
def azure(tmp_path):
    """An empty resource group in the stand-in, and a way to run the scripts against it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "az"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{REPO / "tests" / "fake_az.py"}" "$@"\n')
    wrapper.chmod(0o755)
    state_file, log = tmp_path / "azure.json", tmp_path / "az.log"
    state_file.write_text(
        json.dumps({"groups": {GROUP: {"pools": [], "workspaces": [], "vaults": []}}, "deleted_vaults": []})
    )
    environ = {
        **os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_AZ_STATE": str(state_file), "FAKE_AZ_LOG": str(log),
    }  # fmt: skip

    class Azure:
        state_path = state_file

        def run(self, script: str, *args: str) -> subprocess.CompletedProcess:
            log.write_text("")
            return subprocess.run(
                ["bash", str(REPO / "infra" / script), *args], capture_output=True, text=True, env=environ, timeout=60
            )

        @property
        def state(self) -> dict:
            return json.loads(state_file.read_text())

        def write_state(self, value: dict) -> None:
            state_file.write_text(json.dumps(value))

        @property
        def calls(self) -> list[list[str]]:
            return [json.loads(line) for line in log.read_text().splitlines()]

        def changes(self) -> list[list[str]]:
            read_only = ("list", "exists", "show", "list-deleted")
            return [call for call in self.calls if not any(word in read_only for word in call[:3])]

    return Azure()


def deployment_parameters(azure) -> dict[str, str]:
    return azure.state["groups"][GROUP]["deployments"][-1]


def test_first_deployment_creates_the_pool_before_its_libraries(azure):
    result = azure.run("deploy.sh", "--resource-group", GROUP, "--parameters", str(PARAMETERS))
    assert result.returncode == 0, result.stderr
    assert deployment_parameters(azure) == {
        "sparkPoolExists": "false", "amlKeyVaultCreateMode": "default", "jobKeyVaultCreateMode": "default",
    }  # fmt: skip
    (create,) = [c for c in azure.calls if c[:3] == ["deployment", "group", "create"]]
    assert f"@{PARAMETERS}" in create and str(REPO / "infra" / "main.bicep") in create


def test_redeployment_sets_the_libraries_in_one_put(azure):
    assert azure.run("deploy.sh", "-g", GROUP, "-p", str(PARAMETERS)).returncode == 0
    again = azure.run("deploy.sh", "-g", GROUP, "-p", str(PARAMETERS))
    assert again.returncode == 0, again.stderr
    assert deployment_parameters(azure)["sparkPoolExists"] == "true"


def test_teardown_then_recreate_recovers_the_vaults(azure):
    assert azure.run("deploy.sh", "-g", GROUP, "-p", str(PARAMETERS)).returncode == 0

    preview = azure.run("teardown.sh", "--resource-group", GROUP, "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert azure.changes() == [], "a dry run changes nothing"
    assert "would run: az ml workspace delete --name mlw-mltrack-dev-abc123" in preview.stdout
    assert (
        "--permanently-delete" in preview.stdout
        and f"would run: az group delete --name {GROUP} --yes" in preview.stdout
    )

    torn = azure.run("teardown.sh", "--resource-group", GROUP, "--yes")
    assert torn.returncode == 0, torn.stderr
    changes = [call[: 3 if call[0] == "ml" else 2] for call in azure.changes()]
    assert changes == [["ml", "workspace", "delete"], ["group", "delete"]], (
        "workspace first (permanently), then the group"
    )
    assert "recovers it on the next deployment" in torn.stdout
    assert {v["name"] for v in azure.state["deleted_vaults"]} == {"kvmlmltrackdevabc123", "kvjbmltrackdevabc123"}
    assert not azure.state.get("deleted_workspaces"), "no soft-deleted workspace blocks its name"

    # The group is created again (az group create, as in the walkthrough), then deployed.
    state = azure.state
    state["groups"][GROUP] = {"pools": [], "workspaces": [], "vaults": []}
    azure.write_state(state)
    recreated = azure.run("deploy.sh", "-g", GROUP, "-p", str(PARAMETERS))
    assert recreated.returncode == 0, recreated.stderr
    assert deployment_parameters(azure) == {
        "sparkPoolExists": "false", "amlKeyVaultCreateMode": "recover", "jobKeyVaultCreateMode": "recover",
    }  # fmt: skip
    assert azure.state["deleted_vaults"] == []


def test_a_vault_without_purge_protection_is_purged(azure):
    state = azure.state
    state["groups"][GROUP]["vaults"] = [{"name": "kvscratch", "location": "westeurope", "purgeProtection": False}]
    azure.write_state(state)
    result = azure.run("teardown.sh", "-g", GROUP, "-y")
    assert result.returncode == 0, result.stderr
    assert ["keyvault", "purge", "--name", "kvscratch", "--location", "westeurope"] in azure.calls
    assert azure.state["deleted_vaults"] == []


def test_deploy_dry_run_prints_the_command_and_deploys_nothing(azure):
    result = azure.run("deploy.sh", "-g", GROUP, "-p", str(PARAMETERS), "--dry-run", "--", "--what-if")
    assert result.returncode == 0, result.stderr
    assert "would run: az deployment group create" in result.stdout and "--what-if" in result.stdout
    assert azure.changes() == []


def test_scripts_refuse_bad_arguments_in_one_line(azure):
    for script in ("deploy.sh", "teardown.sh"):
        result = azure.run(script, "--colour", "blue")
        assert result.returncode == 2 and result.stderr.startswith("error: unknown argument --colour")
    missing = azure.run("deploy.sh", "-g", GROUP, "-p", "no-such.json")
    assert missing.returncode == 2 and "parameters file no-such.json not found" in missing.stderr


def test_the_stand_in_refuses_what_azure_refuses(azure):
    """Contract of tests/fake_az.py itself: options the CLI lacks, purging a protected vault."""
    state = azure.state
    state["deleted_vaults"] = [{"name": "kvx", "location": "westeurope", "purgeProtection": True, "group": GROUP}]
    azure.write_state(state)
    environment = {**os.environ, "FAKE_AZ_STATE": str(azure.state_path), "FAKE_AZ_LOG": os.devnull}
    fake = [sys.executable, str(REPO / "tests" / "fake_az.py")]
    unknown = subprocess.run(
        [*fake, "keyvault", "purge", "--name", "kvx", "--force"], capture_output=True, text=True, env=environment
    )
    assert unknown.returncode == 2 and "unrecognized arguments: --force" in unknown.stderr
    protected = subprocess.run(
        [*fake, "keyvault", "purge", "--name", "kvx"], capture_output=True, text=True, env=environment
    )
    assert protected.returncode == 1 and "purge protection" in protected.stderr


@pytest.mark.parametrize("script", ["deploy.sh", "teardown.sh"])
def test_scripts_pass_shellcheck(script):
    result = subprocess.run(
        [str(VENV_BIN / "shellcheck"), str(REPO / "infra" / script)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
