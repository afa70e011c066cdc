// A StorageV2 account with secure defaults, blob and container soft delete, an optional
// filesystem (container) and diagnostic settings. Used for the Azure ML workspace storage and
// for the Synapse workspace's ADLS Gen2 account (isHnsEnabled = true).

@description('Azure region of the account.')
param location string

@description('Storage account name: 3-24 lowercase letters and digits, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Enable the hierarchical namespace (ADLS Gen2). Synapse needs it; Azure ML workspace storage must not have it.')
param isHnsEnabled bool

@description('Allow Shared Key (account key and SAS) authorization. Azure ML workspace storage needs it: its default datastores use the account key and MLflow artifacts travel through SAS URLs. Keep it off elsewhere.')
param allowSharedKeyAccess bool

@description('Name of a filesystem (blob container) to create; empty creates none.')
param filesystemName string = ''

@description('Days deleted blobs and containers stay recoverable.')
@minValue(1)
@maxValue(365)
param softDeleteRetentionDays int

@description('Resource id of the Log Analytics workspace that receives diagnostics.')
param logAnalyticsId string

@description('Tags applied to every resource.')
param tags object

// The public endpoint stays reachable in the dev setup: Synapse Spark, Azure ML and the deploy
// command reach it over TLS 1.2. Production should add private endpoints and set
// publicNetworkAccess to Disabled.
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_59:The dev environment reaches storage over its public endpoint (TLS 1.2 only, no anonymous blob access); production adds private endpoints.
  //checkov:skip=CKV_AZURE_35:Default network action Allow: Synapse Spark pools and Azure ML compute have no fixed addresses in the dev setup; production uses private endpoints.
  //checkov:skip=CKV_AZURE_206:LRS keeps the dev environment cheap; production sets a geo-redundant SKU.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    isHnsEnabled: isHnsEnabled
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: allowSharedKeyAccess
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
  }
}

resource filesystem 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (!empty(filesystemName)) {
  parent: blobService
  name: filesystemName
  properties: {
    publicAccess: 'None'
  }
}

resource accountDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: logAnalyticsId
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
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
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

@description('Resource id of the storage account.')
output id string = account.id

@description('Name of the storage account.')
output name string = account.name

@description('ADLS Gen2 (dfs) endpoint of the account.')
output dfsEndpoint string = account.properties.primaryEndpoints.dfs
