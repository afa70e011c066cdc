#!/usr/bin/env bash
# Remove everything infra/deploy.sh made, so the same resource group can be deployed again.
#
# Two kinds of resource outlive a plain `az group delete`:
# - Azure ML workspaces are soft-deleted for 14 days and block their name (Microsoft's
#   concept-soft-delete.md): each is deleted with --permanently-delete first.
# - Key Vaults are soft-deleted for softDeleteRetentionDays. A vault without purge protection is
#   purged; one with it (main.bicep's vaults) cannot be, and stays until its purge date: the next
#   infra/deploy.sh recovers it (createMode recover) instead of failing on its name.
#
# Usage: infra/teardown.sh --resource-group RG [--dry-run] [--yes]
# --dry-run lists what exists and prints every command that would change something, changing nothing.
set -euo pipefail

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

resource_group=""
dry_run=false
assume_yes=false
while [ $# -gt 0 ]; do
  case "$1" in
    -g | --resource-group) resource_group=${2:?}; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -y | --yes) assume_yes=true; shift ;;
    -h | --help) usage ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$resource_group" ] || { echo "error: --resource-group is required" >&2; exit 2; }

run() {
  if $dry_run; then
    printf 'would run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

if [ "$(az group exists --name "$resource_group")" != "true" ]; then
  echo "resource group $resource_group does not exist: nothing to tear down"
  exit 0
fi
workspaces=$(az ml workspace list --resource-group "$resource_group" --query "[].name" --output tsv)
vaults=$(az keyvault list --resource-group "$resource_group" \
  --query "[].[name, location, properties.enablePurgeProtection]" --output tsv)

if ! $dry_run && ! $assume_yes; then
  read -r -p "Delete resource group $resource_group and everything in it? [y/N] " answer
  [ "$answer" = "y" ] || [ "$answer" = "Y" ] || { echo "nothing deleted"; exit 1; }
fi

while IFS= read -r workspace; do
  [ -n "$workspace" ] || continue
  run az ml workspace delete --name "$workspace" --resource-group "$resource_group" --permanently-delete --yes
done <<<"$workspaces"

run az group delete --name "$resource_group" --yes

while IFS=$'\t' read -r vault location purge_protected; do
  [ -n "$vault" ] || continue
  if [ "$purge_protected" = "true" ]; then
    echo "Key Vault $vault is soft-deleted with purge protection; infra/deploy.sh recovers it on the next deployment"
  else
    run az keyvault purge --name "$vault" --location "$location"
  fi
done <<<"$vaults"
