"""Offline validation of infra/: every Bicep file parses (pycep-parser), modules are wired with
the parameters they declare, the Spark pool installs the repository's requirements.txt, the
roles and secure defaults are in place, and checkov finds no failure but explained skips.

pycep-parser and checkov live in their own virtualenv (their pins clash with MLflow's); they
run as subprocesses from SMT_TOOLS_BIN (default .venv-tools/bin). The parsed files come from
conftest.py's session fixtures `parsed` and `trees` (tests/bicep_support.py)."""

from __future__ import annotations

import json
import os
import re
import string
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bicep_support import BICEP_FILES, INFRA, REPO, body, resources, tool

MAIN = INFRA / "main.bicep"
BUILT_IN_ROLES = {
    "AzureML Data Scientist": "f6c7c914-8db3-469d-8ca1-694a8f32e121",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
}


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    checkov = tool("checkov")
    environment = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    result = subprocess.run(
        [str(checkov), "--directory", str(INFRA), "--framework", "bicep", "--output", "json", "--skip-download"],
        capture_output=True, text=True, env=environment, timeout=600, check=False,
    )  # fmt: skip
    assert result.stdout.strip(), f"checkov printed no report:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout)


def dotted(node: Any) -> str:
    """`a.b.c` for a chain of property accessors, the identifier itself otherwise."""
    if isinstance(node, dict) and node.get("operator", {}).get("type") == "property_accessor":
        operands = node["operator"]["operands"]
        return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"
    return str(node)


def description(declaration: dict[str, Any]) -> str:
    return next((d["argument"] for d in declaration.get("decorators", []) if d["type"] == "description"), "")


def decorator(declaration: dict[str, Any], kind: str) -> Any:
    return next((d["argument"] for d in declaration.get("decorators", []) if d["type"] == kind), None)


@pytest.mark.parametrize("path", [p.relative_to(INFRA).as_posix() for p in BICEP_FILES])
def test_bicep_file_parses(parsed, path):
    assert "error" not in parsed[path], parsed[path].get("error")


def test_main_is_a_thin_layer_over_modules(trees):
    main = trees["main.bicep"]
    assert not main.get("resources"), "main.bicep declares resources; put them in a module"
    for name, module in main["modules"].items():
        assert (INFRA / module["detail"]["path"]).is_file(), f"module {name} points at a missing file"


def test_module_calls_pass_exactly_the_declared_parameters(trees):
    for caller, tree in trees.items():
        for name, module in tree.get("modules", {}).items():
            target = (Path(caller).parent / module["detail"]["path"]).as_posix()
            declared = trees[target]["parameters"]
            passed = set(body(module)["params"])
            required = {param for param, spec in declared.items() if spec["default"] is None}
            assert passed <= set(declared), f"{caller}: module {name} passes unknown {sorted(passed - set(declared))}"
            assert required <= passed, f"{caller}: module {name} misses required {sorted(required - passed)}"


def test_generated_names_fit_the_module_limits(trees):
    main = trees["main.bicep"]
    worst = {
        name: "a" * (decorator(spec, "max_length") or 0) or max(decorator(spec, "allowed") or [""], key=len)
        for name, spec in main["parameters"].items()
    }
    worst["suffix"] = "a" * main["variables"]["suffix"]["value"]["function"]["parameters"]["number_to_take"]
    for module_name, module in main["modules"].items():
        declared = trees[module["detail"]["path"]]["parameters"]
        for param, value in body(module)["params"].items():
            if not (isinstance(value, str) and "${" in value):
                continue
            longest = string.Template(value).substitute(worst)
            limit = decorator(declared[param], "max_length")
            assert limit is None or len(longest) <= limit, (
                f"{module_name}.{param} can reach {len(longest)} > {limit} characters"
            )


def test_parameters_and_outputs_are_described(trees):
    for path, tree in trees.items():
        for kind in ("parameters", "outputs"):
            for name, declaration in tree.get(kind, {}).items():
                assert description(declaration), f"{path}: {kind[:-1]} {name} has no @description"


