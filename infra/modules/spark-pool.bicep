// One PUT of the Spark 3.5 pool. synapse.bicep deploys it twice on a first deployment: once to
// create the pool without libraries, once more to add them, because Azure refuses libraries on a
// pool that does not exist yet (SparkComputePropertiesNotAllowed, Azure/bicep#8502; the same
// two-step shape as AVM's avm/res/synapse/workspace/big-data-pool).

@description('Azure region of the pool.')
param location string

@description('Name of the Synapse workspace the pool belongs to.')
param workspaceName string

@description('Name of the Spark pool: letters and digits, at most 15 characters.')
@maxLength(15)
param name string

@description('Node size of the pool (memory optimized): Small = 4 vCores/32 GB, Medium = 8/64, Large = 16/128.')
@allowed([
  'Small'
  'Medium'
  'Large'
])
param nodeSize string

@description('Autoscale lower bound (Synapse requires at least 3 nodes).')
@minValue(3)
param minNodes int

@description('Autoscale upper bound.')
@minValue(3)
@maxValue(200)
param maxNodes int

@description('Minutes of inactivity after which the pool pauses.')
@minValue(5)
param autoPauseMinutes int

@description('Content of the pool requirements.txt; empty sets no libraries. Only for a pool that exists already.')
param requirements string

@description('Tags applied to the pool.')
param tags object

resource workspace 'Microsoft.Synapse/workspaces@2021-06-01' existing = {
  name: workspaceName
}

resource sparkPool 'Microsoft.Synapse/workspaces/bigDataPools@2021-06-01' = {
  //checkov:skip=CKV_AZURE_242:Isolated compute needs XXLarge nodes in a few regions; the small training jobs do not justify dedicated hardware.
  parent: workspace
  name: name
  location: location
  tags: tags
  properties: {
    sparkVersion: '3.5'
    nodeSizeFamily: 'MemoryOptimized'
    nodeSize: nodeSize
    autoScale: {
      enabled: true
      minNodeCount: minNodes
      maxNodeCount: maxNodes
    }
    autoPause: {
      enabled: true
      delayInMinutes: autoPauseMinutes
    }
    dynamicExecutorAllocation: {
      enabled: true
      minExecutors: 1
      maxExecutors: maxNodes - 1
    }
    isComputeIsolationEnabled: false
    sessionLevelPackagesEnabled: true
    libraryRequirements: empty(requirements) ? null : {
      filename: 'requirements.txt'
      content: requirements
    }
  }
}

@description('Name of the Spark pool.')
output name string = sparkPool.name
