"""A stand-in for the Azure CLI, for testing infra/deploy.sh and infra/teardown.sh offline.

Azure Resource Manager cannot be reached from a test, so the resource group lives in a JSON file
(FAKE_AZ_STATE) and every call is appended to FAKE_AZ_LOG. The stand-in is strict where the real
CLI and Azure are:
- a command or option the real CLI does not have is refused (tests/data/az_cli_flags.json, read
  off azure-cli 2.91.0's help) with the CLI's own exit code 2;
- `--query` is evaluated with JMESPath on documents shaped like the CLI's JSON output, and
  `--output tsv` prints them as the CLI does, so a wrong query or field name gives a wrong answer;
- Azure's refusals: purging a vault with purge protection, creating a vault whose name is
  soft-deleted without createMode recover, recovering a vault that is not deleted, reusing the
  name of a soft-deleted Azure ML workspace (Microsoft's Key Vault soft-delete-overview.md and
  Azure ML concept-soft-delete.md).

Run as `python fake_az.py <az arguments>`; the tests put an `az` wrapper for it on PATH.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jmespath

FLAGS = json.loads((Path(__file__).parent / "data" / "az_cli_flags.json").read_text())["commands"]
TAKES_NO_VALUE = {"--yes", "-y", "--permanently-delete", "-p", "--dry-run", "--no-wait", "--all-resources", "--debug",
                  "--verbose", "--only-show-errors", "--help", "-h"}  # fmt: skip


class AzError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse(argv: list[str]) -> tuple[str, dict[str, list[str]]]:
    words = []
    while argv and not argv[0].startswith("-"):
        words.append(argv.pop(0))
    command = " ".join(words)
    if command not in FLAGS:
        raise AzError(f"az: '{command}' is not in the 'az' command group (or not used by this project).", 2)
    options: dict[str, list[str]] = {}
    while argv:
        flag = argv.pop(0)
        if flag not in FLAGS[command]:
            raise AzError(f"unrecognized arguments: {flag}", 2)
        values = []
        while argv and not argv[0].startswith("--") and not (len(argv[0]) == 2 and argv[0].startswith("-")):
            values.append(argv.pop(0))
        if flag not in TAKES_NO_VALUE and not values:
            raise AzError(f"argument {flag}: expected at least one argument", 2)
        options.setdefault(flag, []).extend(values)
    return command, options


def one(options: dict[str, list[str]], *names: str) -> str | None:
    for name in names:
        if name in options:
            return options[name][0]
    return None


def render(document, options: dict[str, list[str]]) -> str:
    query = one(options, "--query")
    if query:
        document = jmespath.search(query, document)
    output = one(options, "--output", "-o") or "json"
    if output == "none":
        return ""
    if output == "tsv":
        rows = document if isinstance(document, list) else [document]
        lines = []
        for row in rows:
            cells = row if isinstance(row, list) else [row]
            lines.append(
                "\t".join("" if c is None else str(c).lower() if isinstance(c, bool) else str(c) for c in cells)
            )
        return "\n".join(lines) + ("\n" if lines else "")
    return json.dumps(document, indent=2) + "\n"


def vault_document(group: str, vault: dict) -> dict:
    return {
        "id": f"/subscriptions/sub/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{vault['name']}",
        "name": vault["name"],
        "location": vault["location"],
        "resourceGroup": group,
        "properties": {"enablePurgeProtection": vault["purgeProtection"], "enableSoftDelete": True},
    }


def run(command: str, options: dict[str, list[str]], state: dict) -> str:
    groups = state.setdefault("groups", {})
    deleted = state.setdefault("deleted_vaults", [])
    group_name = (
        one(options, "--resource-group", "-g", "--name", "-n")
        if command.startswith("group")
        else one(options, "--resource-group", "-g")
    )
    group = groups.get(group_name or "")
    if command == "group exists":
        return "true\n" if group is not None else "false\n"
    if command == "group delete":
        if group is None:
            raise AzError(f"(ResourceGroupNotFound) Resource group '{group_name}' could not be found.", 3)
        for vault in group["vaults"]:
            deleted.append({**vault, "group": group_name})
        state.setdefault("deleted_workspaces", []).extend(group["workspaces"])
        del groups[group_name]
        return ""
    if group is None and command != "keyvault list-deleted" and command != "keyvault purge":
        raise AzError(f"(ResourceGroupNotFound) Resource group '{group_name}' could not be found.", 3)
    if command == "resource list":
        kind = one(options, "--resource-type")
        documents = [{"name": name, "type": kind} for name in group["pools"]] if kind.endswith("bigDataPools") else []
        return render(documents, options)
    if command == "keyvault list":
        return render([vault_document(group_name, v) for v in group["vaults"]], options)
    if command == "keyvault list-deleted":
        documents = [
            {
                "id": f"/subscriptions/sub/providers/Microsoft.KeyVault/locations/{v['location']}"
                f"/deletedVaults/{v['name']}",
                "name": v["name"],
                "properties": {
                    "vaultId": vault_document(v["group"], v)["id"],
                    "location": v["location"],
                    "purgeProtectionEnabled": v["purgeProtection"],
                    "scheduledPurgeDate": "2026-12-09T00:00:00+00:00",
                },
            }
            for v in deleted
        ]
        return render(documents, options)
    if command == "keyvault purge":
        name = one(options, "--name", "-n")
        vault = next((v for v in deleted if v["name"] == name), None)
        if vault is None:
            raise AzError(f"(DeletedVaultNotFound) Deleted vault {name} was not found.", 3)
        if vault["purgeProtection"]:
            raise AzError(
                f"(MethodNotAllowed) Operation 'DeleteVault' is not allowed: purge protection is enabled for {name}."
            )
        deleted.remove(vault)
        return ""
    if command == "ml workspace list":
        return render([{"name": w, "resource_group": group_name} for w in group["workspaces"]], options)
    if command == "ml workspace delete":
        name = one(options, "--name", "-n")
        group["workspaces"].remove(name)
        if "--permanently-delete" not in options and "-p" not in options:
            state.setdefault("deleted_workspaces", []).append(name)
        return ""
    if command == "deployment group create":
        return deploy(group_name, group, options, state)
    raise AzError(f"the stand-in does not implement '{command}'", 2)


def deploy(group_name: str, group: dict, options: dict[str, list[str]], state: dict) -> str:
    """Just what main.bicep's parameters decide; the template itself is checked by tests/test_infra.py."""
    values = dict(value.split("=", 1) for value in options.get("--parameters", []) if "=" in value)
    deleted = state["deleted_vaults"]
    for prefix, parameter in (("kvml", "amlKeyVaultCreateMode"), ("kvjb", "jobKeyVaultCreateMode")):
        mode = values.get(parameter, "default")
        soft_deleted = [v for v in deleted if v["name"].startswith(prefix) and v["group"] == group_name]
        if soft_deleted and mode != "recover":
            raise AzError(f"(VaultAlreadyExists) The vault name '{soft_deleted[0]['name']}' is already in use: a vault "
                          "with the same name exists in deleted state.")  # fmt: skip
        if mode == "recover":
            if not soft_deleted:
                raise AzError(f"(DeletedVaultNotFound) createMode recover, but no deleted vault {prefix}* to recover.")
            deleted.remove(soft_deleted[0])
    if state.get("deleted_workspaces"):
        raise AzError("(SoftDeletedWorkspaceExists) A soft-deleted workspace with the same name exists.")
    pool = f"syn-mltrack-dev/{state.get('pool_name', 'mltrack')}"
    if values.get("sparkPoolExists") == "true" and pool not in group["pools"]:
        raise AzError(
            "(SparkComputePropertiesNotAllowed) Synapse Spark pool must be created before libraries are installed."
        )
    # What main.bicep leaves in the group (names as it makes them: prefix, base name, environment, suffix).
    group["pools"] = sorted(set(group["pools"]) | {pool})
    group["workspaces"] = sorted(set(group["workspaces"]) | {"mlw-mltrack-dev-abc123"})
    for name in ("kvmlmltrackdevabc123", "kvjbmltrackdevabc123"):
        if not any(v["name"] == name for v in group["vaults"]):
            group["vaults"].append({"name": name, "location": "westeurope", "purgeProtection": True})
    group.setdefault("deployments", []).append(values)
    return ""


def main(argv: list[str]) -> int:
    state_path = Path(os.environ["FAKE_AZ_STATE"])
    with open(os.environ["FAKE_AZ_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    state = json.loads(state_path.read_text())
    try:
        command, options = parse(list(argv))
        sys.stdout.write(run(command, options, state))
    except AzError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return error.code
    finally:
        state_path.write_text(json.dumps(state, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