def test_spark_pool_is_35_autoscaled_autopaused(trees):
    pools = [
        (path, pool)
        for path, tree in trees.items()
        for pool in resources(tree, "Microsoft.Synapse/workspaces/bigDataPools").values()
        if not pool["existing"]
    ]
    assert [path for path, _ in pools] == ["modules/spark-pool.bicep"], "expected exactly one Spark pool declaration"
    properties = body(pools[0][1])["properties"]
    assert properties["sparkVersion"] == "3.5"
    assert properties["autoScale"]["enabled"] is True
    assert properties["autoPause"]["enabled"] is True


def test_spark_pool_gets_its_libraries_only_once_it_exists(trees):
    """Azure refuses libraryRequirements on a pool being created (SparkComputePropertiesNotAllowed,
    Azure/bicep#8502): the first deployment creates the pool, waits for its library manager, then
    sets the libraries (AVM's big-data-pool module); a redeployment sets them in its one PUT."""
    pool = next(
        iter(resources(trees["modules/spark-pool.bicep"], "Microsoft.Synapse/workspaces/bigDataPools").values())
    )
    libraries = body(pool)["properties"]["libraryRequirements"]["operator"]
    assert libraries["type"] == "conditional"
    assert libraries["operands"]["condition"] == {
        "function": {"type": "empty", "parameters": {"item_to_test": "requirements"}}
    }
    assert libraries["operands"]["true_value"] is None
    assert libraries["operands"]["false_value"] == {"filename": "requirements.txt", "content": "requirements"}

    synapse = trees["modules/synapse.bicep"]
    loaded = synapse["variables"]["requirements"]["value"]["function"]
    assert loaded["type"] == "load_text_content"
    assert (INFRA / "modules" / loaded["parameters"]["file_path"]).resolve() == REPO / "requirements.txt"
    later = synapse["variables"]["addLibrariesLater"]["value"]["operator"]
    assert later["type"] == "and"
    assert later["operands"]["operand_1"] == {
        "operator": {"type": "not", "operands": {"bool_value": "sparkPoolExists"}}
    }

    calls = {name: m for name, m in synapse["modules"].items() if m["detail"]["path"] == "spark-pool.bicep"}
    assert len(calls) == 2, "the pool is deployed by two module calls: create, then add libraries"
    ((create_name, create),) = [(n, m) for n, m in calls.items() if "condition" not in m["config"]]
    ((add_name, add),) = [(n, m) for n, m in calls.items() if "condition" in m["config"]]
    # Creating: libraries only when the pool exists already.
    passed = body(create)["params"]["requirements"]["operator"]
    assert passed["type"] == "conditional" and passed["operands"]["condition"] == "sparkPoolExists"
    assert passed["operands"]["false_value"] == ""
    # Adding: only on a first deployment with libraries, after the wait, which follows the creation.
    assert add["config"]["condition"] == "addLibrariesLater"
    assert body(add)["params"]["requirements"] == "requirements"
    (wait_name,) = body(add)["dependsOn"]
    wait = synapse["resources"][wait_name]
    assert (
        wait["type"] == "Microsoft.Resources/deploymentScripts" and wait["config"]["condition"] == "addLibrariesLater"
    )
    assert body(wait)["dependsOn"] == [create_name]
    assert re.fullmatch(r"Start-Sleep -Seconds (\d+)", body(wait)["properties"]["scriptContent"])
    assert int(body(wait)["properties"]["scriptContent"].split()[-1]) >= 300
    assert dotted(body(trees["main.bicep"]["modules"]["synapse"])["params"]["sparkPoolExists"]) == "sparkPoolExists"


