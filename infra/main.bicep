// synapse-ml-track: Azure ML (MLflow tracking and model registry) plus a Synapse Spark 3.5
// pool that runs the training and scoring jobs. Deploy into an existing resource group:
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.parameters.dev.json \
//     -p servicePrincipalObjectId=<sp object id> servicePrincipalClientId=<sp app id>
// The Synapse linked services (Key Vault, Azure ML) are workspace artifacts, not ARM
// resources: create them from infra/linked-services/ as docs/run-on-synapse.md describes.

targetScope = 'resourceGroup'

@description('Azure region for every resource; defaults to the resource group region.')
param location string = resourceGroup().location

@description('Short project name used in every resource name: 3-10 lowercase letters or digits.')
@minLength(3)
@maxLength(10)
param baseName string

@description('Environment name, part of every resource name and tag.')
@allowed([
  'dev'
  'test'
  'prod'
])
param environmentName string

@description('Object id (not the application id) of the service principal the jobs use for Azure ML; it gets AzureML Data Scientist on the workspace.')
param servicePrincipalObjectId string

@description('Application (client) id of that service principal; stored in the job Key Vault.')
param servicePrincipalClientId string

@description('Client secret of that service principal. Leave empty (recommended) and set it after deployment with az keyvault secret set, so it never enters the deployment history.')
@secure()
param servicePrincipalClientSecret string = ''

@description('Object id of whoever runs synapse-ml-track deploy (user, group or CI identity); gets upload rights on the Synapse storage and may set the secret. Empty: no assignment.')
param deployerObjectId string = ''

