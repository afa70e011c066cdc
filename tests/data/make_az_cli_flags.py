"""Regenerate az_cli_flags.json: the options each `az` command the docs and infra/*.sh use accepts.

The Azure CLI is large and not needed to run the tests; the table is read off its help once:
    python3.11 -m venv /tmp/az && /tmp/az/bin/pip install azure-cli==2.91.0
    PATH=/tmp/az/bin:$PATH python tests/data/make_az_cli_flags.py > tests/data/az_cli_flags.json
`az ml` is an extension that cannot be installed offline: its entries are added from the extension's
source (Azure/azure-cli-extensions, src/machinelearningservices, workspace commands).
"""

import json
import re
import subprocess
import sys

COMMANDS = [
    "account show",
    "ad signed-in-user show",
    "ad sp create-for-rbac",
    "ad sp credential reset",
    "ad sp show",
    "deployment group create",
    "deployment group show",
    "group create",
    "group delete",
    "group exists",
    "keyvault list",
    "keyvault list-deleted",
    "keyvault purge",
    "keyvault secret set",
    "keyvault show-deleted",
    "resource list",
    "synapse linked-service create",
    "synapse pipeline create-run",
    "synapse role assignment create",
    "synapse role assignment list",
    "synapse spark pool show",
]
GLOBAL = ["--debug", "--help", "-h", "--only-show-errors", "--output", "-o", "--query", "--subscription", "--verbose"]
AZ_ML = {
    "ml workspace list": ["--resource-group", "-g", "--max-results", "--filtered-kinds"],
    "ml workspace delete": [
        "--name",
        "-n",
        "--resource-group",
        "-g",
        "--all-resources",
        "--permanently-delete",
        "-p",
        "--no-wait",
        "--yes",
        "-y",
    ],
}
OPTION = re.compile(r"^\s{4}(--[\w-]+(?:\s+--?[\w-]+)*)")


def options(command: str) -> list[str]:
    text = subprocess.run(["az", *command.split(), "--help"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in text.splitlines():
        match = OPTION.match(line)
        if match:
            found += match.group(1).split()
    return sorted(set(found) | set(GLOBAL))


if __name__ == "__main__":
    table = {command: options(command) for command in COMMANDS}
    table.update({command: sorted(set(flags) | set(GLOBAL)) for command, flags in AZ_ML.items()})
    json.dump(
        {"source": "azure-cli 2.91.0 --help; az ml from the extension source", "commands": table},
        sys.stdout,
        indent=1,
        sort_keys=True,
    )
    print()