def test_key_vaults_use_rbac_so_a_redeployment_keeps_access(trees):
    """Each deployment replaces an access-policy vault's policies, cutting Azure ML off from its vault
    (Microsoft's how-to-create-workspace-template.md): every vault is RBAC-authorized, with no policies."""
    (vault,) = resources(trees["modules/keyvault.bicep"], "Microsoft.KeyVault/vaults").values()
    properties = body(vault)["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert "accessPolicies" not in properties
    assert properties["createMode"] == "createMode", "a soft-deleted vault must be recoverable (createMode recover)"
    main_modules = trees["main.bicep"]["modules"]
    vault_calls = [m for m in main_modules.values() if m["detail"]["path"] == "modules/keyvault.bicep"]
    assert len(vault_calls) == 2
    assert {body(m)["params"]["createMode"] for m in vault_calls} == {"amlKeyVaultCreateMode", "jobKeyVaultCreateMode"}
    aml_vault = dotted(body(main_modules["aml"])["params"]["keyVaultId"]).split(".")[0]
    assert main_modules[aml_vault]["detail"]["path"] == "modules/keyvault.bicep"


def test_role_assignments_grant_the_documented_roles(trees):
    granted = set()
    for tree in trees.values():
        symbols = {name: spec["type"] for name, spec in tree.get("resources", {}).items()}
        role_ids = tree.get("variables", {}).get("roleIds", {}).get("value", {})
        for assignment in resources(tree, "Microsoft.Authorization/roleAssignments").values():
            config = body(assignment)
            role_key = dotted(
                config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
            ).split(".")[-1]
            granted.add((role_ids[role_key], symbols[config["scope"]], config["properties"]["principalId"]))
    expected = {
        (
            BUILT_IN_ROLES["AzureML Data Scientist"],
            "Microsoft.MachineLearningServices/workspaces",
            "servicePrincipalObjectId",
        ),
        (BUILT_IN_ROLES["Key Vault Secrets User"], "Microsoft.KeyVault/vaults", "synapsePrincipalId"),
        (BUILT_IN_ROLES["Storage Blob Data Contributor"], "Microsoft.Storage/storageAccounts", "synapsePrincipalId"),
    }
    assert expected <= granted, f"missing role assignments: {expected - granted}"


def test_roles_are_wired_to_the_right_resources(trees):
    params = body(trees["main.bicep"]["modules"]["roles"])["params"]
    assert dotted(params["synapsePrincipalId"]) == "synapse.outputs.principalId"
    assert dotted(params["amlWorkspaceName"]) == "aml.outputs.name"
    assert dotted(params["jobKeyVaultName"]) == "jobVault.outputs.name"
    assert dotted(params["dataLakeAccountName"]) == "dataLake.outputs.name"
    main_modules = trees["main.bicep"]["modules"]
    assert body(main_modules["dataLake"])["params"]["isHnsEnabled"] is True, "Synapse needs ADLS Gen2"


def test_storage_and_key_vault_have_secure_defaults(trees):
    storage = trees["modules/storage.bicep"]
    (account,) = resources(storage, "Microsoft.Storage/storageAccounts").values()
    properties = body(account)["properties"]
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["allowBlobPublicAccess"] is False
    assert properties["supportsHttpsTrafficOnly"] is True
    (blob,) = resources(storage, "Microsoft.Storage/storageAccounts/blobServices").values()
    assert body(blob)["properties"]["deleteRetentionPolicy"]["enabled"] is True
    assert body(blob)["properties"]["containerDeleteRetentionPolicy"]["enabled"] is True
    (vault,) = resources(trees["modules/keyvault.bicep"], "Microsoft.KeyVault/vaults").values()
    assert body(vault)["properties"]["enableSoftDelete"] is True
    assert body(vault)["properties"]["enablePurgeProtection"] is True


def test_every_service_sends_diagnostics_to_log_analytics(trees):
    monitored = (
        "Microsoft.Storage/storageAccounts",
        "Microsoft.KeyVault/vaults",
        "Microsoft.MachineLearningServices/workspaces",
        "Microsoft.Synapse/workspaces",
    )
    for path, tree in trees.items():
        diagnosed = {
            body(setting)["scope"] for setting in resources(tree, "Microsoft.Insights/diagnosticSettings").values()
        }
        for kind in monitored:
            for name, resource in resources(tree, kind).items():
                if not resource["existing"]:
                    assert name in diagnosed, f"{path}: {name} ({kind}) has no diagnostic setting"


def test_outputs_give_names_and_tracking_uri_parts(trees):
    outputs = set(trees["main.bicep"]["outputs"])
    expected = {
        "amlWorkspaceName", "amlRegion", "subscriptionId", "resourceGroupName", "mlflowTrackingUri",
        "synapseWorkspaceName", "sparkPoolName", "dataLakeAccountName", "dataLakeFilesystem", "jobKeyVaultName",
        "clientSecretName",
    }  # fmt: skip
    assert expected <= outputs, f"missing outputs: {expected - outputs}"


def test_dev_parameters_file_fits_main(trees):
    declared = trees["main.bicep"]["parameters"]
    values = json.loads((INFRA / "main.parameters.dev.json").read_text(encoding="utf-8"))["parameters"]
    assert set(values) <= set(declared), f"unknown parameters: {set(values) - set(declared)}"
    required = {name for name, spec in declared.items() if spec["default"] is None}
    assert required <= set(values), f"required parameters missing: {required - set(values)}"
    for name, entry in values.items():
        value, spec = entry["value"], declared[name]
        allowed = decorator(spec, "allowed")
        assert allowed is None or value in allowed, f"{name}={value!r} is not one of {allowed}"
        if isinstance(value, str):
            assert len(value) >= (decorator(spec, "min_length") or 0)
            assert len(value) <= (decorator(spec, "max_length") or len(value))
        if isinstance(value, int):
            assert value >= (decorator(spec, "min_value") or value)
            assert value <= (decorator(spec, "max_value") or value)
    assert values["sparkMaxNodes"]["value"] >= values["sparkMinNodes"]["value"]


def test_linked_services_match_the_infrastructure(trees):
    key_vault = json.loads((INFRA / "linked-services" / "keyvault.json").read_text(encoding="utf-8"))
    azure_ml = json.loads((INFRA / "linked-services" / "azureml.json").read_text(encoding="utf-8"))
    assert key_vault["properties"]["type"] == "AzureKeyVault"
    assert azure_ml["properties"]["type"] == "AzureMLService"
    settings = azure_ml["properties"]["typeProperties"]
    assert {"subscriptionId", "resourceGroupName", "mlWorkspaceName", "servicePrincipalId", "tenant"} <= set(settings)
    secret = settings["servicePrincipalKey"]
    assert secret["type"] == "AzureKeyVaultSecret"
    assert secret["store"] == {"referenceName": key_vault["name"], "type": "LinkedServiceReference"}
    assert secret["secretName"] == trees["main.bicep"]["variables"]["secretNames"]["value"]["clientSecret"]
    placeholders = set(re.findall(r"\$\{(\w+)\}", json.dumps([key_vault, azure_ml])))
    documented = (REPO / "docs" / "run-on-synapse.md").read_text(encoding="utf-8")
    for placeholder in placeholders:
        assert f"{placeholder}=" in documented, f"docs/run-on-synapse.md does not say how to set {placeholder}"


def test_checkov_reports_no_failed_checks(checkov_report):
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0, "checkov could not parse some Bicep files"
    assert summary["passed"] > 0, "checkov ran no check"
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in checkov_report["results"]["failed_checks"]]
    assert not failed, "checkov failed checks (fix them, or skip with //checkov:skip=ID:reason):\n" + "\n".join(failed)


def test_checkov_skips_are_explained(checkov_report):
    for check in checkov_report["results"]["skipped_checks"]:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) >= 20, f"{check['check_id']} on {check['resource']} is skipped without a written reason"
