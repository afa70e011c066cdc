// A Key Vault with soft delete, purge protection and diagnostic settings.

@description('Azure region of the vault.')
param location string

@description('Key Vault name: 3-24 letters, digits and hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Authorize data-plane access with Azure RBAC (true) or with access policies (false). The Azure ML workspace manages its own vault through access policies; the vault the Spark jobs read uses RBAC so that role assignments grant access.')
param enableRbacAuthorization bool

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
    enableRbacAuthorization: enableRbacAuthorization
    accessPolicies: []
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
