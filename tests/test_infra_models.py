"""Every property a Bicep resource in infra/ sets exists, at that place, in the Azure management SDK
model of its resource type and API version: a misspelled or misplaced property fails here, offline,
where the Bicep compiler would only warn (BCP037) and ARM may drop it without a word.

The models are the SDKs' msrest models (pinned in requirements-dev.txt). Their `_attribute_map`
gives each property's serialized name, dotted where the SDK flattens ARM's `properties` envelope
into the model (`properties.sparkVersion`), and its type: a model name ('AutoScaleProperties'), a
list ('[LibraryInfo]'), a dictionary ('{str}'), a scalar ('str', 'bool', ...) or free-form 'object'.
Only object keys written in the Bicep files are checked; values that are expressions (references,
function calls) are not, except both results of `c ? a : b` and the operands of `a ?? b`."""

from __future__ import annotations

import difflib
import functools
import importlib
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

from bicep_support import BICEP_FILES, INFRA, body, parse_bicep, trees_of

KEYVAULT = "azure.mgmt.keyvault.v2023_07_01.models"
STORAGE = "azure.mgmt.storage.v2023_05_01.models"
SYNAPSE = "azure.mgmt.synapse.models"
# type@apiVersion -> (models module, model of the PUT request body). Where no released SDK has the
# API version, the nearest one is used and the comment says where the versions are written.
ARM_MODELS: dict[str, tuple[str, str]] = {
    "Microsoft.Authorization/roleAssignments@2022-04-01": (
        "azure.mgmt.authorization.v2022_04_01.models",
        "RoleAssignmentCreateParameters",
    ),
    "Microsoft.Insights/components@2020-02-02": (
        "azure.mgmt.applicationinsights.v2020_02_02.models",
        "ApplicationInsightsComponent",
    ),
    "Microsoft.Insights/diagnosticSettings@2021-05-01-preview": (
        "azure.mgmt.monitor.v2021_05_01_preview.models",
        "DiagnosticSettingsResource",
    ),
    "Microsoft.KeyVault/vaults@2023-07-01": (KEYVAULT, "VaultCreateOrUpdateParameters"),
    "Microsoft.KeyVault/vaults/secrets@2023-07-01": (KEYVAULT, "SecretCreateOrUpdateParameters"),
    # Model of 2023-04-01, not 2024-04-01: azure-mgmt-machinelearningservices 2.0.0b2, its newest release,
    # has only 2023-04-01 (_configuration.py: api_version "2023-04-01"). azure-ai-ml 1.35.2 vendors the ARM
    # API at 2025-12-01 only (azure/ai/ml/_restclient/arm_ml_service/_configuration.py), in models without
    # _attribute_map; its _restclient/azure_ai_assets_v2024_04_01 is the assets data plane, not ARM.
    "Microsoft.MachineLearningServices/workspaces@2024-04-01": (
        "azure.mgmt.machinelearningservices.models",
        "Workspace",
    ),
    # Model of 2022-10-01, not 2023-09-01: no azure-mgmt-loganalytics release has 2023-09-01. 13.0.0b7 calls
    # workspaces with 2022-10-01 (operations/_workspaces_operations.py), the next release, 13.1.0, and all
    # later ones with 2025-07-01 (_configuration.py); 2022-10-01 is the nearer.
    "Microsoft.OperationalInsights/workspaces@2023-09-01": ("azure.mgmt.loganalytics.models", "Workspace"),
    "Microsoft.Resources/deploymentScripts@2023-08-01": (
        "azure.mgmt.resource.deploymentscripts.v2023_08_01.models",
        "DeploymentScript",
    ),
    "Microsoft.Storage/storageAccounts@2023-05-01": (STORAGE, "StorageAccountCreateParameters"),
    "Microsoft.Storage/storageAccounts/blobServices@2023-05-01": (STORAGE, "BlobServiceProperties"),
    "Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01": (STORAGE, "BlobContainer"),
    "Microsoft.Synapse/workspaces@2021-06-01": (SYNAPSE, "Workspace"),
    # Model of 2021-06-01-preview, not 2021-06-01: azure-mgmt-synapse 2.1.0b7, its newest release, calls
    # bigDataPools with api-version "2021-06-01-preview" (operations/_big_data_pools_operations.py; its
    # workspaces and firewallRules with "2021-06-01"); 2.0.0, the newest stable one, has 2021-03-01 only.
    "Microsoft.Synapse/workspaces/bigDataPools@2021-06-01": (SYNAPSE, "BigDataPoolResourceInfo"),
    "Microsoft.Synapse/workspaces/firewallRules@2021-06-01": (SYNAPSE, "IpFirewallRuleInfo"),
}
# Keys of a resource body that Bicep consumes itself: they are not in the request body.
# depends_on: pycep-parser's dependsOn for a child resource declared inside its parent.
BICEP_ONLY_KEYS = {"name", "parent", "scope", "dependsOn", "depends_on"}
FREE_FORM = "object"
FLATTENING_DOT = re.compile(r"(?<!\\)\.")  # msrest's own rule: a `\.` in a key is a literal dot

