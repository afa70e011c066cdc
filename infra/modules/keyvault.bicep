// A Key Vault with RBAC authorization, soft delete, purge protection and diagnostic settings.
//
// RBAC, not access policies, for every vault here: each template deployment replaces a vault's
// access policies with the template's, which cuts an existing Azure ML workspace off from its
// vault ("Key Vault clears the access policies each time the template is used", Microsoft's
// how-to-create-workspace-template.md). Azure Verified Modules' Azure ML workspace examples use
// RBAC vaults the same way (avm/res/machine-learning-services/workspace tests/e2e/*/dependencies.bicep).

@description('Azure region of the vault.')
param location string

@description('Key Vault name: 3-24 letters, digits and hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('default: create the vault, or update it. recover: bring back a soft-deleted vault of the same name (after a teardown; purge protection keeps it for softDeleteRetentionInDays). infra/deploy.sh finds the value.')
@allowed([
  'default'
  'recover'
])
param createMode string

@description('Days a deleted vault or secret stays recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int

@description('Resource id of the Log Analytics workspace that receives diagnostics.')
param logAnalyticsId string

@description('Tags applied to every resource.')
param tags object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:Network default action Allow: Synapse Spark pools and Azure ML reach the vault over its public endpoint in the dev setup (Entra ID auth only); production adds private endpoints.
  //checkov:skip=CKV_AZURE_189:Public network access stays enabled for the same reason as CKV_AZURE_109.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    createMode: createMode
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

@description('Resource id of the vault.')
output id string = vault.id

@description('Name of the vault.')
output name string = vault.name

@description('Data-plane URI of the vault.')
output uri string = vault.properties.vaultUri