@description('Principal type of deployerObjectId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param deployerPrincipalType string = 'User'

@description('Client IP ranges allowed through the Synapse workspace firewall: [{ name, startIpAddress, endIpAddress }].')
param allowedIpRanges array = []

@description('Name of the default filesystem of the Synapse ADLS Gen2 account; the deploy command uploads under it.')
param synapseFilesystemName string = 'synapse'

@description('Name of the Spark pool: letters and digits, at most 15 characters.')
@maxLength(15)
param sparkPoolName string = 'mltrack'

@description('Node size of the Spark pool (memory optimized).')
@allowed([
  'Small'
  'Medium'
  'Large'
])
param sparkNodeSize string = 'Small'

@description('True when the Spark pool exists already (every deployment after the first): infra/deploy.sh finds it. A first deployment creates the pool, then adds its libraries.')
param sparkPoolExists bool = false

@description('default, or recover to bring back the soft-deleted Azure ML Key Vault after a teardown (infra/deploy.sh finds it).')
@allowed([
  'default'
  'recover'
])
param amlKeyVaultCreateMode string = 'default'

@description('default, or recover to bring back the soft-deleted job Key Vault after a teardown (infra/deploy.sh finds it).')
@allowed([
  'default'
  'recover'
])
param jobKeyVaultCreateMode string = 'default'

@description('Give the Synapse workspace managed identity AzureML Data Scientist on the Azure ML workspace, so jobs run by a pipeline can use azure.auth managed_identity and no service principal secret (a job submitted from Synapse Studio runs as its submitter, who needs the role too).')
param synapseIdentityUsesAml bool = false

@description('Autoscale lower bound of the Spark pool (at least 3).')
@minValue(3)
param sparkMinNodes int = 3

@description('Autoscale upper bound of the Spark pool.')
@minValue(3)
@maxValue(200)
param sparkMaxNodes int = 6

@description('Minutes of inactivity after which the Spark pool pauses.')
@minValue(5)
param sparkAutoPauseMinutes int = 15

@description('Days deleted blobs, containers, vaults and secrets stay recoverable.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionDays int = 14

@description('Days Log Analytics keeps diagnostics.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Expiry of the Key Vault secrets (seconds since the Unix epoch); defaults to 180 days after deployment. Rotate the service principal secret before then.')
param secretsExpireOn int = dateTimeToEpoch(dateTimeAdd(utcNow(), 'P180D'))

@description('Extra tags for every resource.')
param tags object = {}

var suffix = take(uniqueString(resourceGroup().id, baseName, environmentName), 6)
var allTags = union(tags, {
  project: 'synapse-ml-track'
  environment: environmentName
})
var secretNames = {
  tenantId: 'aml-sp-tenant-id'
  clientId: 'aml-sp-client-id'
  clientSecret: 'aml-sp-client-secret'
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    logAnalyticsName: 'log-${baseName}-${environmentName}-${suffix}'
    appInsightsName: 'appi-${baseName}-${environmentName}-${suffix}'
    retentionInDays: logRetentionDays
    tags: allTags
  }
}

module amlStorage 'modules/storage.bicep' = {
  name: 'aml-storage'
  params: {
    location: location
    name: 'stml${baseName}${environmentName}${suffix}'
    isHnsEnabled: false
    allowSharedKeyAccess: true
    softDeleteRetentionDays: softDeleteRetentionDays
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    tags: allTags
  }
}

module amlVault 'modules/keyvault.bicep' = {
  name: 'aml-keyvault'
  params: {
    location: location
    name: 'kvml${baseName}${environmentName}${suffix}'
    createMode: amlKeyVaultCreateMode
    softDeleteRetentionInDays: softDeleteRetentionDays
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    tags: allTags
  }
}

module aml 'modules/aml.bicep' = {
  name: 'aml-workspace'
  params: {
    location: location
    name: 'mlw-${baseName}-${environmentName}-${suffix}'
    storageAccountId: amlStorage.outputs.id
    keyVaultId: amlVault.outputs.id
    appInsightsId: monitoring.outputs.appInsightsId
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    tags: allTags
  }
}

module dataLake 'modules/storage.bicep' = {
  name: 'synapse-storage'
  params: {
    location: location
    name: 'stdl${baseName}${environmentName}${suffix}'
    isHnsEnabled: true
    allowSharedKeyAccess: false
    filesystemName: synapseFilesystemName
    softDeleteRetentionDays: softDeleteRetentionDays
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    tags: allTags
  }
}

module jobVault 'modules/keyvault.bicep' = {
  name: 'job-keyvault'
  params: {
    location: location
    name: 'kvjb${baseName}${environmentName}${suffix}'
    createMode: jobKeyVaultCreateMode
    softDeleteRetentionInDays: softDeleteRetentionDays
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    tags: allTags
  }
}

module jobSecrets 'modules/secrets.bicep' = {
  name: 'job-secrets'
  params: {
    keyVaultName: jobVault.outputs.name
    tenantId: subscription().tenantId
    clientId: servicePrincipalClientId
    clientSecret: servicePrincipalClientSecret
    secretNames: secretNames
    expiresOn: secretsExpireOn
  }
}

module synapse 'modules/synapse.bicep' = {
  name: 'synapse-workspace'
  params: {
    location: location
    name: 'syn-${baseName}-${environmentName}-${suffix}'
    storageAccountId: dataLake.outputs.id
    storageDfsEndpoint: dataLake.outputs.dfsEndpoint
    filesystemName: synapseFilesystemName
    allowedIpRanges: allowedIpRanges
    sparkPoolName: sparkPoolName
    sparkNodeSize: sparkNodeSize
    sparkMinNodes: sparkMinNodes
    sparkMaxNodes: sparkMaxNodes
    sparkAutoPauseMinutes: sparkAutoPauseMinutes
    sparkPoolExists: sparkPoolExists
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    tags: allTags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'role-assignments'
  params: {
    amlWorkspaceName: aml.outputs.name
    jobKeyVaultName: jobVault.outputs.name
    dataLakeAccountName: dataLake.outputs.name
    servicePrincipalObjectId: servicePrincipalObjectId
    synapsePrincipalId: synapse.outputs.principalId
    synapseIdentityUsesAml: synapseIdentityUsesAml
    deployerObjectId: deployerObjectId
    deployerPrincipalType: deployerPrincipalType
  }
}

@description('Azure ML workspace name (config azure.workspace_name).')
output amlWorkspaceName string = aml.outputs.name

@description('Region of the Azure ML workspace (config azure.region; host of the tracking URI).')
output amlRegion string = location

@description('Subscription id of the Azure ML workspace (config azure.subscription_id).')
output subscriptionId string = subscription().subscriptionId

@description('Resource group of the Azure ML workspace (config azure.resource_group).')
output resourceGroupName string = resourceGroup().name

@description('MLflow tracking URI built from the parts above (config tracking.uri).')
output mlflowTrackingUri string = aml.outputs.mlflowTrackingUri

@description('Synapse workspace name (deploy --workspace).')
output synapseWorkspaceName string = synapse.outputs.name

@description('Synapse development endpoint used by the deploy command.')
output synapseDevEndpoint string = synapse.outputs.devEndpoint

@description('Spark pool name (deploy --spark-pool).')
output sparkPoolName string = synapse.outputs.sparkPoolName

@description('Synapse ADLS Gen2 account (deploy --storage-account).')
output dataLakeAccountName string = dataLake.outputs.name

@description('Default filesystem of that account (deploy --filesystem).')
output dataLakeFilesystem string = synapseFilesystemName

@description('Key Vault holding the service principal secrets (config azure.key_vault_name).')
output jobKeyVaultName string = jobVault.outputs.name

@description('Secret to fill with the service principal client secret (az keyvault secret set --name).')
output clientSecretName string = jobSecrets.outputs.clientSecretName