Schema = dict[str, Any]  # serialized name -> msrest type string, or a Schema for a flattened group


@functools.cache
def model_schema(model: type) -> Schema:
    """The model's serialized property names as a tree: a flattened `properties.sparkVersion` is
    schema["properties"]["sparkVersion"]; the leaves are msrest type strings."""
    schema: Schema = {}
    for attribute in model._attribute_map.values():
        *groups, leaf = [part.replace("\\.", ".") for part in FLATTENING_DOT.split(attribute["key"])]
        node = schema
        for group in groups:
            node = node.setdefault(group, {})
        node[leaf] = attribute["type"]
    return schema


def merged(schemas: list[Schema]) -> Schema:
    result: Schema = {}
    for schema in schemas:
        for name, member in schema.items():
            if isinstance(member, dict) and isinstance(result.get(name), dict):
                result[name] = merged([result[name], member])
            else:
                result.setdefault(name, member)
    return result


def is_expression(value: Any) -> bool:
    """pycep-parser's form of an operator or a function call: {"operator" or "function": {"type": ...}}.
    An object literal of just that shape (one such key, holding an object with a `type`) passes for one."""
    if not (isinstance(value, dict) and len(value) == 1):
        return False
    ((key, inner),) = value.items()
    return key in ("operator", "function") and isinstance(inner, dict) and "type" in inner


def is_loop(value: Any) -> bool:
    """pycep-parser's form of `[for x in xs: {...}]`, an array of its "config"."""
    return isinstance(value, dict) and value.keys() == {"loop_type", "condition", "config"}


def is_object(value: Any) -> bool:
    return isinstance(value, dict) and not is_loop(value)


def is_array(value: Any) -> bool:
    return isinstance(value, list) or is_loop(value)


def literals(value: Any) -> Iterator[Any]:
    """The literal values a Bicep value can take: both results of `c ? a : b`, each operand of
    `a ?? b`, the value itself when not an expression; nothing for other expressions."""
    if not is_expression(value):
        yield value
        return
    operator = value.get("operator", {})
    if operator.get("type") == "conditional":
        yield from literals(operator["operands"]["true_value"])
        yield from literals(operator["operands"]["false_value"])
    elif operator.get("type") == "coalesce":
        for operand in operator["operands"].values():
            yield from literals(operand)


def unquoted(key: str) -> str:
    """pycep-parser keeps the quotes of a quoted key: `'odata.type': ...`."""
    return key.strip("'")


def items(array: Any, path: str) -> Iterator[tuple[Any, str]]:
    if is_loop(array):
        yield array["config"], f"{path}[*]"
    else:
        yield from ((item, f"{path}[{index}]") for index, item in enumerate(array))


def element_type(type_name: str) -> tuple[str, str]:
    """'[LibraryInfo]' -> ('LibraryInfo', '[*]'), '{str}' -> ('str', '.*'), 'Sku' -> ('Sku', '')."""
    suffix = ""
    while type_name[:1] in ("[", "{"):
        suffix += "[*]" if type_name[0] == "[" else ".*"
        type_name = type_name[1:-1]
    return type_name, suffix


