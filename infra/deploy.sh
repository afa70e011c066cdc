#!/usr/bin/env bash
# Deploy infra/main.bicep into a resource group, first or again, with the parameters that depend on
# what the group holds already:
#   sparkPoolExists           the Spark pool exists: its libraries are set in the same PUT; a first
#                             deployment creates the pool, waits, then adds them (Azure/bicep#8502)
#   amlKeyVaultCreateMode,    recover when the vault is soft-deleted (after infra/teardown.sh; purge
#   jobKeyVaultCreateMode     protection keeps it for softDeleteRetentionDays), default otherwise
#
# Usage: infra/deploy.sh --resource-group RG --parameters FILE [--dry-run] [-- more az deployment args]
# Needs: az (logged in), python3. --dry-run finds the parameters and prints the deployment command.
set -euo pipefail

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

resource_group=""
parameters=""
dry_run=false
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -g | --resource-group) resource_group=${2:?}; shift 2 ;;
    -p | --parameters) parameters=${2:?}; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) usage ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$resource_group" ] || { echo "error: --resource-group is required" >&2; exit 2; }
[ -n "$parameters" ] || { echo "error: --parameters is required (e.g. infra/main.parameters.dev.json)" >&2; exit 2; }
[ -f "$parameters" ] || { echo "error: parameters file $parameters not found" >&2; exit 2; }
infra=$(cd "$(dirname "$0")" && pwd)

# The pool name: the parameters file's, else main.bicep's default.
pool=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["parameters"].get("sparkPoolName", {}).get("value", "mltrack"))' "$parameters")

pools=$(az resource list --resource-group "$resource_group" \
  --resource-type Microsoft.Synapse/workspaces/bigDataPools --query "[].name" --output tsv)
spark_pool_exists=false
while IFS= read -r name; do
  [ "${name##*/}" = "$pool" ] && spark_pool_exists=true
done <<<"$pools"

# Soft-deleted vaults of this resource group: main.bicep names them kvml* (Azure ML) and kvjb* (jobs).
deleted=$(az keyvault list-deleted --resource-type vault \
  --query "[?contains(properties.vaultId, '/resourceGroups/${resource_group}/')].name" --output tsv)
aml_vault_mode=default
job_vault_mode=default
while IFS= read -r name; do
  case "$name" in
    kvml*) aml_vault_mode=recover ;;
    kvjb*) job_vault_mode=recover ;;
  esac
done <<<"$deleted"

echo "sparkPoolExists=$spark_pool_exists amlKeyVaultCreateMode=$aml_vault_mode jobKeyVaultCreateMode=$job_vault_mode"
command=(az deployment group create --resource-group "$resource_group" --name main
  --template-file "$infra/main.bicep" --parameters "@$parameters"
  --parameters sparkPoolExists="$spark_pool_exists" amlKeyVaultCreateMode="$aml_vault_mode"
  jobKeyVaultCreateMode="$job_vault_mode" "${extra[@]}")
if $dry_run; then
  printf 'would run:'
  printf ' %q' "${command[@]}"
  printf '\n'
  exit 0
fi
"${command[@]}"
