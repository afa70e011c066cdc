// The Synapse workspace (managed virtual network, Entra ID-only auth) on its ADLS Gen2
// account, and the Spark 3.5 pool the jobs run on.

@description('Azure region of the workspace and pool.')
param location string

@description('Name of the Synapse workspace: up to 50 lowercase letters, digits and hyphens, globally unique.')
@maxLength(50)
param name string

@description('Resource id of the ADLS Gen2 account that is the workspace default storage.')
param storageAccountId string

@description('ADLS Gen2 (dfs) endpoint of that account.')
param storageDfsEndpoint string

@description('Name of the default filesystem in that account.')
param filesystemName string

@description('Client IP ranges allowed through the workspace firewall, for Synapse Studio and the deploy command: [{ name, startIpAddress, endIpAddress }]. Empty: no firewall rule.')
param allowedIpRanges array

@description('Name of the Spark pool: letters and digits, at most 15 characters.')
@maxLength(15)
param sparkPoolName string

@description('Node size of the Spark pool (memory optimized): Small = 4 vCores/32 GB, Medium = 8/64, Large = 16/128.')
@allowed([
  'Small'
  'Medium'
  'Large'
])
param sparkNodeSize string

@description('Autoscale lower bound (Synapse requires at least 3 nodes).')
@minValue(3)
param sparkMinNodes int

@description('Autoscale upper bound.')
@minValue(3)
@maxValue(200)
param sparkMaxNodes int

@description('Minutes of inactivity after which the pool pauses.')
@minValue(5)
param sparkAutoPauseMinutes int

@description('True when the Spark pool exists already (a redeployment): its libraries are set in the same PUT. False on a first deployment: the pool is created first and its libraries added after a wait. infra/deploy.sh finds the value.')
param sparkPoolExists bool

@description('Resource id of the Log Analytics workspace that receives diagnostics.')
param logAnalyticsId string

@description('Tags applied to every resource.')
param tags object

resource workspace 'Microsoft.Synapse/workspaces@2021-06-01' = {
  //checkov:skip=CKV_AZURE_157:Data exfiltration protection is left off in the dev setup; the jobs need nothing from PyPI (empty requirements.txt), so production can turn it on.
  //checkov:skip=CKV_AZURE_58:False positive: this check fails when managedVirtualNetwork is 'default', which is the ARM value that enables the managed virtual network.
  //checkov:skip=CKV_AZURE_240:Platform-managed keys in the dev setup; a customer-managed key needs a Key Vault key and access for the workspace identity before creation (enable in production).
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    defaultDataLakeStorage: {
      resourceId: storageAccountId
      accountUrl: storageDfsEndpoint
      filesystem: filesystemName
      createManagedPrivateEndpoint: true
    }
    managedVirtualNetwork: 'default'
    managedVirtualNetworkSettings: {
      preventDataExfiltration: false
      allowedAadTenantIdsForLinking: []
    }
    azureADOnlyAuthentication: true
    publicNetworkAccess: 'Enabled'
    trustedServiceBypassEnabled: true
  }
}

resource firewallRules 'Microsoft.Synapse/workspaces/firewallRules@2021-06-01' = [for ipRange in allowedIpRanges: {
  parent: workspace
  name: ipRange.name
  properties: {
    startIpAddress: ipRange.startIpAddress
    endIpAddress: ipRange.endIpAddress
  }
}]

// The pool's libraries come from the repository's requirements.txt (one source of truth for the
// local tests and the pool). Azure refuses them while the pool is being created
// (SparkComputePropertiesNotAllowed, Azure/bicep#8502), and the library manager of a new pool needs
// minutes before it can install anything: AVM's big-data-pool module waits 300 s ("Without this
// wait, the library installation Spark job fails with a transient WASB 500 error"). So a first
// deployment creates the pool, waits, then sets the libraries; a redeployment sets them at once
// (a PUT without libraries would remove them, Azure/bicep-registry-modules#6784).
var requirements = loadTextContent('../../requirements.txt')
// Parenthesised: pycep-parser 0.5.1 (the offline check) reads `!a && !b` as `!(a && !b)`.
var addLibrariesLater = (!sparkPoolExists) && (!empty(requirements))

module sparkPoolCreate 'spark-pool.bicep' = {
  name: 'spark-pool-${sparkPoolName}'
  params: {
    location: location
    workspaceName: workspace.name
    name: sparkPoolName
    nodeSize: sparkNodeSize
    minNodes: sparkMinNodes
    maxNodes: sparkMaxNodes
    autoPauseMinutes: sparkAutoPauseMinutes
    requirements: sparkPoolExists ? requirements : ''
    tags: tags
  }
}

resource libraryManagerWait 'Microsoft.Resources/deploymentScripts@2023-08-01' = if (addLibrariesLater) {
  name: 'wait-for-library-manager-${sparkPoolName}'
  location: location
  tags: tags
  kind: 'AzurePowerShell'
  properties: {
    azPowerShellVersion: '11.0'
    scriptContent: 'Start-Sleep -Seconds 300'
    timeout: 'PT15M'
    retentionInterval: 'PT1H'
    cleanupPreference: 'Always'
  }
  dependsOn: [
    sparkPoolCreate
  ]
}

module sparkPoolLibraries 'spark-pool.bicep' = if (addLibrariesLater) {
  name: 'spark-pool-${sparkPoolName}-libraries'
  params: {
    location: location
    workspaceName: workspace.name
    name: sparkPoolName
    nodeSize: sparkNodeSize
    minNodes: sparkMinNodes
    maxNodes: sparkMaxNodes
    autoPauseMinutes: sparkAutoPauseMinutes
    requirements: requirements
    tags: tags
  }
  dependsOn: [
    libraryManagerWait
  ]
}

resource sparkPool 'Microsoft.Synapse/workspaces/bigDataPools@2021-06-01' existing = {
  parent: workspace
  name: sparkPoolName
  dependsOn: [
    sparkPoolCreate
  ]
}

resource workspaceDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: workspace
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

resource sparkPoolDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: sparkPool
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
  }
}

@description('Name of the Synapse workspace.')
output name string = workspace.name

@description('Object id of the workspace managed identity.')
output principalId string = workspace.identity.principalId

@description('Development endpoint (Synapse Studio artifacts API) of the workspace.')
output devEndpoint string = workspace.properties.connectivityEndpoints.dev

@description('Name of the Spark pool.')
output sparkPoolName string = sparkPoolCreate.outputs.name