@dataclass
class ModelCheck:
    """Checks one resource body against its model, adding one message per wrong key to problems."""

    models: ModuleType
    where: str
    problems: list[str]
    resource_schema: Schema = field(default_factory=dict)

    def model(self, type_name: str) -> type | None:
        model = getattr(self.models, type_name, None)
        return model if isinstance(model, type) and hasattr(model, "_attribute_map") else None

    def resource(self, request_body: dict[str, Any], model: type) -> None:
        self.resource_schema, label = self.concrete_schema(request_body, model)
        self.members(request_body, self.resource_schema, label, "")

    def object(self, value: dict[str, Any], model: type, path: str) -> None:
        schema, label = self.concrete_schema(value, model)
        self.members(value, schema, label, path)

    def concrete_schema(self, value: dict[str, Any], model: type) -> tuple[Schema, str]:
        """The schema of the subtype a polymorphic model's discriminator selects (deploymentScripts'
        `kind`); all subtypes' merged when the discriminator is not one of theirs (a reference, say)."""
        for attribute, subtypes in model._subtype_map.items():
            discriminator = model._attribute_map[attribute]["key"]
            chosen = value.get(discriminator)
            if not (isinstance(chosen, str) and chosen in subtypes):
                any_subtype = merged([model_schema(self.model(name)) for name in subtypes.values()])
                return any_subtype, f"{model.__name__} (any {discriminator})"
            if self.model(subtypes[chosen]) is not model:
                return self.concrete_schema(value, self.model(subtypes[chosen]))
        return model_schema(model), model.__name__

    def members(self, value: dict[str, Any], schema: Schema, label: str, path: str) -> None:
        for quoted_key, member in value.items():
            key = unquoted(quoted_key)
            member_path = f"{path}.{key}" if path else key
            if key not in schema:
                self.unknown(key, member_path, schema, label)
            elif isinstance(schema[key], dict):
                for literal in literals(member):
                    if is_object(literal):
                        self.members(literal, schema[key], f"{label}.{key}", member_path)
                    elif is_array(literal):
                        self.problems.append(f"{self.where}: {member_path} is an array; {label}.{key} is an object")
            else:
                self.value(member, schema[key], member_path)

    def value(self, value: Any, type_name: str, path: str) -> None:
        for literal in literals(value):
            if type_name == FREE_FORM or not (is_object(literal) or is_array(literal)):
                continue
            if type_name.startswith("[") and is_array(literal):
                for item, item_path in items(literal, path):
                    self.value(item, type_name[1:-1], item_path)
            elif type_name.startswith("{") and is_object(literal):
                for key, item in literal.items():
                    self.value(item, type_name[1:-1], f"{path}.{unquoted(key)}")
            elif self.model(type_name) and is_object(literal):
                self.object(literal, self.model(type_name), path)
            else:
                written = "an object" if is_object(literal) else "an array"
                self.problems.append(f"{self.where}: {path} is {written}; the model's type is '{type_name}'")

    def unknown(self, key: str, path: str, schema: Schema, label: str) -> None:
        parent = path.rpartition(".")[0]
        elsewhere = self.locations(key)
        close = difflib.get_close_matches(key, list(schema), n=1)
        if elsewhere:
            hint = f"; did you mean {elsewhere[0]}?"
        elif close:
            hint = f"; did you mean {parent + '.' if parent else ''}{close[0]}?"
        else:
            hint = f"; valid here: {', '.join(sorted(schema))}"
        self.problems.append(f"{self.where}: {path} is not a property of {label}{hint}")

    def locations(self, key: str) -> list[str]:
        """Where key is a property anywhere in the resource's model, shortest path first."""
        found = []
        queue: deque[tuple[Schema, str]] = deque([(self.resource_schema, "")])
        seen = set()
        while queue:
            schema, prefix = queue.popleft()
            for name, member in schema.items():
                if name == key:
                    found.append(prefix + name)
                if isinstance(member, dict):
                    queue.append((member, f"{prefix}{name}."))
                    continue
                element, suffix = element_type(member)
                nested = self.model(element)
                if nested and nested not in seen:
                    seen.add(nested)
                    queue.append((model_schema(nested), f"{prefix}{name}{suffix}."))
        return found


