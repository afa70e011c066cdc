// The Synapse workspace (managed virtual network, Entra ID-only auth) on its ADLS Gen2
// account, and the Spark 3.5 pool the jobs run on. The pool's Python libraries come from the
// repository's requirements.txt: one source of truth for local tests and the pool.

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

@description('Resource id of the Log Analytics workspace that receives diagnostics.')
param logAnalyticsId string

@description('Tags applied to every resource.')
param tags object

resource workspace 'Microsoft.Synapse/workspaces@2021-06-01' = {
  //checkov:skip=CKV_AZURE_157:Data exfiltration protection blocks PyPI, so the pool could not install requirements.txt; enable it only together with workspace packages (wheels) for every dependency.
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

resource sparkPool 'Microsoft.Synapse/workspaces/bigDataPools@2021-06-01' = {
  //checkov:skip=CKV_AZURE_242:Isolated compute needs XXLarge nodes in a few regions; the small training jobs do not justify dedicated hardware.
  parent: workspace
  name: sparkPoolName
  location: location
  tags: tags
  properties: {
    sparkVersion: '3.5'
    nodeSizeFamily: 'MemoryOptimized'
    nodeSize: sparkNodeSize
    autoScale: {
      enabled: true
      minNodeCount: sparkMinNodes
      maxNodeCount: sparkMaxNodes
    }
    autoPause: {
      enabled: true
      delayInMinutes: sparkAutoPauseMinutes
    }
    dynamicExecutorAllocation: {
      enabled: true
      minExecutors: 1
      maxExecutors: sparkMaxNodes - 1
    }
    isComputeIsolationEnabled: false
    sessionLevelPackagesEnabled: true
    libraryRequirements: {
      filename: 'requirements.txt'
      content: loadTextContent('../../requirements.txt')
    }
  }
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
output sparkPoolName string = sparkPool.name