def resource_problems(path: str, tree: dict[str, Any]) -> list[str]:
    """One message per key of a resource body in tree that its SDK model does not have there."""
    problems: list[str] = []
    for symbol, resource in tree.get("resources", {}).items():
        type_version = f"{resource['type']}@{resource['api_version']}"
        where = f"{path}: {symbol} ({type_version})"
        if type_version not in ARM_MODELS:
            problems.append(f"{where}: no SDK model for this type and API version in ARM_MODELS")
            continue
        if resource["existing"]:
            continue
        module_name, class_name = ARM_MODELS[type_version]
        models = importlib.import_module(module_name)
        request_body = {key: value for key, value in body(resource).items() if key not in BICEP_ONLY_KEYS}
        ModelCheck(models, where, problems).resource(request_body, getattr(models, class_name))
    return problems


def test_every_resource_type_and_version_has_a_model(trees):
    declared = {
        f"{resource['type']}@{resource['api_version']}"
        for tree in trees.values()
        for resource in tree.get("resources", {}).values()
    }
    assert not declared - set(ARM_MODELS), f"add to ARM_MODELS: {sorted(declared - set(ARM_MODELS))}"
    assert not set(ARM_MODELS) - declared, f"no longer in infra/: {sorted(set(ARM_MODELS) - declared)}"


@pytest.mark.parametrize("path", [p.relative_to(INFRA).as_posix() for p in BICEP_FILES])
def test_resource_properties_exist_in_the_sdk_model(trees, path):
    problems = resource_problems(path, trees[path])
    assert not problems, "properties the SDK model does not have:\n" + "\n".join(problems)


MISTAKES = """
param requirements string
param logCategories array

resource workspace 'Microsoft.Synapse/workspaces@2021-06-01' existing = {
  name: 'synapse'
}

resource pool 'Microsoft.Synapse/workspaces/bigDataPools@2021-06-01' = {
  parent: workspace
  name: 'pool'
  location: 'westeurope'
  sparkVersion: '3.5'
  properties: {
    nodeSize: {
      name: 'Small'
    }
    autoScale: {
      enabled: true
      minNodesCount: 3
      maxNodeCount: 10
    }
    libraryRequirements: empty(requirements) ? null : {
      filename: 'requirements.txt'
      contents: requirements
    }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [for category in logCategories: {
  name: 'to-log-analytics'
  scope: pool
  properties: {
    logs: [
      {
        categoryGroups: category
        enabled: true
      }
    ]
  }
}]
"""


def test_the_check_finds_misspelled_and_misplaced_properties(tmp_path):
    """A property outside `properties`, an object where the model has a string, and misspellings in a
    nested object, a `? :` result and an array item of a resource loop; the keys written right pass."""
    (tmp_path / "mistakes.bicep").write_text(MISTAKES, encoding="utf-8")
    tree = trees_of(parse_bicep([tmp_path / "mistakes.bicep"], tmp_path))["mistakes.bicep"]
    pool = "mistakes.bicep: pool (Microsoft.Synapse/workspaces/bigDataPools@2021-06-01)"
    diagnostics = "mistakes.bicep: diagnostics (Microsoft.Insights/diagnosticSettings@2021-05-01-preview)"
    assert resource_problems("mistakes.bicep", tree) == [
        f"{pool}: sparkVersion is not a property of BigDataPoolResourceInfo; did you mean properties.sparkVersion?",
        f"{pool}: properties.nodeSize is an object; the model's type is 'str'",
        f"{pool}: properties.autoScale.minNodesCount is not a property of AutoScaleProperties;"
        " did you mean properties.autoScale.minNodeCount?",
        f"{pool}: properties.libraryRequirements.contents is not a property of LibraryRequirements;"
        " did you mean properties.libraryRequirements.content?",
        f"{diagnostics}: properties.logs[0].categoryGroups is not a property of LogSettings;"
        " did you mean properties.logs[0].categoryGroup?",
    ]
